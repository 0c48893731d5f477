// ShaftWatch alert console: the ranked open list, one incident's evidence and audit trail,
// the actions a patrol takes, and live updates. Plain browser JavaScript, no build step.
// Everything shown comes from the console API with the operator's token; text from the
// data is always set as text, never as HTML.
"use strict";

const TOKEN_KEY = "shaftwatch.operator-token";
const URGENT = new Set(["high", "critical"]);
const SEVERITY_WORDS = {critical: "紧急 critical", high: "高 high", medium: "中 medium", low: "低 low", info: "提示 info"};
const STATE_WORDS = {new: "新 new", acknowledged: "已确认 acknowledged", dispatched: "已出警 dispatched", resolved: "已销号 resolved"};
const ALLOWED = {new: ["acknowledge", "dispatch", "resolve"], acknowledged: ["dispatch", "resolve"],
                 dispatched: ["resolve"], resolved: []};

const $ = (id) => document.getElementById(id);
let selected = null;          // the incident id shown in the detail pane
let known = new Set();        // incident ids in the list, to tell new ones on a live update
let fresh = new Set();        // ids changed by a live update, highlighted once
let reloadTimer = null;
let unseenUrgent = 0;

function token() { return sessionStorage.getItem(TOKEN_KEY); }

async function api(path, options = {}) {
  const response = await fetch(path, {...options, headers: {...(options.headers || {}),
    "Authorization": `Bearer ${token()}`, "Content-Type": "application/json"}});
  if (response.status === 401) { signOut("令牌无效 The token was not accepted."); throw new Error("unauthorized"); }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function when(ts) { return new Date(ts * 1000).toLocaleString("zh-CN", {hour12: false}); }

function ago(ts) {
  const minutes = Math.max(0, Math.round((Date.now() / 1000 - ts) / 60));
  return minutes < 60 ? `${minutes} min ago` : minutes < 2880 ? `${Math.round(minutes / 60)} h ago`
    : `${Math.round(minutes / 1440)} d ago`;
}

function severityBadge(severity) { return el("span", SEVERITY_WORDS[severity] || severity, `sev sev-${severity}`); }

// ------------------------------------------------------------------ the list

async function loadList() {
  const {incidents} = await api("/api/incidents");
  const body = $("incidents").querySelector("tbody");
  body.replaceChildren();
  const counts = {};
  for (const incident of incidents) {
    counts[incident.severity] = (counts[incident.severity] || 0) + 1;
    const row = el("tr");
    row.dataset.id = incident.id;
    if (incident.id === selected) row.classList.add("selected");
    if (fresh.has(incident.id)) row.classList.add("fresh");
    const sev = el("td"); sev.append(severityBadge(incident.severity));
    const summary = el("td", incident.summary);
    if (incident.silenced_by !== null && incident.silenced_by !== undefined) summary.append(el("span", "静默 silenced", "tag"));
    row.append(sev, el("td", incident.score.toFixed(2)), el("td", incident.site_id), summary,
               el("td", STATE_WORDS[incident.state] || incident.state), el("td", ago(incident.opened_at), "when"));
    row.addEventListener("click", () => select(incident.id));
    body.append(row);
  }
  fresh.clear();
  known = new Set(incidents.map((i) => i.id));
  $("empty").hidden = incidents.length > 0;
  $("counts").replaceChildren(...["critical", "high", "medium", "low", "info"].filter((s) => counts[s])
    .map((s) => { const span = el("span"); span.append(severityBadge(s), ` ${counts[s]}`); return span; }));
  document.title = (unseenUrgent ? `(${unseenUrgent}) ` : "") + "ShaftWatch 值班台";
}

function scheduleReload() {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(async () => {
    await loadList().catch(showLinkError);
    if (selected) await select(selected, false).catch(() => {});
  }, 250);  // a burst of changes is one reload
}

// ------------------------------------------------------------------ one incident

async function select(id, scroll = true) {
  const incident = await api(`/api/incidents/${encodeURIComponent(id)}`);
  selected = id;
  if (location.hash !== `#/incidents/${id}`) history.replaceState(null, "", `#/incidents/${id}`);
  for (const row of $("incidents").querySelectorAll("tbody tr")) row.classList.toggle("selected", row.dataset.id === id);
  $("detail").hidden = false;
  const title = $("detail-title");
  title.replaceChildren(severityBadge(incident.severity), ` ${incident.site_id} · ${incident.id}`);
  $("detail-summary").textContent = incident.summary;
  const facts = [["状态 State", STATE_WORDS[incident.state] || incident.state], ["分数 Score", incident.score.toFixed(2)],
    ["开始 Opened", when(incident.opened_at)], ["最新证据 Last evidence", when(incident.updated_at)]];
  if (incident.disposition) facts.push(["处置 Disposition", incident.disposition]);
  if (incident.note) facts.push(["备注 Note", incident.note]);
  if (incident.previous_incident_id) facts.push(["前序事件 Follows", incident.previous_incident_id]);
  $("detail-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", k), el("dd", v)]));
  const silence = incident.silence;
  $("detail-silence").hidden = !silence;
  if (silence) {
    $("detail-silence").textContent = `静默 Silenced by ${silence.created_by} until ${when(silence.ends_at)}: ${silence.reason}`;
  }
  for (const button of $("actions").querySelectorAll("button[data-action]")) {
    button.disabled = !(ALLOWED[incident.state] || []).includes(button.dataset.action);
  }
  $("disposition").disabled = incident.state === "resolved";
  $("action-error").textContent = "";
  renderEvidence(incident.signals || []);
  $("audit").replaceChildren(...(incident.audit || []).map((a) => {
    const item = el("li");
    item.append(el("span", when(a.at), "when"), ` ${a.actor} · ${a.action}`);
    if (a.detail && a.detail.note) item.append(` — ${a.detail.note}`);
    return item;
  }));
  if (scroll) $("detail").scrollIntoView({block: "nearest"});
}

