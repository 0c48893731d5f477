// ShaftWatch alert console: sign-in, the ranked list, one incident's evidence and audit
// trail, the actions a patrol takes, the map, silences and users, with live updates.
// Plain browser JavaScript, no build step. The session is an HttpOnly cookie; every
// change sends the session's CSRF token. Text from the data is always set as text.
"use strict";

const URGENT = new Set(["high", "critical"]);
const SEVERITIES = ["critical", "high", "medium", "low", "info"];
const ALLOWED = {new: ["acknowledge", "dispatch", "resolve"], acknowledged: ["dispatch", "resolve"],
                 dispatched: ["resolve"], resolved: []};
const DISPOSITIONS = ["illegal_mining_confirmed", "false_alarm", "authorized_activity", "other"];

const $ = (id) => document.getElementById(id);
let lang = localStorage.getItem("shaftwatch.lang") || "zh";
let session = null;           // who is signed in, their role and CSRF token, the county's settings
let view = "incidents";
let selected = null;          // the incident shown in the detail pane
let known = null;             // incident ids in the list (null before the first load)
let fresh = new Set();        // ids changed by a live update, highlighted once
let reloadTimer = null;
let following = false;

const t = (key, params) => translate(lang, key, params);

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function option(value, text) { const o = el("option", text); o.value = value; return o; }

const offset = () => (session ? session.timezone_offset_h : 8);
const clock = (ts, withDate = true) => countyClock(ts, offset(), withDate);

function age(ts) {
  const minutes = Math.max(0, Math.round((Date.now() / 1000 - ts) / 60));
  if (minutes < 60) return t("age_min", {n: minutes});
  return minutes < 2880 ? t("age_h", {n: Math.round(minutes / 60)}) : t("age_d", {n: Math.round(minutes / 1440)});
}

function severityBadge(severity) { return el("span", t(`sev_${severity}`), `sev sev-${severity}`); }

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  const headers = {...(options.headers || {}), "Content-Type": "application/json"};
  if (options.method && options.method !== "GET" && session) headers["X-CSRF-Token"] = session.csrf;
  const response = await fetch(path, {...options, headers, credentials: "same-origin"});
  const body = await response.json().catch(() => ({}));
  if (response.status === 401 && session && path !== "/api/login") { showSignIn(t("session_over")); }
  if (!response.ok) throw new ApiError(response.status, body.error || `HTTP ${response.status}`);
  return body;
}

// ------------------------------------------------------------------ words on the page

function applyLanguage() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.title = t("title");
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = t(node.dataset.t);
  $("language").textContent = t("language");
  $("note").placeholder = t("note_placeholder");
  $("disposition").replaceChildren(option("", t("choose_disposition")),
                                   ...DISPOSITIONS.map((d) => option(d, t(`disp_${d}`))));
  const state = $("filter-state").value || "open";
  $("filter-state").replaceChildren(option("open", t("open")), ...Object.keys(ALLOWED).map((s) => option(s, t(`st_${s}`))),
                                    option("all", t("all")));
  $("filter-state").value = state;
  const severity = $("filter-severity").value;
  $("filter-severity").replaceChildren(option("", t("all")), ...SEVERITIES.map((s) => option(s, t(`sev_${s}`))));
  $("filter-severity").value = severity;
  const kind = $("silence-kind").value;
  $("silence-kind").replaceChildren(option("", t("any")), ...["vision", "power", "fence"].map(
    (k) => option(k, t({vision: "cameras", power: "power", fence: "fence"}[k]))));
  $("silence-kind").value = kind;
  $("user-role").replaceChildren(...["patrol", "ops", "admin"].map((r) => option(r, t(`role_${r}`))));
  setLink(following, following ? t("live") : t("offline"));
  if (session) { showWho(); refresh(); }
}

function showWho() {
  $("who").hidden = false;
  $("who").textContent = `${session.display_name} · ${t(`role_${session.role}`)}`;
}

// ------------------------------------------------------------------ the list

function seenText(seen) {
  const parts = [];
  const people = [];
  if (seen.persons) people.push(t("persons", {n: seen.persons}));
  if (seen.vehicles) people.push(t("vehicles", {n: seen.vehicles}));
  if (people.length) parts.push(people.join(" "));
  if (seen.power_kw !== null && seen.power_kw !== undefined) {
    parts.push(t(seen.power_kinds.includes("reconnection") ? "cut_line" : "power_draw", {kw: Math.round(seen.power_kw)}));
  } else if (seen.power_kinds.length) parts.push(t("power_other"));
  if (seen.devices) parts.push(t("devices", {n: seen.devices}));
  else if (seen.fence_kinds.length) parts.push(t("fence_other"));
  return parts.join(" · ");
}

