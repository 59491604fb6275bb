"""The live status page, served at /status: one HTML file, no external assets.

It fetches /status.json (same origin) once a second and redraws with plain JavaScript and
inline SVG. It draws only what /status.json says; every field may be missing or null, and a
failed fetch shows a "cannot reach the server" banner over the last data until a fetch works.
Text from the server (paths, worker names, reasons) is only ever set as text, never as markup.

Stable element ids, for people and tests: ready, draining, running, queued, throughput,
inflight-count, stuck, conn-open, conn-idle, conn-active, occupancy, throughput-chart,
queue-wait-chart, service-chart (and their -p50/-p95/-p99), responses, refusals, inflight,
timeline, conn-state.
"""

STATUS_PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>poolserver status</title>
<style>
:root { --fg: #1b1b1b; --muted: #505050; --line: #c8c8c8; --panel: #f4f5f7;
  --done: #1f5fa8; --open: #137333; --stuck: #b3261e; --wait: #e4e4e4; --queue: #b85c00; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, sans-serif; color: var(--fg); background: #fff; }
header { display: flex; flex-wrap: wrap; gap: .6rem; align-items: center;
  padding: .6rem 1rem; border-bottom: 1px solid var(--line); }
h1 { font-size: 1.2rem; margin: 0 .5rem 0 0; }
h2 { font-size: 1rem; margin: 0 0 .3rem; }
main { padding: .6rem 1rem 2rem; max-width: 1400px; }
section { margin: 1rem 0; }
.muted { color: var(--muted); }
.badge { padding: .1rem .6rem; border-radius: 1rem; font-weight: 600; }
.ok { background: #d4eed9; color: #0b4a1c; }
.bad { background: #f9d6d2; color: #6e140e; }
.warn { background: #fbe6c2; color: #5c3400; }
.hidden { display: none; }
#conn-state { padding: .5rem 1rem; font-weight: 600; background: #6e140e; color: #fff; }
body.offline main { opacity: .45; }
.figures { display: grid; gap: .6rem;
  grid-template-columns: repeat(auto-fill, minmax(165px, 1fr)); }
.figure { background: var(--panel); padding: .45rem .7rem; border-radius: .4rem; }
.figure .v { font-size: 1.6rem; font-weight: 650; font-variant-numeric: tabular-nums; }
.figure .l, .figure .s { color: var(--muted); font-size: .85rem; }
.cols { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); gap: 1rem; }
svg { display: block; width: 100%; }
svg text { font: 11px system-ui, sans-serif; fill: var(--fg); }
svg .axis { stroke: var(--line); } svg .grid { stroke: #ececec; }
svg .label-on-dark { fill: #fff; } svg .muted-label { fill: var(--muted); }
.span.done { fill: var(--done); } .span.running { fill: var(--open); }
.span.stuck { fill: var(--stuck); stroke: #3d0906; stroke-width: 1.5; }
.waiting { fill: var(--wait); }
.unknown { fill: #ffffff; stroke: var(--wait); stroke-dasharray: 3 3; }
.legend { display: flex; flex-wrap: wrap; gap: .9rem; font-size: .85rem; margin: .2rem 0 .4rem; }
.legend span::before { content: ""; display: inline-block; width: .9em; height: .9em;
  margin-right: .3em; vertical-align: -.1em; background: var(--c); }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: .2rem .5rem; border-bottom: 1px solid #e2e2e2; }
td.path { max-width: 40ch; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
tr.stuck td { background: #f9d6d2; }
.bar { display: inline-block; height: .8em; background: var(--done); vertical-align: -.05em; }
.bars td:first-child { width: 9rem; } .bars td:last-child { width: 6rem; text-align: right; }
</style>
</head>
<body>
<div id="conn-state" class="hidden" role="alert"></div>
<header>
  <h1>poolserver <span id="version" class="muted"></span></h1>
  <span id="ready" class="badge">waiting for data</span>
  <span id="draining" class="badge hidden">draining</span>
  <span class="muted">up <span id="uptime">&ndash;</span>
    &middot; updated <span id="updated">never</span></span>
  <span id="render-error" class="badge bad hidden"></span>
</header>
<main>
<section class="figures" aria-label="current figures">
  <div class="figure"><div class="l">running</div><div class="v" id="running">&ndash;</div>
    <div class="s">of <span id="workers">&ndash;</span> workers</div></div>
  <div class="figure"><div class="l">waiting for a worker</div>
    <div class="v" id="queued">&ndash;</div>
    <div class="s" id="queued-detail"></div></div>
  <div class="figure"><div class="l">throughput</div><div class="v" id="throughput">&ndash;</div>
    <div class="s">completed per second</div></div>
  <div class="figure"><div class="l">in flight</div><div class="v" id="inflight-count">&ndash;</div>
    <div class="s">requests in the application</div></div>
  <div class="figure"><div class="l">stuck workers</div><div class="v" id="stuck">&ndash;</div>
    <div class="s"><span id="idle-workers">&ndash;</span> workers idle</div></div>
  <div class="figure"><div class="l">connections open</div>
    <div class="v" id="conn-open">&ndash;</div>
    <div class="s"><span id="conn-active">&ndash;</span> active &middot;
      <span id="conn-idle">&ndash;</span> idle</div></div>
  <div class="figure"><div class="l">queue wait p95, recent</div>
    <div class="v" id="recent-wait">&ndash;</div><div class="s">readiness looks at this</div></div>
</section>
<div class="cols">
  <section><h2 id="occupancy-title">Pool occupancy</h2>
    <div class="legend"><span style="--c: var(--done)">running</span>
      <span style="--c: var(--queue)">waiting for a worker</span>
      <span style="--c: #444">workers / capacity (dashed)</span></div>
    <svg id="occupancy" role="img" aria-labelledby="occupancy-title" height="190"></svg></section>
  <section><h2 id="throughput-title">Throughput (completed per second)</h2>
    <div class="legend"><span style="--c: var(--open)">completed / s</span></div>
    <svg id="throughput-chart" role="img" aria-labelledby="throughput-title" height="190"></svg>
  </section>
  <section><h2 id="queue-wait-title">Queue wait, since the start</h2>
    <div class="muted">p50 <b id="queue-wait-chart-p50">&ndash;</b> &middot; p95
      <b id="queue-wait-chart-p95">&ndash;</b> &middot; p99 <b id="queue-wait-chart-p99">&ndash;</b>
      &middot; <span id="queue-wait-chart-count"></span></div>
    <svg id="queue-wait-chart" role="img" aria-labelledby="queue-wait-title" height="170"></svg>
  </section>
  <section><h2 id="service-title">Service time, since the start</h2>
    <div class="muted">p50 <b id="service-chart-p50">&ndash;</b> &middot; p95
      <b id="service-chart-p95">&ndash;</b> &middot; p99 <b id="service-chart-p99">&ndash;</b>
      &middot; <span id="service-chart-count"></span></div>
    <svg id="service-chart" role="img" aria-labelledby="service-title" height="170"></svg>
  </section>
  <section><h2>Responses by status class, since the start</h2>
    <table class="bars" id="responses"></table></section>
  <section><h2>Refusals by reason, since the start</h2><table class="bars" id="refusals"></table>
    <h2 style="margin-top:.8rem">Other counts</h2><table class="bars" id="other-totals"></table>
  </section>
</div>
<section><h2 id="timeline-title">Workers, last <span id="timeline-window">&ndash;</span> s</h2>
  <div class="legend"><label>show <select id="timeline-zoom"><option value="0">all the server keeps
    </option><option value="2">the last 2 s</option><option value="0.5">the last 0.5 s</option>
    </select></label><span style="--c: var(--done)">request (done)</span>
    <span style="--c: var(--open)">request running now</span>
    <span style="--c: var(--stuck)">stuck (past request_timeout)</span>
    <span style="--c: var(--wait)">waiting</span></div>
  <svg id="timeline" role="img" aria-labelledby="timeline-title" height="60"></svg></section>
<section><h2>In flight (<span id="inflight-shown">0</span>)</h2>
  <table id="inflight"><thead><tr><th>request</th><th>method</th><th>path</th><th>age</th>
    <th>worker</th><th>stuck</th></tr></thead><tbody id="inflight-rows"></tbody></table>
  <div id="inflight-more" class="muted"></div></section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const SVGNS = $("timeline").namespaceURI;  // the page names no URL, not even this one
const DASH = "\u2013";
const num = (v) => (typeof v === "number" && isFinite(v) ? v : null);
const arr = (v) => (Array.isArray(v) ? v : []);
const obj = (v) => (v && typeof v === "object" && !Array.isArray(v) ? v : {});

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}
function titled(e, text) { e.appendChild(svg("title", {}, text)); return e; }
function put(id, text) { const e = $(id); if (e) e.textContent = text; }
function fmtInt(v) { v = num(v); return v === null ? DASH : String(Math.round(v)); }
function fmtDur(s) {
  s = num(s);
  if (s === null) return DASH;
  const a = Math.abs(s);
  if (a < 0.001) return (s * 1e6).toFixed(0) + " \u00b5s";
  if (a < 1) return `${+(s * 1e3).toPrecision(3)} ms`;
  return `${+s.toPrecision(3)} s`;
}
function fmtUptime(s) {
  s = num(s);
  if (s === null) return DASH;
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  return d ? `${d} d ${h} h` : h ? `${h} h ${m} min` : m ? `${m} min ${Math.floor(s % 60)} s`
    : `${Math.floor(s)} s`;
}
function width(el) { return Math.max(300, Math.floor(el.getBoundingClientRect().width) || 900); }
function start(el, title, h) {
  const w = width(el);
  el.replaceChildren(svg("title", {}, title));
  el.setAttribute("viewBox", `0 0 ${w} ${h}`);
  el.setAttribute("height", h);
  return w;
}
function niceStep(range, ticks) {  // a round step for about `ticks` ticks; always > 0
  const raw = range / ticks, p = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw);
  return step > 0 && isFinite(step) ? step : Math.abs(range) || 1;
}

// ------------------------------------------------------------------ header and figures

function header(d) {
  put("version", typeof d.version === "string" ? d.version : "");
  put("uptime", fmtUptime(d.uptime));
  const t = num(d.time);
  put("updated", t === null ? DASH : new Date(t * 1000).toLocaleTimeString());
  const ready = obj(d.ready), el = $("ready");
  const reason = typeof ready.reason === "string" ? ready.reason : "no reason given";
  const [cls, text] = ready.ready === true ? ["ok", "ready"]
    : ready.ready === false ? ["bad", "not ready: " + reason] : ["warn", "readiness unknown"];
  el.className = "badge " + cls;
  el.textContent = text;
  $("draining").classList.toggle("hidden", d.draining !== true);
}

function figures(d) {
  const pool = obj(d.pool), conns = obj(d.connections);
  const queued = num(pool.queued), line = num(pool.waiting);
  put("running", fmtInt(pool.running));
  put("workers", fmtInt(pool.max_workers));
  put("queued", queued === null && line === null ? DASH : fmtInt((queued || 0) + (line || 0)));
  put("queued-detail", `${fmtInt(queued)} in the queue, ${fmtInt(line)} in the admission line;`
    + ` capacity ${fmtInt(pool.capacity)}`);
  const rate = num(pool.throughput);
  put("throughput", rate === null ? DASH : rate.toFixed(1));
  put("inflight-count", String(arr(d.inflight).length));
  put("stuck", fmtInt(pool.stuck));
  put("idle-workers", fmtInt(pool.idle));
  put("conn-open", fmtInt(conns.open));
  put("conn-idle", fmtInt(conns.idle));
  put("conn-active", fmtInt(conns.active));
  put("recent-wait", fmtDur(d.recent_queue_wait_p95));
}

// ------------------------------------------------------------------ time series

// One chart over the history: areas (drawn in order, so later ones on top), dashed reference
// lines; x is seconds before the server's "time", y from 0 to ymax.
function series(el, title, xmin, ymax, areas, refs, yfmt) {
  const H = 190, L = 44, R = 12, T = 10, B = 22, W = start(el, title, H);
  const x = (t) => L + (t - xmin) / -xmin * (W - L - R);
  const y = (v) => T + (1 - Math.min(v, ymax) / ymax) * (H - T - B);
  const ystep = niceStep(ymax, 4);
  for (let v = 0; v <= ymax + 1e-9; v += ystep) {
    el.appendChild(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    el.appendChild(svg("text", { x: L - 5, y: y(v) + 4, "text-anchor": "end" }, yfmt(v)));
  }
  const xstep = niceStep(-xmin, 6);
  for (let t = 0; t >= xmin - 1e-9; t -= xstep) {
    el.appendChild(svg("text", { x: x(t), y: H - 6, "text-anchor": t === 0 ? "end" : "middle" },
      t === 0 ? "now" : `${Math.round(t)} s`));
  }
  el.appendChild(svg("line", { class: "axis", x1: L, x2: W - R, y1: y(0), y2: y(0) }));
  for (const a of areas) {
    if (!a.points.length) continue;
    const pts = a.points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`);
    const first = a.points[0][0], last = a.points[a.points.length - 1][0];
    const poly = `${x(first).toFixed(1)},${y(0)} ${pts.join(" ")} ${x(last).toFixed(1)},${y(0)}`;
    el.appendChild(titled(svg("polygon", { points: poly, fill: a.fill }), a.name));
    el.appendChild(titled(svg("polyline", { points: pts.join(" "), fill: "none", stroke: a.color,
      "stroke-width": 1.8 }), a.name));
  }
  for (const r of refs) {
    const v = num(r.value);
    if (v === null) continue;
    if (v > ymax) {
      el.appendChild(svg("text", { x: L + 4, y: T + 2 }, `${r.name} ${v}: above the scale`));
      continue;
    }
    el.appendChild(titled(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#444",
      "stroke-dasharray": "5 4" }), `${r.name}: ${v}`));
    el.appendChild(svg("text", { x: W - R, y: y(v) - 3, "text-anchor": "end" }, `${r.name} ${v}`));
  }
}

function history(d) {
  const now = num(d.time), pool = obj(d.pool), h = [];
  for (const s of arr(d.history)) {
    const o = obj(s), t = num(o.time);
    if (t !== null && now !== null) h.push({ t: Math.min(0, t - now), run: num(o.running) || 0,
      wait: num(o.backlog) || 0, rate: num(o.rate) || 0 });
  }
  const xmin = Math.min(-60, ...h.map((p) => Math.floor(p.t)));
  const workers = num(pool.max_workers), capacity = num(pool.capacity);
  const peak = Math.max(1, workers || 0, ...h.map((p) => p.run + p.wait));
  const ymax = capacity >= peak && capacity <= peak * 1.5 ? capacity : peak * 1.15;
  series($("occupancy"), `Pool occupancy over the last ${-xmin} s: running and waiting jobs`,
    xmin, ymax,
    [{ name: "waiting for a worker (on top of running)", color: "var(--queue)", fill: "#f5d3ad",
       points: h.map((p) => [p.t, p.run + p.wait]) },
     { name: "running", color: "var(--done)", fill: "#b9cfea",
       points: h.map((p) => [p.t, p.run]) }],
    [{ name: "workers", value: workers }, { name: "capacity", value: capacity }],
    (v) => String(Math.round(v)));
  const rmax = Math.max(1, ...h.map((p) => p.rate)) * 1.15;
  series($("throughput-chart"), `Completed requests per second over the last ${-xmin} s`,
    xmin, rmax, [{ name: "completed / s", color: "var(--open)", fill: "#bfe0c8",
                   points: h.map((p) => [p.t, p.rate]) }],
    [], (v) => (rmax < 5 ? v.toFixed(1) : String(Math.round(v))));
}

// ------------------------------------------------------------------ distributions

function distribution(id, name, summary) {
  const s = obj(summary), el = $(id), H = 170, L = 8, R = 8, T = 18, B = 34;
  const W = start(el, `${name}: requests per bucket, with p50, p95 and p99`, H);
  const rows = arr(s.buckets).filter((b) => Array.isArray(b) && num(b[1]) !== null);
  const bounds = rows.map((b) => (b[0] === "+Inf" ? Infinity : num(b[0])));
  const counts = rows.map((b, i) => Math.max(0, b[1] - (i ? rows[i - 1][1] : 0)));
  for (const q of ["p50", "p95", "p99"]) put(`${id}-${q}`, fmtDur(s[q]));
  const count = num(s.count), sum = num(s.sum);
  put(`${id}-count`, count === null ? "" : `${count} requests` +
    (count && sum !== null ? `, mean ${fmtDur(sum / count)}` : ""));
  if (!rows.length) {
    el.appendChild(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no data"));
    return;
  }
  const n = rows.length, bw = (W - L - R) / n, top = Math.max(1, ...counts);
  const label = (i) => (bounds[i] === Infinity ? `> ${fmtDur(bounds[i - 1])}`
    : `\u2264 ${fmtDur(bounds[i])}`);
  counts.forEach((c, i) => {
    const h = (c / top) * (H - T - B), x = L + i * bw;
    el.appendChild(titled(svg("rect", { x: x + 1, y: H - B - h, width: Math.max(1, bw - 2),
      height: h, fill: "var(--done)", class: "bucket" }), `${label(i)}: ${c} requests`));
    if (i % 2) return;
    el.appendChild(svg("text", { x: x + bw / 2, y: H - B + 13, "text-anchor": "middle" },
      label(i).replace("\u2264 ", "")));
  });
  el.appendChild(svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
  el.appendChild(svg("text", { x: L, y: H - 4 }, "bucket upper bound (every other one labelled)"));
  ["p50", "p95", "p99"].forEach((q, k) => {
    const v = num(s[q]);
    if (v === null) return;
    let i = bounds.findIndex((b) => b !== null && v <= b);
    if (i < 0) i = n - 1;
    const lo = i ? bounds[i - 1] : 0, hi = bounds[i];
    const frac = hi === Infinity || hi === null || hi <= lo ? 0.5 : (v - lo) / (hi - lo);
    const x = L + (i + Math.min(1, Math.max(0, frac))) * bw;
    el.appendChild(titled(svg("line", { x1: x, x2: x, y1: T - 4, y2: H - B, stroke: "var(--stuck)",
      "stroke-dasharray": "3 3" }), `${q} ${fmtDur(v)}`));
    el.appendChild(svg("text", { x: x + 3, y: T - 6 + k * 11 }, q));
  });
}

function timings(d) {
  const t = obj(d.timings);
  distribution("queue-wait-chart", "Queue wait", t.queue_wait);
  distribution("service-chart", "Service time", t.service);
}

// ------------------------------------------------------------------ counters and table

function bars(id, entries) {
  const el = $(id), top = Math.max(1, ...entries.map(([, v]) => v || 0));
  el.replaceChildren();
  if (!entries.length) { el.insertRow().insertCell().textContent = "none"; return; }
  for (const [k, v] of entries) {
    const row = el.insertRow();
    row.dataset.key = k;
    row.insertCell().textContent = k;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${((v || 0) / top) * 100}%`;
    row.insertCell().appendChild(bar);
    row.insertCell().textContent = fmtInt(v);
  }
}
const counts = (o) => Object.entries(obj(o)).map(([k, v]) => [k, num(v)]);

function totals(d) {
  const t = obj(d.totals);
  bars("responses", counts(t.responses));
  bars("refusals", counts(t.refusals));
  bars("other-totals", [
    ...counts(t.bad_requests).map(([k, v]) => [`bad request ${k}`, v]),
    ["timeouts (408)", num(t.timeouts)], ["slow", num(t.slow)], ["stuck", num(t.stuck)]]);
}

function inflight(d) {
  const list = arr(d.inflight).map(obj), body = $("inflight-rows"), shown = list.slice(0, 100);
  body.replaceChildren();
  for (const r of shown) {
    const row = body.insertRow();
    row.dataset.number = fmtInt(r.number);
    if (r.stuck === true) row.className = "stuck";
    for (const [cls, v] of [["number", fmtInt(r.number)], ["method", r.method], ["path", r.path],
      ["age", fmtDur(r.age)], ["worker", r.worker], ["stuck", r.stuck === true ? "stuck" : "no"]]) {
      const cell = row.insertCell();
      cell.className = cls;
      cell.textContent = v === null || v === undefined ? DASH : String(v);
      if (cls === "path") cell.title = cell.textContent;
    }
  }
  put("inflight-shown", String(list.length));
  put("inflight-more", list.length > shown.length ? `and ${list.length - shown.length} more` : "");
}

// ------------------------------------------------------------------ the timeline

function timeline(d) {
  const tl = obj(d.timeline), zoom = Number($("timeline-zoom").value) || 0;
  let win = num(tl.window) > 0 ? tl.window : 10;
  if (zoom > 0 && zoom < win) win = zoom;
  const workers = arr(tl.workers).map(obj), el = $("timeline");
  put("timeline-window", String(win));
  const rowH = 24, T = 4, B = 22, L = 150, R = 12;
  const H = T + Math.max(1, workers.length) * rowH + B;
  const W = start(el, `Per worker, the requests it ran in the last ${win} s; gaps are waiting`, H);
  const x = (t) => L + (Math.min(0, Math.max(-win, t)) + win) / win * (W - L - R);
  if (!workers.length) {
    el.appendChild(svg("text", { x: L, y: T + 16 }, "no worker has run a request yet"));
  }
  workers.forEach((w, i) => {
    const y = T + i * rowH, name = typeof w.name === "string" ? w.name : "?";
    const g = svg("g", { class: "worker", "data-worker": name });
    g.appendChild(titled(svg("text", { x: 4, y: y + 16 }, name.replace(/^poolserver-/, "")), name));
    g.appendChild(titled(svg("rect", { class: "waiting", x: L, y: y + 2, width: W - L - R,
      height: rowH - 4 }), `${name}: waiting`));
    // Before `since` nothing is known (the worker did not exist, or its record was not kept).
    const since = num(w.since);
    if (since !== null && since > -win) {
      g.appendChild(titled(svg("rect", { class: "unknown", x: L, y: y + 2,
        width: Math.max(0, x(since) - L), height: rowH - 4 }), `${name}: no record`));
    }
    const spans = [];
    for (const s of arr(w.spans).map(obj)) {
      const a = num(s.start), open = s.end === null, b = open ? 0 : num(s.end);
      if (a === null || b === null || b < -win) continue;
      const state = s.state === "stuck" ? "stuck" : open ? "running" : "done";
      spans.push({ a, b, open, state, n: num(s.request) ?? "?" });
    }
    spans.sort((p, q) => p.a - q.a);
    // The end of the last span drawn: the gaps after it are labelled "waiting".
    let free = since !== null && since > -win ? since : -win;
    for (const s of spans) {
      const xa = x(s.a), xb = x(s.b), sw = Math.max(1, xb - xa);
      if (x(s.a) - x(free) > 70) {
        g.appendChild(svg("text", { x: (x(free) + xa) / 2, y: y + 16, "text-anchor": "middle",
          class: "muted-label" }, "waiting"));
      }
      free = Math.max(free, s.b);
      const what = s.state === "done" ? `${fmtDur(-s.a)} ago to ${fmtDur(-s.b)} ago`
        : `since ${fmtDur(-s.a)} ago, ${s.state}`;
      g.appendChild(titled(svg("rect", { class: `span ${s.state}`, "data-request": String(s.n),
        x: xa, y: y + 2, width: sw, height: rowH - 4 }), `${name}: request ${s.n}, ${what}`));
      const text = sw > 95 ? `request ${s.n}` : String(s.n);
      if (sw > text.length * 6.5 + 6) {
        g.appendChild(svg("text", { class: "label-on-dark", x: xa + sw / 2, y: y + 16,
          "text-anchor": "middle", "pointer-events": "none" }, text));
      }
    }
    if (x(0) - x(free) > 70) {
      g.appendChild(svg("text", { x: (x(free) + x(0)) / 2, y: y + 16, "text-anchor": "middle",
        class: "muted-label" }, "waiting"));
    }
    el.appendChild(g);
  });
  const step = niceStep(win, 10), yb = H - B;
  for (let t = 0; t >= -win - 1e-9; t -= step) {
    el.appendChild(svg("line", { class: "axis", x1: x(t), x2: x(t), y1: yb, y2: yb + 4 }));
    el.appendChild(svg("text", { x: x(t), y: yb + 16, "text-anchor": t === 0 ? "end" : "middle" },
      t === 0 ? "now" : `${+t.toFixed(2)} s`));
  }
}

// ------------------------------------------------------------------ the loop

let last = null, lastOk = null;
function render(d) {
  const failed = [];
  for (const part of [header, figures, history, timings, totals, inflight, timeline]) {
    try { part(d); } catch (e) { failed.push(part.name); console.error(e); }
  }
  const el = $("render-error");
  el.textContent = failed.length ? "could not draw: " + failed.join(", ") : "";
  el.classList.toggle("hidden", !failed.length);
}

async function refresh() {
  const began = Date.now(), abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 3000);
  try {
    const r = await fetch("/status.json", { cache: "no-store", signal: abort.signal });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    last = obj(await r.json());
    lastOk = new Date();
    document.body.classList.remove("offline");
    $("conn-state").classList.add("hidden");
    render(last);
  } catch (e) {
    document.body.classList.add("offline");
    const el = $("conn-state");
    el.textContent = "Cannot reach the server (" + (e && e.message ? e.message : e) + "). "
      + (lastOk ? `Showing data from ${lastOk.toLocaleTimeString()}. ` : "")
      + "Retrying every second.";
    el.classList.remove("hidden");
  } finally {
    clearTimeout(timer);
    setTimeout(refresh, Math.max(0, 1000 - (Date.now() - began)));
  }
}
window.addEventListener("resize", () => { if (last) render(last); });
$("timeline-zoom").addEventListener("change", () => { if (last) timeline(last); });
refresh();
</script>
</body>
</html>
"""
