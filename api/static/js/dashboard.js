// The manager's dashboard: live occupancy, funnel, footfall trend, dwell, shelves, paths,
// counts and camera health. Each panel shows what the key may see, or a plain sentence.
import { el, request, wireSignOut } from "./api.js";
import { dateToUnix, isoDate, label, shiftDays } from "./time.js";

const POLL_OCCUPANCY_MS = 1000;
const POLL_CAMERAS_MS = 5000;
const STAGE_NAMES = {
  passersby: "Passers-by", entered: "Entered", engaged: "Engaged", interacted: "Interacted", purchased: "Purchased",
};

const state = {
  tz: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC",
  start: null, end: null, bucket: "1h",
  shown: {}, // panel -> rows (first row = header) for the CSV download
  chart: null,
};

const $ = (selector) => document.querySelector(selector);
const pct = (rate) => (rate === null || rate === undefined ? "–" : `${(rate * 100).toFixed(1)} %`);
const num = (value, digits = 0) => (value === null || value === undefined ? "–" : Number(value).toFixed(digits));

function note(panel, text) {
  $(`#${panel} .note`).textContent = text || "";
  $(`#${panel}`).classList.remove("unavailable");
}

/** The panel cannot be shown: only its sentence is. */
function fail(panel, reason) {
  note(panel, reason);
  $(`#${panel}`).classList.add("unavailable");
}

function setStatus(text, ok) {
  const status = $("#status");
  status.textContent = text;
  status.className = "status " + (ok ? "ok" : "err");
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.round(seconds);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
}

function fillTable(tbody, rows, numeric = []) {
  tbody.replaceChildren(...rows.map((row) => el("tr", {}, ...row.map((cell, i) =>
    el("td", numeric.includes(i) ? { className: "num" } : {}, cell)))));
}

// ------------------------------------------------------------------ occupancy (display)
let etag = null;

async function pollOccupancy() {
  const r = await request("/v1/occupancy", { headers: etag ? { "If-None-Match": etag } : {}, what: "live occupancy" });
  if (r.status === 304) return setStatus("live", true);
  if (!r.ok) {
    setStatus(r.status === 401 ? "sign in" : "offline", false);
    return fail("occupancy", r.reason);
  }
  etag = r.headers.get("ETag");
  renderOccupancy(r.data);
  if (!performance.getEntriesByName("storesense:occupancy").length) performance.mark("storesense:occupancy");
  note("occupancy", "");
  setStatus("live", true);
}

function renderOccupancy(data) {
  const zones = Object.values(data.zones);
  $("#zones").replaceChildren(...zones.map((zone) => {
    const card = el("div", { className: "card", dataset: { zone: zone.zone } },
      el("div", { className: "count" }, zone.count),
      el("div", { className: "name" }, zone.zone));
    if (typeof zone.approaching === "number") {
      card.append(el("div", { className: "approaching", dataset: { approaching: zone.approaching } },
        `${zone.approaching} approaching`));
    }
    return card;
  }));
  const storeWide = data.store && typeof data.store.count === "number" ? data.store.count : null;
  const total = storeWide ?? zones.reduce((sum, zone) => sum + zone.count, 0);
  $("#store-total").textContent = total;
  $("#store-total").nextElementSibling.textContent = storeWide === null ? "in all zones" : "store-wide";
  state.shown.occupancy = [["zone", "count", "approaching"],
    ...zones.map((z) => [z.zone, z.count, z.approaching ?? ""])];
}

