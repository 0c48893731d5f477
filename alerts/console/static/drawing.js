// Pictures drawn by hand as SVG (no library, no online service): a meter's power curve, the
// devices in a fence zone over time, and the map of the county's shafts. Each function
// takes plain data and returns an <svg> element; text is always set as text.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

// County time (the configs' offset from UTC), not the browser's: "01:30", "12-02 01:30".
function countyClock(ts, offsetH, withDate = false) {
  const iso = new Date((ts + offsetH * 3600) * 1000).toISOString();
  return withDate ? `${iso.slice(5, 10)} ${iso.slice(11, 16)}` : iso.slice(11, 16);
}

const SEVERITY_COLOURS = {critical: "#d93025", high: "#f29900", medium: "#fdd663", low: "#8a96a6", info: "#5f6b7a"};

// A power curve: readings seen (kW over time) against the meter's usual level.
function powerChart(samples, expectedKw, offsetH, labels) {
  const W = 600, H = 200, left = 44, right = 12, top = 14, bottom = 26;
  const svg = svgEl("svg", {viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": labels.caption});
  if (!samples.length) {
    svg.append(svgEl("text", {x: W / 2, y: H / 2, "text-anchor": "middle"}, labels.empty));
    return svg;
  }
  const times = samples.map((s) => s[0]);
  const t0 = Math.min(...times), t1 = Math.max(...times, t0 + 900);
  const yMax = Math.max(1, ...samples.map((s) => s[1]), expectedKw || 0) * 1.15;
  const x = (t) => left + (W - left - right) * (t - t0) / (t1 - t0);
  const y = (kw) => H - bottom - (H - top - bottom) * kw / yMax;
  for (const fraction of [0, 0.5, 1]) {
    const kw = yMax * fraction;
    svg.append(svgEl("line", {x1: left, x2: W - right, y1: y(kw), y2: y(kw), stroke: "#2a2f36"}));
    svg.append(svgEl("text", {x: left - 6, y: y(kw) + 4, "text-anchor": "end"}, kw.toFixed(kw < 10 ? 1 : 0)));
  }
  svg.append(svgEl("text", {x: left, y: H - 6}, countyClock(t0, offsetH, true)));
  svg.append(svgEl("text", {x: W - right, y: H - 6, "text-anchor": "end"}, countyClock(t1, offsetH, true)));
  if (expectedKw !== null && expectedKw !== undefined) {
    svg.append(svgEl("line", {x1: left, x2: W - right, y1: y(expectedKw), y2: y(expectedKw), stroke: "#5bd67a",
                              "stroke-dasharray": "6 4", "stroke-width": 2, class: "expected"}));
    svg.append(svgEl("text", {x: W - right, y: y(expectedKw) - 5, "text-anchor": "end"}, labels.expected));
  }
  const points = samples.map((s) => `${x(s[0]).toFixed(1)},${y(s[1]).toFixed(1)}`).join(" ");
  svg.append(svgEl("polyline", {points, fill: "none", stroke: "#f29900", "stroke-width": 2.5, class: "seen"}));
  for (const s of samples) svg.append(svgEl("circle", {cx: x(s[0]), cy: y(s[1]), r: 3, fill: "#f29900"}));
  svg.append(svgEl("text", {x: left + 4, y: top + 8}, labels.seen));
  return svg;
}

// Devices in a fence zone: one row per device, a bar from when it was first to last seen.
function fenceTimeline(devices, offsetH, caption) {
  const rowH = 22, W = 600, left = 150, right = 12, top = 8, bottom = 24;
  const H = top + bottom + rowH * Math.max(1, devices.length);
  const svg = svgEl("svg", {viewBox: `0 0 ${W} ${H}`, class: "timeline", role: "img", "aria-label": caption});
  if (!devices.length) return svg;
  const t0 = Math.min(...devices.map((d) => d.first)), t1 = Math.max(...devices.map((d) => d.last), t0 + 600);
  const x = (t) => left + (W - left - right) * (t - t0) / (t1 - t0);
  devices.forEach((d, i) => {
    const y = top + i * rowH;
    svg.append(svgEl("text", {x: 4, y: y + 15}, `${d.pid.slice(0, 14)}…`));
    svg.append(svgEl("rect", {x: x(d.first), y: y + 4, width: Math.max(4, x(d.last) - x(d.first)), height: rowH - 8,
                              rx: 3, fill: d.kind === "vehicle_terminal" ? "#8ab4f8" : "#fdd663", class: "device"}));
  });
  svg.append(svgEl("text", {x: left, y: H - 6}, countyClock(t0, offsetH, true)));
  svg.append(svgEl("text", {x: W - right, y: H - 6, "text-anchor": "end"}, countyClock(t1, offsetH, true)));
  return svg;
}

// The county's shafts on a Web Mercator plane, coloured by their most severe open
// incident; under them, tiles from a configured XYZ server when there is one.
function shaftMap(sites, tileUrl, onPick) {
  const W = 800, pad = 60;
  const mercator = (lon, lat, zoom) => {
    const scale = 256 * 2 ** zoom, rad = lat * Math.PI / 180;
    return [(lon + 180) / 360 * scale, (1 - Math.log(Math.tan(rad) + 1 / Math.cos(rad)) / Math.PI) / 2 * scale];
  };
  const lons = sites.map((s) => s.lon), lats = sites.map((s) => s.lat);
  const span = Math.max(Math.max(...lons) - Math.min(...lons), Math.max(...lats) - Math.min(...lats), 0.01);
  const zoom = Math.max(1, Math.min(17, Math.floor(Math.log2((W - 2 * pad) * 360 / (256 * span)))));
  const pts = sites.map((s) => mercator(s.lon, s.lat, zoom));
  const minX = Math.min(...pts.map((p) => p[0])) - pad, minY = Math.min(...pts.map((p) => p[1])) - pad;
  const maxX = Math.max(...pts.map((p) => p[0])) + pad, maxY = Math.max(...pts.map((p) => p[1])) + pad;
  const svg = svgEl("svg", {viewBox: `${minX} ${minY} ${maxX - minX} ${maxY - minY}`, class: "map", role: "img"});
  const unit = (maxX - minX) / 100;  // sizes relative to the drawing, whatever the county's extent
  if (tileUrl) {
    for (let tx = Math.floor(minX / 256); tx * 256 < maxX; tx++) {
      for (let ty = Math.floor(minY / 256); ty * 256 < maxY; ty++) {
        const href = tileUrl.replace("{z}", zoom).replace("{x}", tx).replace("{y}", ty);
        svg.append(svgEl("image", {href, x: tx * 256, y: ty * 256, width: 256, height: 256, opacity: 0.6}));
      }
    }
  } else {
    for (let gx = Math.ceil(minX / 64) * 64; gx < maxX; gx += 64) {
      svg.append(svgEl("line", {x1: gx, x2: gx, y1: minY, y2: maxY, stroke: "#20262d"}));
    }
    for (let gy = Math.ceil(minY / 64) * 64; gy < maxY; gy += 64) {
      svg.append(svgEl("line", {x1: minX, x2: maxX, y1: gy, y2: gy, stroke: "#20262d"}));
    }
  }
  sites.forEach((site, i) => {
    const [px, py] = pts[i];
    const worst = site.incidents[0];  // ranked: the most severe first
    const group = svgEl("g", {class: "site", "data-site": site.id, cursor: worst ? "pointer" : "default"});
    group.append(svgEl("title", {}, `${site.id} ${site.name} · ${site.township} · ${site.status}`));
    group.append(svgEl("circle", {cx: px, cy: py, r: unit * (worst ? 1.4 : 1), stroke: "#0b0d10",
                                  "stroke-width": unit * 0.3, fill: worst ? SEVERITY_COLOURS[worst.severity] : "#5f6b7a"}));
    group.append(svgEl("text", {x: px + unit * 1.8, y: py + unit * 0.6,
                                style: `font-size: ${unit * 2}px; fill: #e8eaed`},
                       `${site.id}${site.incidents.length ? ` (${site.incidents.length})` : ""}`));
    if (worst) group.addEventListener("click", () => onPick(worst.id));
    svg.append(group);
  });
  return svg;
}