function renderEvidence(signals) {
  $("evidence").replaceChildren(...signals.map((s) => {
    const item = el("li");
    item.append(el("span", when(s.ts), "when"), ` ${s.source_kind}/${s.kind} · ${s.source_id} · strength ${s.strength.toFixed(2)}`);
    item.append(el("div", s.summary));
    for (const ref of s.evidence || []) {
      if (ref.startsWith("snapshot:")) {
        const img = el("img", null, "evidence-img");
        img.alt = `snapshot from ${s.source_id}`;
        item.append(img);
        loadImage(img, ref);
      } else {
        item.append(el("div", ref, "when"));
      }
    }
    return item;
  }));
}

async function loadImage(img, ref) {
  // An <img src> cannot carry the token: fetch the file, show it from memory.
  const response = await fetch(`/api/evidence?ref=${encodeURIComponent(ref)}`,
                               {headers: {"Authorization": `Bearer ${token()}`}});
  if (response.ok) img.src = URL.createObjectURL(await response.blob());
  else img.replaceWith(el("div", `${ref} (not available)`, "when"));
}

async function act(action) {
  const body = {note: $("note").value || null};
  if (action === "resolve") {
    body.disposition = $("disposition").value || null;
    if (!body.disposition) { $("action-error").textContent = "销号需要处置结果 Resolving needs a disposition."; return; }
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

// ------------------------------------------------------------------ live updates

function setLink(up, text) {
  $("link").className = `link ${up ? "up" : "down"}`;
  $("link").textContent = `● ${text}`;
}

function showLinkError() { setLink(false, "重连中 reconnecting…"); }

function onEvent(event) {
  if (event.type === "hello") { setLink(true, "实时 live"); scheduleReload(); return; }
  if (event.type === "resync") { scheduleReload(); return; }
  if (event.type !== "incident") return;
  fresh.add(event.incident_id);
  if (!known.has(event.incident_id) && URGENT.has(event.severity) && document.hidden) unseenUrgent += 1;
  scheduleReload();
}

async function follow() {
  let wait = 1000;
  while (token()) {
    try {
      const response = await fetch("/api/live", {headers: {"Authorization": `Bearer ${token()}`}});
      if (response.status === 401) { signOut("令牌无效 The token was not accepted."); return; }
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
    showLinkError();
    await new Promise((resolve) => setTimeout(resolve, wait));
    wait = Math.min(wait * 2, 30000);
  }
}

// ------------------------------------------------------------------ sign-in

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  $("console").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message || "";
  setLink(false, "未连接 offline");
}

async function start() {
  $("sign-in").hidden = true;
  $("console").hidden = false;
  $("sign-out").hidden = false;
  await loadList();
  const wanted = location.hash.match(/^#\/incidents\/(.+)$/);
  if (wanted) await select(decodeURIComponent(wanted[1])).catch(() => {});
  follow();
}

$("sign-in").addEventListener("submit", async (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  $("token").value = "";
  try { await start(); } catch (error) { if (token()) $("sign-in-error").textContent = error.message; }
});
$("sign-out").addEventListener("click", () => signOut());
for (const button of $("actions").querySelectorAll("button[data-action]")) {
  button.addEventListener("click", () => act(button.dataset.action));
}
document.addEventListener("visibilitychange", () => { if (!document.hidden) { unseenUrgent = 0; scheduleReload(); } });
setInterval(() => { if (token()) loadList().catch(() => {}); }, 60000);  // ages stay true without events

if (token()) start().catch(() => signOut()); else signOut();