// ------------------------------------------------------------------ cameras (analyst)
async function pollCameras() {
  const r = await request("/v1/cameras", { what: "camera health" });
  const tbody = $("#cameras tbody");
  if (!r.ok) {
    tbody.replaceChildren();
    return fail("cameras", r.reason);
  }
  note("cameras", "");
  const now = Date.now() / 1000;
  const rows = r.data.map((c) => {
    const dropped = Object.entries(c.frames_dropped || {}).filter(([, n]) => n > 0);
    return [
      c.camera_id,
      c.stale ? `${c.state} (stale)` : c.state,
      c.fps === null || c.fps === undefined ? "–" : c.fps.toFixed(1),
      c.frames_processed,
      dropped.length ? dropped.map(([why, n]) => `${n} ${why.replaceAll("_", " ")}`).join(", ") : "0",
      c.last_frame_at ? `${Math.max(0, Math.round(now - c.last_frame_at))} s ago` : "–",
      c.last_error || "",
    ];
  });
  fillTable(tbody, rows, [2, 3]);
  tbody.querySelectorAll("tr").forEach((tr, i) => {
    tr.dataset.camera = r.data[i].camera_id;
    tr.children[1].className = `state ${r.data[i].state}`;
  });
  state.shown.cameras = [["camera", "state", "fps", "frames", "dropped", "last frame", "problem"], ...rows];
}

// ------------------------------------------------------------------ range
function rangeQuery(start = state.start, end = state.end) {
  return `from=${start}&to=${end}`;
}

/** The store's time zone, from a one-second counts query (cheap); the browser's without analyst scope. */
async function loadTimezone() {
  const now = Math.floor(Date.now() / 1000);
  const r = await request(`/v1/counts?from=${now - 1}&to=${now}&bucket=1d`, { what: "counts" });
  if (r.ok) state.tz = r.data.timezone;
}

function today() {
  state.start = dateToUnix(isoDate(Date.now() / 1000, state.tz), state.tz);
  state.end = shiftDays(state.start, 1, state.tz);
  state.bucket = "1h";
}

async function loadCounts() {
  const r = await request(`/v1/counts?${rangeQuery()}&bucket=1d`, { what: "counts" });
  const tbody = $("#today tbody");
  if (!r.ok) {
    tbody.replaceChildren();
    fail("counts", r.reason);
    return false;
  }
  note("counts", r.data.k_anonymity ? `Counts under ${r.data.k_anonymity} are hidden (≥ shows a lower bound).` : "");
  const totals = new Map();
  for (const row of r.data.rows) {
    const key = `${row.target}\u0000${row.measure}`;
    const total = totals.get(key) || { target: row.target, measure: row.measure, count: 0, hidden: false };
    if (row.count === null) total.hidden = true; else total.count += row.count;
    totals.set(key, total);
  }
  const rows = [...totals.values()];
  fillTable(tbody, rows.map((t) => [t.target, t.measure, t.hidden ? `≥${t.count}` : t.count]), [2]);
  tbody.querySelectorAll("tr").forEach((tr, i) => {
    tr.dataset.target = rows[i].target;
    tr.dataset.measure = rows[i].measure;
  });
  state.shown.counts = [["target", "measure", "count"], ...rows.map((t) => [t.target, t.measure, t.hidden ? "" : t.count])];
  return true;
}

function showRange() {
  const form = $("#range");
  form.from.value = isoDate(state.start, state.tz);
  form.to.value = isoDate(state.end - 1, state.tz);
  form.bucket.value = state.bucket;
  $("#range-note").textContent = `time zone ${state.tz}`;
}

/**
 * Today's (or the chosen range's) figures, most useful first: the store metrics (KPIs,
 * trend, dwell, shelves) alone, so they are not slowed by the rest; then a week earlier,
 * the funnel, the paths and the counts together, each panel drawn as its answer arrives.
 */
async function loadRange() {
  showRange();
  const weekAgo = [shiftDays(state.start, -7, state.tz), shiftDays(state.end, -7, state.tz)];
  const metrics = await request(`/v1/metrics?${rangeQuery()}&bucket=${state.bucket}`, { what: "store metrics" });
  $("#range").hidden = metrics.status === 401 || metrics.status === 403; // nothing to choose
  renderKpis(metrics);
  renderTrend(metrics, null);
  renderDwell(metrics);
  renderShelves(metrics);
  if (!performance.getEntriesByName("storesense:metrics").length) performance.mark("storesense:metrics");
  await Promise.all([
    request(`/v1/funnel?${rangeQuery()}`, { what: "the funnel" }).then((funnel) => renderFunnel(funnel, metrics)),
    request(`/v1/metrics?${rangeQuery(...weekAgo)}&bucket=${state.bucket}`, { what: "last week's footfall" })
      .then((previous) => renderTrend(metrics, previous)),
    request(`/v1/journeys?${rangeQuery()}`, { what: "paths between zones" }).then(renderPaths),
    request(`/v1/heatmap?${rangeQuery()}`, { what: "the floor heatmap" }).then(renderHeatmap),
    loadCounts(),
  ]);
  document.body.dataset.loaded = "true";
  if (!performance.getEntriesByName("storesense:loaded").length) performance.mark("storesense:loaded");
}