function listQuery() {
  const params = new URLSearchParams();
  const state = $("filter-state").value;
  if (state === "all") params.set("state", "new,acknowledged,dispatched,resolved");
  else if (state !== "open") params.set("state", state);
  if ($("filter-severity").value) params.set("severity", $("filter-severity").value);
  if ($("filter-township").value) params.set("township", $("filter-township").value);
  return params.toString();
}

async function loadList() {
  const {incidents} = await api(`/api/incidents?${listQuery()}`);
  const body = $("incidents").querySelector("tbody");
  const counts = {};
  const urgentNew = [];
  body.replaceChildren(...incidents.map((incident) => {
    counts[incident.severity] = (counts[incident.severity] || 0) + 1;
    if (known && !known.has(incident.id) && URGENT.has(incident.severity)) urgentNew.push(incident);
    const row = el("tr");
    row.dataset.id = incident.id;
    row.classList.toggle("selected", incident.id === selected);
    if (fresh.has(incident.id)) row.classList.add("fresh");
    const sev = el("td"); sev.append(severityBadge(incident.severity));
    const site = el("td");
    site.append(el("span", `${incident.site_id} ${incident.site_name || ""}`, "site-name"), el("br"),
                el("span", incident.township || "", "township"));
    const seen = el("td", seenText(incident.seen));
    if (incident.silenced_by !== null && incident.silenced_by !== undefined) seen.append(el("span", t("silenced"), "tag"));
    const when = el("td");
    when.append(el("span", clock(incident.opened_at)), el("br"),
                el("span", t("received_ago", {age: age(incident.first_received_at)}), "when"));
    row.append(sev, site, seen, el("td", t(`st_${incident.state}`)), when);
    row.addEventListener("click", () => select(incident.id));
    return row;
  }));
  fresh.clear();
  known = new Set(incidents.map((i) => i.id));
  $("empty").hidden = incidents.length > 0;
  $("counts").replaceChildren(...SEVERITIES.filter((s) => counts[s])
    .map((s) => { const span = el("span"); span.append(severityBadge(s), ` ${counts[s]}`); return span; }));
  if (urgentNew.length) alarm(urgentNew[0]);
}

// A new high or critical incident: a banner that pulses, and a tone the patrol can hear.
function alarm(incident) {
  $("urgent").textContent = t("urgent_banner", {site: `${incident.site_id} ${incident.site_name || ""}`});
  $("urgent").hidden = false;
  $("urgent").dataset.incident = incident.id;
  try {
    const audio = new (window.AudioContext || window.webkitAudioContext)();
    for (const [start, freq] of [[0, 880], [0.25, 660], [0.5, 880]]) {
      const tone = audio.createOscillator(), gain = audio.createGain();
      tone.frequency.value = freq; gain.gain.value = 0.2;
      tone.connect(gain).connect(audio.destination);
      tone.start(audio.currentTime + start); tone.stop(audio.currentTime + start + 0.18);
    }
  } catch (error) { /* no audio here: the banner stays */ }
}

function scheduleReload() {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(refresh, 250);  // a burst of changes is one reload
}

async function refresh() {
  try {
    if (session.may.config) await loadFenceNotice();
    if (view === "incidents") {
      await loadList();
      if (selected) await select(selected, false);
    } else if (view === "map") await loadMap();
    else if (view === "silences") await loadSilences();
    else if (view === "ledger") await loadLedger();
    else if (view === "patrol") await loadPatrol();
    else if (view === "tipoffs") await loadTipoffs();
    else if (view === "reports") loadReports();
    else if (view === "users") await loadUsers();
  } catch (error) { if (error.status !== 401) setLink(false, t("reconnecting")); }
}

// ------------------------------------------------------------------ one incident

