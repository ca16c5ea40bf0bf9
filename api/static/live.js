// StoreSense live page: polls /v1/occupancy with If-None-Match and today's /v1/counts.
"use strict";

const POLL_OCCUPANCY_MS = 1000;
const POLL_COUNTS_MS = 10000;

const key = new URLSearchParams(location.hash.slice(1)).get("key") || localStorage.getItem("storesenseKey");
if (key) localStorage.setItem("storesenseKey", key);

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (key) h["X-API-Key"] = key;
  return h;
}

function setStatus(text, ok) {
  const el = document.getElementById("status");
  el.textContent = text;
  el.className = "status " + (ok ? "ok" : "err");
}

let etag = null;

async function pollOccupancy() {
  try {
    const response = await fetch("/v1/occupancy", {
      headers: headers(etag ? { "If-None-Match": etag } : {}),
      cache: "no-store",
    });
    if (response.status === 304) {
      setStatus("live", true);
      return;
    }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      setStatus(`occupancy: ${response.status} ${body.detail || ""}`, false);
      return;
    }
    etag = response.headers.get("ETag");
    renderZones(await response.json());
    setStatus("live", true);
  } catch (err) {
    setStatus("service unreachable", false);
  }
}

function renderZones(data) {
  const container = document.getElementById("zones");
  container.replaceChildren();
  for (const zone of Object.values(data.zones)) {
    const card = document.createElement("div");
    card.className = "card";
    card.dataset.zone = zone.zone;
    const count = document.createElement("div");
    count.className = "count";
    count.textContent = String(zone.count);
    const name = document.createElement("div");
    name.className = "name";
    name.textContent = zone.zone;
    card.append(count, name);
    container.append(card);
  }
}

async function pollCounts() {
  const midnight = new Date();
  midnight.setHours(0, 0, 0, 0);
  const from = Math.floor(midnight.getTime() / 1000);
  const to = from + 86400;
  const note = document.getElementById("today-note");
  try {
    const response = await fetch(`/v1/counts?from=${from}&to=${to}&bucket=1d`, {
      headers: headers({ Accept: "application/json" }),
      cache: "no-store",
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      note.textContent = response.status === 403
        ? "Today's counts need an analyst key."
        : `counts: ${response.status} ${body.detail || ""}`;
      return;
    }
    renderCounts(await response.json());
    note.textContent = "";
  } catch (err) {
    note.textContent = "counts unavailable";
  }
}

function renderCounts(data) {
  const totals = new Map();
  for (const row of data.rows) {
    const k = `${row.target}\u0000${row.measure}`;
    const prev = totals.get(k) || { target: row.target, measure: row.measure, count: 0, hidden: false };
    if (row.count === null) prev.hidden = true; else prev.count += row.count;
    totals.set(k, prev);
  }
  const tbody = document.querySelector("#today tbody");
  tbody.replaceChildren();
  for (const t of totals.values()) {
    const tr = document.createElement("tr");
    tr.dataset.target = t.target;
    tr.dataset.measure = t.measure;
    for (const [text, cls] of [[t.target, ""], [t.measure, ""], [t.hidden ? `≥${t.count}` : String(t.count), "num"]]) {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) td.className = cls;
      tr.append(td);
    }
    tbody.append(tr);
  }
}

pollOccupancy();
pollCounts();
setInterval(pollOccupancy, POLL_OCCUPANCY_MS);
setInterval(pollCounts, POLL_COUNTS_MS);