// ------------------------------------------------------------------ panels
function renderKpis(r) {
  const list = $("#kpis dl");
  if (!r.ok) {
    list.replaceChildren();
    return fail("kpis", r.reason);
  }
  note("kpis", "");
  const m = r.data;
  const items = [
    ["footfall", "Footfall", num(m.footfall)],
    ["passersby", "Passers-by", num(m.passersby)],
    ["shopfront_conversion", "Shopfront conversion", pct(m.shopfront_conversion)],
    ["bounce_rate", "Bounce (short visits)", pct(m.bounce_rate)],
    ["visit_duration_seconds", "Visit duration", duration(m.visit_duration_seconds)],
    ["transactions", "Transactions", num(m.transactions)],
    ["sales_conversion", "Sales conversion", pct(m.sales_conversion)],
  ];
  list.replaceChildren(...items.flatMap(([key, name, value]) => [
    el("dt", {}, name), el("dd", { dataset: { kpi: key } }, value)]));
  state.shown.kpis = [["measure", "value"], ...items.map(([key, , value]) => [key, value])];
}

function renderFunnel(r, metrics) {
  const list = $("#funnel ol");
  let stages;
  let bounce = null;
  if (r.ok) {
    stages = r.data.stages;
    bounce = r.data.bounce_rate;
    note("funnel", "");
  } else if (r.status === 404 && metrics.ok) {
    const m = metrics.data;
    stages = [
      { stage: "passersby", count: m.passersby, rate: null },
      { stage: "entered", count: m.footfall, rate: m.shopfront_conversion },
    ];
    if (m.transactions !== null) stages.push({ stage: "purchased", count: m.transactions, rate: m.sales_conversion });
    note("funnel", "Engaged and interacted need a server with the journeys API (GET /v1/funnel); shown from the store metrics.");
  } else {
    list.replaceChildren();
    return fail("funnel", r.reason);
  }
  const widest = Math.max(1, ...stages.map((s) => s.count || 0));
  list.replaceChildren(...stages.map((s) => el("li", { dataset: { stage: s.stage } },
    el("span", { className: "stage" }, STAGE_NAMES[s.stage] || s.stage),
    el("span", { className: "bar" }, el("span", { style: `width:${(100 * (s.count || 0)) / widest}%` })),
    el("span", { className: "count num" }, num(s.count)),
    el("span", { className: "rate num", title: "of the stage before" }, s.rate === null || s.rate === undefined ? "" : pct(s.rate)))));
  if (bounce !== null && bounce !== undefined) {
    list.append(el("li", { className: "bounce", dataset: { stage: "bounce" } },
      el("span", { className: "stage", title: "entered but not engaged" }, "Bounce"), el("span", { className: "muted" }, "not engaged"), el("span"), el("span", { className: "rate num" }, pct(bounce))));
  }
  state.shown.funnel = [["stage", "count", "rate"], ...stages.map((s) => [s.stage, s.count, s.rate ?? ""]), ["bounce", "", bounce ?? ""]];
}