async function select(id, scroll = true) {
  const incident = await api(`/api/incidents/${encodeURIComponent(id)}`);
  selected = id;
  if (location.hash !== `#/incidents/${id}`) history.replaceState(null, "", `#/incidents/${id}`);
  for (const row of $("incidents").querySelectorAll("tbody tr")) row.classList.toggle("selected", row.dataset.id === id);
  $("detail").hidden = false;
  $("detail-title").replaceChildren(severityBadge(incident.severity),
                                    ` ${incident.site_id} ${incident.site_name || ""} · ${incident.township || ""}`);
  $("detail-summary").textContent = `${seenText(incident.seen)} · ${incident.id}`;
  const received = Math.min(...Object.values((incident.draft || {}).severity_at || {}), incident.received_at);
  const facts = [[t("state"), t(`st_${incident.state}`)], [t("score"), incident.score.toFixed(2)],
    [t("happened"), clock(incident.opened_at)], [t("received"), t("received_ago", {age: age(received)})],
    [t("last_evidence"), clock(incident.updated_at)]];
  if (incident.disposition) facts.push([t("disposition"), t(`disp_${incident.disposition}`)]);
  if (incident.note) facts.push([t("note"), incident.note]);
  if (incident.previous_incident_id) facts.push([t("follows"), incident.previous_incident_id]);
  $("detail-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", k), el("dd", v)]));
  const silence = incident.silence;
  $("detail-silence").hidden = !silence;
  if (silence) {
    $("detail-silence").textContent = t("silenced_by", {who: silence.created_by, until: clock(silence.ends_at),
                                                        reason: silence.reason});
  }
  const mayAct = session.may.act;
  $("actions").hidden = !mayAct;
  for (const button of $("actions").querySelectorAll("button[data-action]")) {
    button.disabled = !(ALLOWED[incident.state] || []).includes(button.dataset.action);
  }
  $("disposition").disabled = incident.state === "resolved";
  $("action-error").textContent = "";
  renderEvidence(incident.signals || []);
  const shown = (incident.signals || []).length;
  $("evidence-more").hidden = !(incident.signals_total > shown);
  $("evidence-more").textContent = t("evidence_newest", {n: shown, total: incident.signals_total});
  renderAudit(incident.audit || []);
  if (scroll) $("detail").scrollIntoView({block: "nearest"});
}

function group(title) {
  const box = el("div", null, "group");
  box.append(el("h4", title));
  return box;
}

function renderEvidence(signals) {
  const boxes = [];
  const vision = signals.filter((s) => s.source_kind === "vision");
  if (vision.length) {
    const box = group(t("cameras"));
    const shots = el("div", null, "shots");
    for (const s of vision) {
      for (const ref of s.evidence || []) {
        if (!ref.startsWith("snapshot:")) continue;
        const figure = el("figure", null, "shot");
        const img = el("img", null, "evidence-img");
        img.alt = s.summary;
        img.loading = "lazy";
        img.src = `/api/evidence?ref=${encodeURIComponent(ref)}`;  // the session cookie goes with it
        figure.append(img, el("figcaption", `${s.source_id} · ${t("captured", {t: clock(s.ts)})}`, "when"));
        shots.append(figure);
      }
    }
    box.append(shots);
    boxes.push(box);
  }
  const power = signals.filter((s) => s.source_kind === "power");
  for (const meter of [...new Set(power.map((s) => s.source_id))]) {
    const mine = power.filter((s) => s.source_id === meter);
    const box = group(`${t("power")} · ${meter}`);
    // The readings around the finding when the signal carries them, else one point a signal.
    const samples = new Map();
    for (const s of mine) {
      for (const [ts, kw] of (s.details.samples || [])) samples.set(ts, kw);
      if (typeof s.details.kw === "number") samples.set(s.ts, s.details.kw);
    }
    const expected = mine.map((s) => s.details.expected_kw).find((v) => typeof v === "number")
      ?? (mine.some((s) => s.kind === "reconnection") ? 0 : null);
    box.append(powerChart([...samples.entries()].sort((a, b) => a[0] - b[0]), expected, offset(),
                          {caption: t("chart_caption", {meter}), empty: t("no_samples"), seen: t("seen_kw"),
                           expected: t("expected_kw")}));
    box.append(...mine.map((s) => el("p", `${clock(s.ts)} · ${s.summary}`, "when")));
    boxes.push(box);
  }
  const fence = signals.filter((s) => s.source_kind === "fence");
  for (const zone of [...new Set(fence.map((s) => s.source_id))]) {
    const mine = fence.filter((s) => s.source_id === zone);
    const devices = new Map();
    for (const s of mine) {
      const first = s.details.episode_start || s.ts;
      for (const pid of s.details.device_pids || []) {
        const known = devices.get(pid) || {pid, first, last: s.ts, kind: "phone"};
        known.first = Math.min(known.first, first);
        known.last = Math.max(known.last, s.ts);
        if ((s.details.device_kinds || {})[pid] === "vehicle_terminal") known.kind = "vehicle_terminal";
        devices.set(pid, known);
      }
    }
    const box = group(`${t("fence")} · ${zone}`);
    const rows = [...devices.values()].sort((a, b) => a.first - b.first);
    box.append(fenceTimeline(rows, offset(), t("fence_caption", {zone})));
    const kinds = [...new Set(mine.map((s) => s.kind))];
    box.append(el("p", `${kinds.join(", ")} · ${t("devices", {n: rows.length})}`, "when"));
    boxes.push(box);
  }
  $("evidence").replaceChildren(...boxes);
}

// The audit trail; the server sends each run of the system adding evidence as one entry
// (detail.signals of them, until detail.until).
function renderAudit(rows) {
  const items = [];
  for (const a of rows) {
    if (a.action === "evidence_added" && a.actor === "system") {
      const n = (a.detail && a.detail.signals) || 1;
      const item = el("li");
      item.append(el("span", clock(a.at), "when"), ` ${t("system")} · ${t("evidence_added", {n})}`);
      if (n > 1) item.append(el("span", ` – ${clock(a.detail.until)}`, "when"));
      items.push(item);
      continue;
    }
    const item = el("li");
    item.append(el("span", clock(a.at), "when"), ` ${a.actor === "system" ? t("system") : a.actor} · ${t(`act_${a.action}`)}`);
    if (a.detail && a.detail.disposition) item.append(` (${t(`disp_${a.detail.disposition}`)})`);
    if (a.detail && a.detail.note) item.append(` — ${a.detail.note}`);
    items.push(item);
  }
  $("audit").replaceChildren(...items);
}

async function act(action) {
  const body = {note: $("note").value || null};
  if (action === "resolve") {
    body.disposition = $("disposition").value || null;
    if (!body.disposition) { $("action-error").textContent = t("needs_disposition"); return; }
  }
  try {
    await api(`/api/incidents/${encodeURIComponent(selected)}/${action}`, {method: "POST", body: JSON.stringify(body)});
    $("note").value = "";
    await select(selected, false);
    await loadList();
  } catch (error) {
    $("action-error").textContent = error.message;
  }
}

// ------------------------------------------------------------------ map, silences, users

async function loadMap() {
  const {sites} = await api("/api/sites");
  const open = (incidentId) => { showView("incidents"); select(incidentId).catch(() => {}); };
  $("map").replaceChildren(shaftMap(sites, session.map_tile_url, open));
  $("map-sites").replaceChildren(...sites.map((site) => {
    const item = el("li");
    item.append(el("strong", `${site.id} ${site.name}`), ` · ${site.township} · ${t(`status_${site.status}`)} `);
    for (const incident of site.incidents) {
      const badge = severityBadge(incident.severity);
      badge.style.cursor = "pointer";
      badge.addEventListener("click", () => open(incident.id));
      item.append(badge, " ");
    }
    return item;
  }));
}

async function loadSilences() {
  const [{silences}, {sites}] = await Promise.all([api("/api/silences"), api("/api/sites")]);
  const siteValue = $("silence-site").value;
  $("silence-site").replaceChildren(option("", t("any")), ...sites.map((s) => option(s.id, `${s.id} ${s.name}`)));
  $("silence-site").value = siteValue;
  $("silences").replaceChildren(...silences.map((s) => {
    const item = el("li");
    const matcher = [s.site_id, s.source_kind, s.source_id].filter((v) => v).join(" · ");
    item.append(el("strong", matcher), ` ${t("silence_until", {t: clock(s.ends_at)})} · ${t("silence_by", {who: s.created_by})} — ${s.reason} `);
    const end = el("button", t("silence_end"));
    end.type = "button";
    end.addEventListener("click", async () => {
      await api(`/api/silences/${s.id}/end`, {method: "POST"}).catch((e) => { $("silence-error").textContent = e.message; });
      await loadSilences();
    });
    item.append(end);
    return item;
  }));
}