function renderTrend(r, previous) {
  const box = $("#trend-chart");
  const thead = $("#trend-table thead");
  const tbody = $("#trend-table tbody");
  if (!r.ok) {
    box.replaceChildren();
    tbody.replaceChildren();
    return fail("trend", r.reason);
  }
  const buckets = r.data.buckets || [];
  const earlier = previous && previous.ok ? previous.data.buckets || [] : [];
  const xs = buckets.map((b) => Date.parse(b.start) / 1000);
  const now = buckets.map((b) => b.footfall);
  const before = buckets.map((_, i) => (i < earlier.length ? earlier[i].footfall : null));
  const multiDay = state.end - state.start > 86400 + 7200;
  $("#trend-caption").textContent = `per ${state.bucket}, against the same ${multiDay ? "days" : "weekday"} a week earlier`;
  note("trend", !previous || previous.ok ? "" : previous.reason);
  thead.replaceChildren(el("tr", {}, el("th", {}, "from"), el("th", {}, "footfall"), el("th", {}, "a week earlier")));
  fillTable(tbody, xs.map((x, i) => [label(x, state.tz, multiDay), now[i], before[i] ?? "–"]), [1, 2]);
  tbody.querySelectorAll("tr").forEach((tr, i) => { tr.dataset.bucketStart = xs[i]; });
  state.shown.trend = [["bucket_start", "footfall", "week_earlier"], ...xs.map((x, i) => [x, now[i], before[i] ?? ""])];
  box.dataset.series = JSON.stringify({ x: xs, footfall: now, weekEarlier: before });
  const later = Date.now() / 1000;
  drawChart(box, xs, now.map((n, i) => (xs[i] > later ? null : n)), before);
}

function drawChart(box, xs, now, before) {
  if (!window.uPlot) return;
  if (state.chart) state.chart.destroy();
  box.replaceChildren();
  const tz = state.tz;
  state.chart = new window.uPlot({
    width: Math.max(300, box.clientWidth || 600),
    height: 220,
    tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1000), tz),
    scales: { y: { range: (u, lo, hi) => [0, Math.max(4, hi * 1.1)] } },
    series: [
      {},
      { label: "this period", stroke: "#1f6feb", width: 2, fill: "#1f6feb22", points: { show: now.length < 60 } },
      { label: "a week earlier", stroke: "#9aa4b2", width: 2, dash: [6, 4], points: { show: false } },
    ],
    legend: { live: false },
    axes: [{}, { label: "people in", size: 50 }],
  }, [xs, now, before], box);
}

function renderDwell(r) {
  const tbody = $("#dwell tbody");
  if (!r.ok) { tbody.replaceChildren(); return fail("dwell", r.reason); }
  const m = r.data;
  const zones = [...new Set([...Object.keys(m.dwell), ...Object.keys(m.occupancy)])];
  const rows = zones.map((z) => {
    const d = m.dwell[z] || {};
    const o = m.occupancy[z] || {};
    return [z, num(d.visits), num(d.mean_seconds, 1), num(d.median_seconds, 1), num(d.p90_seconds, 1), num(o.mean, 2), num(o.peak)];
  });
  fillTable(tbody, rows, [1, 2, 3, 4, 5, 6]);
  tbody.querySelectorAll("tr").forEach((tr, i) => { tr.dataset.zone = zones[i]; });
  note("dwell", zones.length ? "" : "No zones.");
  state.shown.dwell = [["zone", "visits", "mean_s", "median_s", "p90_s", "mean_occupancy", "peak"], ...rows];
}

function renderShelves(r) {
  const tbody = $("#shelves tbody");
  if (!r.ok) { tbody.parentElement.hidden = true; return fail("shelves", r.reason); }
  const shelves = Object.entries(r.data.shelves || {});
  const rows = shelves.map(([id, s]) => [id, s.interactions, s.takes, s.put_backs]);
  fillTable(tbody, rows, [1, 2, 3]);
  tbody.parentElement.hidden = !shelves.length;
  note("shelves", shelves.length ? "" : "No shelf zones in this layout.");
  state.shown.shelves = [["shelf", "interactions", "takes", "put_backs"], ...rows];
}

function renderPaths(r) {
  const paths = $("#paths tbody");
  const transitions = $("#paths .transitions tbody");
  $("#paths").querySelectorAll("table, h3").forEach((node) => { node.hidden = !r.ok; });
  if (!r.ok) return fail("paths", r.reason);
  const j = r.data;
  const top = j.paths.slice(0, 10).map((p) => [p.path.join(" → "), p.visits]);
  fillTable(paths, top, [1]);
  const pairs = Object.entries(j.transitions).flatMap(([a, to]) => Object.entries(to).map(([b, n]) => [a, b, n]));
  pairs.sort((x, y) => y[2] - x[2]);
  fillTable(transitions, pairs.slice(0, 15), [2]);
  const other = j.other_visits ? ` ${j.other_visits} visits on paths seen fewer than ${j.k_anonymity} times are not shown.` : "";
  note("paths", `${j.visits} visits.${other}`);
  state.shown.paths = [["path", "visits"], ...top];
  state.shown.transitions = [["from", "to", "visits"], ...pairs];
}