// The carriers' geofencing subscriptions for the watchlist: one the carrier ended is a
// fence gone silent for someone, until ops publish again (shaftwatch fences publish).
async function loadFenceNotice() {
  const fences = await api("/api/fence-subscriptions");
  const carriers = [...new Set(fences.lapsed.map((s) => s.carrier))].join(", ");
  $("fence-notice").hidden = !fences.lapsed.length;
  $("fence-notice").textContent = fences.lapsed.length ? t("fence_lapsed", {n: fences.lapsed.length, carriers}) : "";
  $("fence-subscriptions").hidden = !fences.configured;
  $("fence-counts").textContent = Object.entries(fences.counts).map(([carrier, counts]) =>
    `${carrier}: ${Object.entries(counts).map(([status, n]) => `${t(`fence_status_${status}`)} ${n}`).join(", ")}`)
    .join(" · ");
  $("fence-lapsed").replaceChildren(...fences.lapsed.map((s) => el("li",
    `${s.carrier} · ${s.zone_id} · ${t(`fence_event_${s.event}`)} · ${s.device_pid.slice(0, 11)}… · `
    + `${s.ended_reason || t("fence_expired")} · ${clock(s.updated_at)}`)));
}

async function loadUsers() {
  const {users} = await api("/api/users");
  $("users").replaceChildren(...users.map((u) => {
    const item = el("li");
    item.append(el("strong", u.username), ` ${u.display_name} · ${t(`role_${u.role}`)}`);
    if (u.disabled_at) { item.append(el("span", t("disabled"), "tag")); return item; }
    for (const [label, path] of [["reset_password", "password"], ["disable", "disable"]]) {
      const button = el("button", t(label));
      button.type = "button";
      button.addEventListener("click", async () => {
        const answer = await api(`/api/users/${encodeURIComponent(u.username)}/${path}`, {method: "POST"});
        $("user-result").textContent = answer.one_time_password
          ? t("one_time_password", {user: u.username, password: answer.one_time_password}) : "";
        await loadUsers();
      });
      item.append(" ", button);
    }
    return item;
  }));
}

// ------------------------------------------------------------------ the ledger

const SITE_STATUSES = ["sealed", "resealed", "closed", "backfilled", "breached", "active_licensed"];
let ledgerSite = null;

async function siteOptions(select, withAny) {
  const {sites} = await api("/api/sites");
  const value = select.value;
  select.replaceChildren(...(withAny ? [option("", t("any"))] : []), ...sites.map((s) => option(s.id, `${s.id} ${s.name}`)));
  if (value) select.value = value;
}

async function loadLedger() {
  const {sites} = await api("/api/ledger/sites");
  $("ledger").querySelector("tbody").replaceChildren(...sites.map((s) => {
    const row = el("tr");
    const site = el("td");
    site.append(el("span", `${s.id} ${s.name}`, "site-name"), el("br"), el("span", s.township, "township"));
    const status = el("td", t(`status_${s.status}`));
    if (s.sealed_on) status.append(el("br"), el("span", s.sealed_on, "when"));
    const who = el("td", s.responsible);
    if (s.unit) who.append(el("br"), el("span", s.unit, "when"));
    const visits = el("td", t("visits_of", {n: s.visits_7d, required: s.required_7d}), s.overdue ? "overdue" : "");
    const manage = el("td");
    const button = el("button", t("ledger_manage"));
    button.type = "button";
    button.addEventListener("click", () => openSite(s));
    manage.append(button);
    row.append(site, status, who, visits, manage);
    return row;
  }));
}

async function openSite(site) {
  ledgerSite = site.id;
  $("status-form").hidden = false;
  $("status-title").textContent = `${site.id} ${site.name}`;
  $("status-value").replaceChildren(...SITE_STATUSES.map((s) => option(s, t(`status_${s}`))));
  $("status-value").value = site.status;
  for (const node of $("status-form").querySelectorAll("select, input, button")) node.disabled = !session.may.ledger;
  const {history} = await api(`/api/ledger/sites/${encodeURIComponent(site.id)}/history`);
  $("site-history").replaceChildren(...history.map((e) => {
    const item = el("li");
    item.append(el("span", clock(e.at), "when"), ` ${e.actor} · ${e.kind} · ${e.note}`);
    return item;
  }));
}

// A list re-rendered on every live change must not wipe what someone is typing into it: its
// inputs carry data-key (the item and the step they are for), and a value typed, and the
// focus, survive the re-render. A step taken changes the key, so a used note is not restored.
function replaceKeepingInput(list, items) {
  const typed = new Map([...list.querySelectorAll("input[data-key]")].filter((i) => i.value)
    .map((i) => [i.dataset.key, i.value]));
  const focused = list.contains(document.activeElement) ? document.activeElement.dataset.key : undefined;
  list.replaceChildren(...items);
  for (const input of list.querySelectorAll("input[data-key]")) {
    if (typed.has(input.dataset.key)) input.value = typed.get(input.dataset.key);
    if (focused !== undefined && input.dataset.key === focused) input.focus();
  }
}

// ------------------------------------------------------------------ patrols

let visitPosition = null;

async function loadPatrol() {
  await siteOptions($("visit-site"), false);
  const [{sites, townships}, {problems}] = await Promise.all([api("/api/coverage"), api("/api/problems")]);
  $("coverage").replaceChildren(...sites.map((c) => {
    const item = el("li");
    item.append(el("strong", `${c.site_id} ${c.name}`), ` · ${t("visits_of", {n: c.visits_7d, required: c.required_7d})}`);
    if (c.overdue) item.append(" ", el("span", t("overdue"), "overdue"));
    if (c.last_visit_at) item.append(el("span", ` · ${clock(c.last_visit_at)}`, "when"));
    return item;
  }));
  $("round").replaceChildren(...townships.map((r) => {
    const item = el("li", t("round_line", r));
    if (r.complete) item.append(" ", el("span", t("round_complete"), "tag"));
    return item;
  }));
  replaceKeepingInput($("problems"), problems.filter((p) => p.state !== "closed").map((p) => {
    const item = el("li");
    item.append(el("strong", p.description), el("br"),
                el("span", t("problem_found", {site: p.site_id, by: p.found_by, t: clock(p.found_at)}), "when"));
    const step = p.state === "open" ? "rectify" : "close";
    if (step === "rectify" || session.may.ledger) {
      const steps = el("div", null, "steps");
      const note = el("input");
      note.dataset.key = `${p.id}/${step}`;
      note.placeholder = t("problem_note");
      const button = el("button", t(`problem_${step}`));
      button.type = "button";
      button.addEventListener("click", async () => {
        await api(`/api/problems/${p.id}/${step}`, {method: "POST", body: JSON.stringify({note: note.value})})
          .then(loadPatrol).catch((e) => { $("visit-result").textContent = e.message; });
      });
      steps.append(note, button);
      item.append(steps);
    }
    return item;
  }));
}

// ------------------------------------------------------------------ tip-offs

const TIP_STEPS = {received: ["start_verifying"], verifying: ["verify", "unfounded"]};
const REWARD_STEPS = {none: "propose", proposed: "approve", approved: "pay"};
const STEP_NEEDS = {propose: "ledger", approve: "users", pay: "ledger"};

async function loadTipoffs() {
  await siteOptions($("tipoff-site"), true);
  const {tipoffs} = await api("/api/tipoffs");
  replaceKeepingInput($("tipoffs"), tipoffs.map((tip) => {
    const item = el("li");
    item.dataset.id = tip.id;
    item.append(el("strong", `#${tip.id} ${tip.site_id || `${tip.lon}, ${tip.lat}`}`),
                ` · ${t(`tip_${tip.state}`)} · ${t(`reward_${tip.reward_state}`)}`,
                tip.reward_yuan ? ` ${tip.reward_yuan} ${t("yuan")}` : "", el("br"), el("span", tip.text), el("br"),
                el("span", `${clock(tip.received_at)} · ${tip.channel} · ${tip.received_by}`, "when"));
    if (tip.contact) item.append(el("br"), el("span", `${t("contact")}: ${tip.contact}`, "notice"));
    else if (tip.has_contact) item.append(el("br"), el("span", t("has_contact"), "when"));
    const steps = el("div", null, "steps");
    const input = el("input");
    const wanted = [...(TIP_STEPS[tip.state] || [])];
    const reward = tip.state === "verified" ? REWARD_STEPS[tip.reward_state] : null;
    if (reward && session.may[STEP_NEEDS[reward]]) wanted.push(reward);
    input.dataset.key = `${tip.id}/${wanted.join(",")}`;
    if (wanted.length) {
      input.placeholder = wanted.includes("propose") ? t("yuan") : t("problem_note");
      steps.append(input);
    }
    for (const step of wanted) {
      const button = el("button", t(`step_${step}`));
      button.type = "button";
      button.dataset.step = step;
      button.addEventListener("click", async () => {
        const body = step === "propose" ? {yuan: Number(input.value)} : {note: input.value};
        if (step === "verify" && !tip.site_id) body.site_id = $("tipoff-site").value || null;
        await api(`/api/tipoffs/${tip.id}/${step}`, {method: "POST", body: JSON.stringify(body)})
          .then(loadTipoffs).catch((e) => { $("tipoff-result").textContent = e.message; });
      });
      steps.append(button);
    }
    item.append(steps);
    return item;
  }));
}