/** Person-seconds per floor cell as a canvas: row 0 (smallest y) at the top, darker = busier
 * (square-root scale, so quiet cells stay visible beside the busiest). */
function renderHeatmap(r) {
  const canvas = $("#heatmap canvas");
  canvas.hidden = true;
  $("#heatmap-caption").textContent = "";
  if (!r.ok) {
    if (r.status === 404 && String(r.detail || "").includes("homography")) {
      return fail("heatmap", "No camera has a floor plan (a homography in the layout), so there is no floor heatmap.");
    }
    return fail("heatmap", r.reason);
  }
  const h = r.data;
  state.shown.heatmap = [["x_m", "y_m", "person_seconds"], ...h.cells];
  if (!h.cells.length) return note("heatmap", "No one was seen on the floor plan in this range.");
  const [rows, cols] = h.shape;
  const scale = Math.max(2, Math.floor(Math.min(480 / cols, 360 / rows)));
  canvas.width = cols * scale;
  canvas.height = rows * scale;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#f4f5f7";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const peak = Math.max(...h.cells.map((c) => c[2]));
  for (const [x, y, seconds] of h.cells) {
    const col = Math.floor((x - h.origin_m[0]) / h.cell_m);
    const row = Math.floor((y - h.origin_m[1]) / h.cell_m);
    ctx.fillStyle = `rgba(200, 40, 20, ${(0.15 + 0.85 * Math.sqrt(seconds / peak)).toFixed(3)})`;
    ctx.fillRect(col * scale, row * scale, scale, scale);
  }
  canvas.hidden = false;
  canvas.dataset.cells = h.cells.length;
  canvas.dataset.personSeconds = h.person_seconds;
  $("#heatmap-caption").textContent = `(${h.cameras.join(", ")})`;
  note("heatmap", `${Math.round(h.person_seconds)} person-seconds in ${h.cell_m} m cells; busiest cell ${Math.round(peak)} s. `
    + `Grid from x ${h.origin_m[0]} m, y ${h.origin_m[1]} m (top left), ${cols * h.cell_m} m × ${rows * h.cell_m} m.`);
}

// ------------------------------------------------------------------ CSV of what is shown
function csvCell(value) {
  const text = String(value ?? "");
  return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function downloadCsv() {
  const lines = [];
  for (const [panel, rows] of Object.entries(state.shown)) {
    if (!rows || rows.length < 2) continue;
    lines.push(csvCell(panel) + "," + rows[0].map(csvCell).join(","));
    for (const row of rows.slice(1)) lines.push(csvCell(panel) + "," + row.map(csvCell).join(","));
    lines.push("");
  }
  const blob = new Blob([lines.join("\n")], { type: "text/csv" });
  const link = el("a", { href: URL.createObjectURL(blob), download: `storesense-${isoDate(state.start ?? Date.now() / 1000, state.tz)}.csv` });
  document.body.append(link);
  link.click();
  link.remove();
}

// ------------------------------------------------------------------ start
async function start() {
  wireSignOut();
  pollOccupancy();
  setInterval(pollOccupancy, POLL_OCCUPANCY_MS);
  pollCameras();
  setInterval(pollCameras, POLL_CAMERAS_MS);
  const form = $("#range");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!form.from.value || !form.to.value) return;
    state.start = dateToUnix(form.from.value, state.tz);
    state.end = dateToUnix(form.to.value, state.tz, 1);
    if (state.end <= state.start) state.end = dateToUnix(form.from.value, state.tz, 1);
    state.bucket = form.bucket.value;
    loadRange();
  });
  $("#today-button").addEventListener("click", () => {
    today();
    loadRange();
  });
  $("#csv").addEventListener("click", downloadCsv);
  await loadTimezone();
  today();
  await loadRange();
}

start();