async function postForm(path, form) {
  const response = await fetch(path, {method: "POST", body: form, credentials: "same-origin",
                                      headers: {"X-CSRF-Token": session.csrf}});
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, body.error || `HTTP ${response.status}`);
  return body;
}

// ------------------------------------------------------------------ reports

// Without a week the server makes last week's (the whole week before this one).
function loadReports() {
  const week = $("report-week").value.trim() ? `week=${encodeURIComponent($("report-week").value.trim())}&` : "";
  $("report-xlsx").href = `/api/reports/weekly?${week}format=xlsx`;
  $("report-csv").href = `/api/reports/weekly?${week}format=csv`;
}

function showView(name) {
  view = name;
  for (const button of $("tabs").querySelectorAll("button")) button.classList.toggle("current", button.dataset.view === name);
  for (const pane of document.querySelectorAll("main.view")) pane.hidden = pane.id !== `view-${name}`;
  refresh();
}

// ------------------------------------------------------------------ live updates

function setLink(up, text) {
  $("link").className = `link ${up ? "up" : "down"}`;
  $("link").textContent = `● ${text}`;
}

function onEvent(event) {
  if (event.type === "hello") { setLink(true, t("live")); scheduleReload(); return; }
  if (event.type === "resync") { scheduleReload(); return; }
  if (event.type !== "incident") return;
  fresh.add(event.incident_id);
  scheduleReload();
}

async function follow() {
  if (following) return;
  following = true;
  let wait = 1000;
  while (session) {
    try {
      const response = await fetch("/api/live", {credentials: "same-origin"});
      if (response.status === 401) { showSignIn(t("session_over")); break; }
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      wait = 1000;
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, {stream: true});
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          if (line.trim()) onEvent(JSON.parse(line));
        }
      }
    } catch (error) { /* the server or the network went away: try again below */ }
    if (!session) break;
    setLink(false, t("reconnecting"));
    await new Promise((resolve) => setTimeout(resolve, wait));
    wait = Math.min(wait * 2, 30000);
  }
  following = false;
}

// ------------------------------------------------------------------ signing in and out

function showSignIn(message) {
  session = null;
  for (const pane of document.querySelectorAll("main.view")) pane.hidden = true;
  $("tabs").hidden = true;
  $("sign-out").hidden = true;
  $("who").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message || "";
  setLink(false, t("offline"));
}

async function start(found) {
  session = found;
  $("sign-in").hidden = true;
  $("tabs").hidden = false;
  $("sign-out").hidden = false;
  showWho();
  for (const node of document.querySelectorAll("nav button[data-may], .toolbar [data-may]")) {
    node.hidden = !session.may[node.dataset.may];
  }
  const township = $("filter-township").value;
  $("filter-township").replaceChildren(option("", t("all")), ...session.townships.map((tw) => option(tw, tw)));
  $("filter-township").value = township;
  known = null;
  showView("incidents");
  await loadList();
  const wanted = location.hash.match(/^#\/incidents\/(.+)$/);
  if (wanted) await select(decodeURIComponent(wanted[1])).catch(() => {});
  follow();
}

$("sign-in").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const found = await api("/api/login", {method: "POST", body: JSON.stringify({
      username: $("username").value.trim(), password: $("password").value})});
    $("password").value = "";
    await start(found);
  } catch (error) {
    $("sign-in-error").textContent = error.status === 429 ? error.message : t("signin_refused");
  }
});
$("sign-out").addEventListener("click", async () => {
  await api("/api/logout", {method: "POST"}).catch(() => {});
  showSignIn();
});
$("language").addEventListener("click", () => {
  lang = lang === "zh" ? "en" : "zh";
  localStorage.setItem("shaftwatch.lang", lang);
  applyLanguage();
});
for (const button of $("tabs").querySelectorAll("button")) button.addEventListener("click", () => showView(button.dataset.view));
for (const button of $("actions").querySelectorAll("button[data-action]")) {
  button.addEventListener("click", () => act(button.dataset.action));
}
for (const id of ["filter-state", "filter-severity", "filter-township"]) $(id).addEventListener("change", () => loadList());
$("urgent").addEventListener("click", () => {
  $("urgent").hidden = true;
  if ($("urgent").dataset.incident) { showView("incidents"); select($("urgent").dataset.incident).catch(() => {}); }
});
$("silence-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("silence-error").textContent = "";
  try {
    await api("/api/silences", {method: "POST", body: JSON.stringify({
      site_id: $("silence-site").value || null, source_kind: $("silence-kind").value || null,
      source_id: $("silence-source").value.trim() || null, duration_s: Number($("silence-hours").value) * 3600,
      reason: $("silence-reason").value.trim()})});
    $("silence-reason").value = "";
    await loadSilences();
  } catch (error) { $("silence-error").textContent = error.message; }
});
$("user-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const user = await api("/api/users", {method: "POST", body: JSON.stringify({
      username: $("user-name").value.trim(), display_name: $("user-display").value.trim(), role: $("user-role").value})});
    $("user-result").textContent = t("one_time_password", {user: user.username, password: user.one_time_password});
    $("user-name").value = ""; $("user-display").value = "";
    await loadUsers();
  } catch (error) { $("user-result").textContent = error.message; }
});
$("ledger-import").addEventListener("change", async () => {
  const file = $("ledger-import").files[0];
  if (!file) return;
  try {
    const result = await api("/api/ledger/sites.csv", {method: "POST", body: await file.text(), headers: {"Content-Type": "text/csv"}});
    $("ledger-result").textContent = t("ledger_imported", {added: result.added.length, updated: result.updated.length,
                                                           errors: result.errors.length});
    await loadLedger();
  } catch (error) { $("ledger-result").textContent = error.message; }
  $("ledger-import").value = "";
});
$("status-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("status-error").textContent = "";
  try {
    const site = await api(`/api/ledger/sites/${encodeURIComponent(ledgerSite)}/status`, {method: "POST", body: JSON.stringify({
      status: $("status-value").value, on: $("status-date").value || null, reason: $("status-reason").value})});
    $("status-reason").value = "";
    await loadLedger();
    await openSite(site);
  } catch (error) { $("status-error").textContent = error.message; }
});
$("visit-locate").addEventListener("click", () => {
  navigator.geolocation.getCurrentPosition((p) => {
    visitPosition = {lon: p.coords.longitude.toFixed(6), lat: p.coords.latitude.toFixed(6)};
    $("visit-position").textContent = t("visit_position", visitPosition);
  }, (error) => { $("visit-position").textContent = error.message; }, {enableHighAccuracy: true, timeout: 15000});
});
$("visit-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = new FormData();
  form.append("site_id", $("visit-site").value);
  form.append("finding", $("visit-finding").value);
  form.append("problem", $("visit-problem").checked ? "true" : "false");
  if (visitPosition) { form.append("lon", visitPosition.lon); form.append("lat", visitPosition.lat); }
  for (const file of $("visit-photos").files) form.append("photos", file);
  try {
    const visit = await postForm("/api/visits", form);
    $("visit-result").textContent = t("visit_recorded", {id: visit.id});
    $("visit-form").reset();
    visitPosition = null;
    $("visit-position").textContent = "";
    await loadPatrol();
  } catch (error) { $("visit-result").textContent = error.message; }
});
$("tipoff-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = new FormData();
  form.append("text", $("tipoff-text").value);
  form.append("site_id", $("tipoff-site").value);
  form.append("contact", $("tipoff-contact").value);
  for (const file of $("tipoff-photos").files) form.append("photos", file);
  try {
    const tip = await postForm("/api/tipoffs", form);
    $("tipoff-result").textContent = t("tipoff_recorded", {id: tip.id});
    $("tipoff-form").reset();
    await loadTipoffs();
  } catch (error) { $("tipoff-result").textContent = error.message; }
});
$("report-week").addEventListener("change", loadReports);
setInterval(() => { if (session) refresh(); }, 60000);  // ages stay true without events

applyLanguage();
api("/api/session").then(start).catch(() => showSignIn());
