// The live lane page: renders the board's snapshot, then each lane as it changes
// (server-sent events from /events). Every value is set as text or as an attribute:
// nothing received is ever parsed as HTML.
"use strict";

// Every string shown comes from one catalogue (/catalogue.json, gateway/display.yaml):
// zh-CN first, English second, units with the values. Nothing here names a value itself.
let CAT = null;
const FALLBACK = { zh: "", en: "" };

function entry(section, key) {
  return (CAT && CAT[section] && CAT[section][key]) || null;
}

// a label in both languages: the Chinese, then the English in a quieter span
function bi(label, cls) {
  const l = label || FALLBACK;
  return h("span", { class: cls ? `bi ${cls}` : "bi" }, l.zh, l.en ? h("span", { class: "en" }, ` ${l.en}`) : null);
}

function ui(key) {
  return entry("ui", key) || { zh: key, en: "" };
}

function uiText(key) {
  const l = ui(key);
  return l.en ? `${l.zh} ${l.en}` : l.zh;
}

function itemLabel(code) {
  return entry("items", code) || { zh: code, en: "" };
}

// the item's family (brake, headlamp, emission, speedometer) for its explanation
function family(code) {
  const families = (CAT && CAT.families) || {};
  const prefix = Object.keys(families).sort((a, b) => b.length - a.length).find((p) => code.startsWith(p));
  return prefix ? families[prefix] : "default";
}

function explanation(verdict, code) {
  const texts = (CAT && CAT.explain && CAT.explain[verdict]) || null;
  if (!texts) return null;
  return texts[family(code)] || texts.default || null;
}

const board = { station: "", lanes: new Map(), curves: new Map() };
const partKeys = new WeakMap(); // part of a lane card -> the data it shows, as JSON
const openDetails = new Set(); // "lane/item" of the "all values" boxes left open

// --- DOM helpers: text only --------------------------------------------------------
function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) node.setAttribute(key, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function valueLabel(name) {
  return entry("values", name);
}

function formatValue(value, unit) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "boolean") return uiText(value ? "yes_word" : "no_word");
  if (typeof value === "string") {
    const word = entry("words", value);
    return word ? `${word.zh} ${word.en}` : value;
  }
  if (!unit) return String(value);
  const known = entry("units", unit);
  return `${value} ${known ? known.zh : unit}`;
}

function clock(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString("zh-CN", { hour12: false });
}

function limitText(limit) {
  if (!limit) return "";
  if (limit.low !== null && limit.high !== null) return `${limit.low}–${limit.high}`;
  if (limit.low !== null) return `≥${limit.low}`;
  if (limit.high !== null) return `≤${limit.high}`;
  return "";
}

// --- rendering -----------------------------------------------------------------------
function renderAll() {
  document.getElementById("station").textContent = board.station ? `${uiText("station")} ${board.station}` : "";
  const main = document.getElementById("lanes");
  const names = [...board.lanes.keys()].sort();
  document.getElementById("no-lanes").hidden = names.length > 0;
  for (const card of main.querySelectorAll("section.lane")) {
    if (!board.lanes.has(card.dataset.lane)) card.remove();
  }
  for (const name of names) renderLane(name);
  applyFilter();
}

function laneCard(name) {
  const main = document.getElementById("lanes");
  for (const card of main.querySelectorAll("section.lane")) {
    if (card.dataset.lane === name) return card;
  }
  const card = h("section", { class: "lane", "data-lane": name });
  const later = [...main.querySelectorAll("section.lane")].find((c) => c.dataset.lane > name);
  main.insertBefore(card, later || null);
  document.getElementById("no-lanes").hidden = true;
  return card;
}

function renderLane(name) {
  const lane = board.lanes.get(name);
  if (!lane) return;
  const card = laneCard(name);
  const gateway = lane.gateway ? (lane.gateway.online ? "online" : "offline") : "unknown";
  card.dataset.gateway = gateway;
  card.dataset.plate = (lane.inspection && lane.inspection.plate) || "";
  const inspection = lane.inspection;
  const curves = board.curves.get(name);
  // each part is rebuilt only when its data changed: live values of the devices come
  // several times a second and must not redraw the curves under the reader's finger
  renderPart(card, "head", [lane.gateway], () => [laneHead(lane, gateway)]);
  renderPart(card, "vehicle", [inspection && [inspection.plate, inspection.vin, inspection.category,
    inspection.inspection_id, inspection.attempt]], () => inspection ? [vehicleBlock(inspection)] : []);
  // the status region is the only live region: a screen reader hears the step and the
  // verdict, not every value and device chip of the card
  renderPart(card, "status", [inspection && inspection.step, inspection && inspection.verdict,
    inspection && progressOf(inspection)], () => statusBlock(inspection), { role: "status", "aria-live": "polite" });
  renderPart(card, "inspection", [inspection, curves && curves.version], () =>
    inspection ? inspectionBlock(name, inspection) : [h("p", { class: "idle" }, bi(ui("idle")))]);
  renderPart(card, "devices", [lane.devices, gateway], () => [devicesBlock(lane)]);
  applyFilter();
}

function renderPart(card, part, data, build, attrs) {
  let node = card.querySelector(`:scope > [data-part="${part}"]`);
  if (!node) {
    node = h("div", { class: `part-${part}`, "data-part": part, ...(attrs || {}) });
    card.append(node);
  }
  const key = JSON.stringify(data);
  if (partKeys.get(node) === key) return;
  partKeys.set(node, key);
  node.replaceChildren(...build());
}

function laneHead(lane, gateway) {
  const head = h("header", { class: "lane-head" },
    h("h2", {}, `${lane.lane} `, h("small", {}, bi(ui("lane")))),
    h("span", { class: "badge gw", "data-gateway": gateway,
      title: lane.gateway ? `${lane.gateway.gateway_id} ${lane.gateway.version || ""}` : "" },
      bi(ui(`gateway_${gateway}`))));
  if (lane.gateway && lane.gateway.outbox_alarm) {
    head.append(h("span", { class: "badge alarm" }, bi(ui("outbox_alarm"))));
  }
  return head;
}

function progressOf(inspection) {
  const done = inspection.items.filter((item) => item.status === "done").length;
  return [done, inspection.items.length];
}

function statusBlock(inspection) {
  if (!inspection) return [];
  const blocks = [];
  const [done, total] = progressOf(inspection);
  if (inspection.verdict) {
    const overall = h("div", { class: "overall", "data-verdict": inspection.verdict },
      h("span", {}, bi(ui("overall")), " ", bi(entry("verdicts", inspection.verdict))));
    const texts = (CAT && CAT.explain && CAT.explain[inspection.verdict]) || {};
    const why = texts.overall || texts.default || null;
    if (why) overall.append(h("p", { class: "explain" }, bi(why)));
    blocks.push(overall);
  }
  blocks.push(h("p", { class: "progress", "data-done": done, "data-total": total },
    h("span", {}, `${done} / ${total} `, bi(ui("progress")))));
  if (inspection.step) blocks.push(stepBlock(inspection.step));
  return blocks;
}

function inspectionBlock(laneName, inspection) {
  const blocks = [];
  const curves = board.curves.get(laneName);
  const recordCurves = curves && curves.inspection_id === inspection.inspection_id ? curves.items : {};
  blocks.push(h("ol", { class: "items" },
    ...inspection.items.map((item) => itemBlock(laneName, item, recordCurves[item.code]))));
  const judged = inspection.summary.filter((m) => m.verdict !== null);
  if (judged.length) {
    blocks.push(h("div", { class: "summary" }, h("h3", {}, bi(ui("whole_vehicle"))), valueList(judged)));
  }
  return blocks;
}

function vehicleBlock(inspection) {
  const category = inspection.category ? entry("categories", inspection.category) : null;
  const attempt = inspection.attempt > 1 ? ` · ${ui("attempt_n").zh.replace("{n}", inspection.attempt)}` : "";
  const sub = [
    inspection.vin ? h("span", { class: "sub" }, `VIN ${inspection.vin}`) : null,
    category ? h("span", { class: "sub" }, bi(category)) : null,
    h("span", { class: "sub" }, bi(ui("serial")), ` ${inspection.inspection_id}${attempt}`),
  ].filter(Boolean);
  return h("div", { class: "vehicle" },
    inspection.plate ? h("span", { class: "plate" }, inspection.plate) : null, ...sub);
}

function stepBlock(step) {
  const what = h("span", { class: "what" });
  if (step.item_code) what.append(`${step.item_code} `, bi(itemLabel(step.item_code)), " · ");
  what.append(bi(entry("steps", step.step) || ui("progress")));
  const values = Object.entries(step.values || {})
    .filter(([name, value]) => valueLabel(name) && typeof value !== "string")
    .map(([name, value]) => `${valueLabel(name).zh} ${formatValue(value, valueLabel(name).unit)}`);
  if (values.length) what.append(h("span", { class: "step-values" }, values.join(" · ")));
  return h("div", { class: "step", "data-step": step.step, "data-item": step.item_code },
    what, h("time", { class: "when", datetime: step.ts || "" }, clock(step.ts)));
}

function itemBlock(laneName, item, curves) {
  const verdict = item.verdict ? entry("verdicts", item.verdict) : entry("statuses", item.status);
  const node = h("li", { class: "item", "data-item": item.code, "data-status": item.status,
    "data-verdict": item.verdict },
    h("div", { class: "item-head" },
      h("span", { class: "code" }, item.code),
      h("span", { class: "name" }, bi(itemLabel(item.code))),
      h("span", { class: "verdict" }, bi(verdict))));
  const judged = item.measurements.filter((m) => m.verdict !== null);
  if (judged.length) {
    node.append(valueList(judged));
  } else if (Object.keys(item.values).length) {
    const known = Object.entries(item.values).filter(([name]) => valueLabel(name));
    if (known.length) node.append(valueList(known.map(([name, value]) => ({ name, value, unit: null }))));
  }
  const why = item.verdict === "fail" || item.verdict === "aborted" ? explanation(item.verdict, item.code) : null;
  if (why) {
    const note = h("div", { class: "explain", "data-verdict": item.verdict }, h("p", {}, bi(why)));
    if (item.reason) {
      // the gateway's own words, for the inspector: folded away, the owner reads the above
      note.append(h("details", { class: "reason" }, h("summary", {}, bi(ui("reason"))), h("p", {}, item.reason)));
    }
    node.append(note);
  }
  if (item.flags.length) node.append(h("p", { class: "note" }, bi(ui("flags")), `: ${item.flags.join(", ")}`));
  if (curves && curves.length) {
    curves.forEach((curve) => node.append(curveFigure(item, curve, "record")));
  } else if (item.live.length > 1) {
    node.append(curveFigure(item, liveCurve(item.live), "live"));
  }
  if (item.trace && item.trace.length > 1) node.append(traceFigure(item));
  if (item.measurements.length > judged.length) node.append(moreValues(laneName, item));
  return node;
}

function valueList(measurements) {
  const list = h("dl", { class: "values" });
  for (const m of measurements) {
    const limit = limitText(m.limit);
    const mark = m.verdict === "pass" ? "✓" : m.verdict === "fail" ? "✗" : "";
    const label = valueLabel(m.name) || { zh: m.name.replaceAll("_", " "), en: "" };
    list.append(
      h("dt", {}, bi(label), limit ? ` (${limit})` : ""),
      h("dd", { class: "value", "data-name": m.name, "data-verdict": m.verdict },
        formatValue(m.value, m.unit || label.unit), mark ? h("span", { class: "mark" }, mark) : null));
  }
  return list;
}

function moreValues(laneName, item) {
  const key = `${laneName}/${item.code}`;
  const details = h("details", { class: "more" }, h("summary", {}, bi(ui("all_values"))),
    valueList(item.measurements));
  details.open = openDetails.has(key);
  details.addEventListener("toggle", () => {
    if (details.open) openDetails.add(key); else openDetails.delete(key);
  });
  return details;
}

function liveCurve(points) {
  // brake_live comes at most every 0.25 s: an outline until the record's curve arrives
  return { interval_ms: 250, left: points.map((p) => Number(p[0]) || 0), right: points.map((p) => Number(p[1]) || 0) };
}

function curveFigure(item, curve, source) {
  const width = 320, height = 150, pad = { left: 34, right: 8, top: 8, bottom: 18 };
  const count = Math.max(curve.left.length, curve.right.length);
  const peak = Math.max(1, ...curve.left, ...curve.right);
  const top = Math.ceil(peak * 1.1 / 50) * 50;
  const seconds = ((count - 1) * curve.interval_ms) / 1000;
  const x = (i) => pad.left + (count > 1 ? (i / (count - 1)) * (width - pad.left - pad.right) : 0);
  const y = (v) => height - pad.bottom - (Math.max(0, v) / top) * (height - pad.top - pad.bottom);
  const line = (values, cls) => svg("polyline", {
    class: cls, points: values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" "),
  });
  const title = ui(source === "live" ? "live_curve" : "record_curve");
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `${item.code} ${title.zh}` });
  chart.append(
    svg("line", { class: "axis", x1: pad.left, y1: pad.top, x2: pad.left, y2: height - pad.bottom }),
    svg("line", { class: "axis", x1: pad.left, y1: height - pad.bottom, x2: width - pad.right, y2: height - pad.bottom }),
    svg("text", { x: 2, y: pad.top + 8 }, top),
    svg("text", { x: 2, y: height - pad.bottom }, 0),
    svg("text", { x: width - pad.right, y: height - 4, "text-anchor": "end" }, `${seconds.toFixed(2)} s`),
    line(curve.left, "l"), line(curve.right, "r"));
  const max = ui("max").zh;
  return h("figure", { class: "curve", "data-item": item.code, "data-source": source, "data-samples": count },
    chart,
    h("figcaption", {}, h("span", {}, `${item.code} `, bi(title), " (daN)"),
      h("span", { class: "l" }, `${ui("left").zh} L ${max} ${Math.max(0, ...curve.left)}`),
      h("span", { class: "r" }, `${ui("right").zh} R ${max} ${Math.max(0, ...curve.right)}`)));
}

// ASM/VMAS: the roller speed each second against its target and the band around it
// (points: [speed, target, low, high] km/h), on a scale that zooms on the trace
function traceFigure(item) {
  const width = 320, height = 150, pad = { left: 34, right: 8, top: 8, bottom: 18 };
  const points = item.trace;
  const count = points.length;
  const bottom = Math.floor(Math.min(...points.map((p) => Math.min(p[0], p[2]))) - 1);
  const top = Math.ceil(Math.max(...points.map((p) => Math.max(p[0], p[3]))) + 1);
  const x = (i) => pad.left + (i / (count - 1)) * (width - pad.left - pad.right);
  const y = (v) => height - pad.bottom - ((v - bottom) / (top - bottom)) * (height - pad.top - pad.bottom);
  const xy = (i, v) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`;
  const band = [...points.map((p, i) => xy(i, p[3])), ...points.map((p, i) => xy(i, p[2])).reverse()];
  const line = (k, cls) => svg("polyline", { class: cls, points: points.map((p, i) => xy(i, p[k])).join(" ") });
  const title = ui("speed_trace");
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `${item.code} ${title.zh}` });
  chart.append(
    svg("polygon", { class: "band", points: band.join(" ") }),
    svg("line", { class: "axis", x1: pad.left, y1: pad.top, x2: pad.left, y2: height - pad.bottom }),
    svg("line", { class: "axis", x1: pad.left, y1: height - pad.bottom, x2: width - pad.right, y2: height - pad.bottom }),
    svg("text", { x: 2, y: pad.top + 8 }, top),
    svg("text", { x: 2, y: height - pad.bottom }, bottom),
    svg("text", { x: width - pad.right, y: height - 4, "text-anchor": "end" }, `${count} s`),
    line(1, "target"), line(0, "speed"));
  points.forEach((p, i) => {
    if (p[0] < p[2] || p[0] > p[3]) chart.append(svg("circle", { class: "out", cx: x(i).toFixed(1), cy: y(p[0]).toFixed(1), r: 2 }));
  });
  const [speed, target, low, high] = points[count - 1];
  const inside = low <= speed && speed <= high;
  const unit = entry("units", "km/h");
  const kmh = unit ? unit.zh : "km/h";
  return h("figure", { class: "curve trace", "data-item": item.code, "data-samples": count,
    "data-in-band": inside },
    chart,
    h("figcaption", {}, h("span", {}, `${item.code} `, bi(title), ` (${kmh})`),
      h("span", { class: "speed" }, `${ui("actual_speed").zh} ${speed}`),
      h("span", { class: "target" }, `${valueLabel("target_kmh").zh} ${target}`),
      h("span", { class: "band-text" }, `${ui("target_band").zh} ${low}–${high}`),
      h("span", { class: "in-band" }, bi(ui(inside ? "in_band" : "out_of_band")))));
}

function devicesBlock(lane) {
  const chips = lane.devices.map((device) => {
    const availability = device.availability || "unknown";
    const tele = device.telemetry ? Object.entries(device.telemetry)
      .filter(([name, value]) => valueLabel(name) && typeof value !== "string")
      .map(([name, value]) => `${valueLabel(name).zh} ${formatValue(value, valueLabel(name).unit)}`).join(" · ") : "";
    return h("span", { class: "chip", "data-device": device.id, "data-availability": availability,
      title: device.last_error || "" },
      bi(entry("device_classes", device.device_class) || { zh: device.device_class, en: "" }),
      ` ${device.id} · `, bi(entry("availability", availability)),
      tele ? h("span", { class: "tele" }, tele) : null);
  });
  return h("div", { class: "devices" }, h("h3", {}, bi(ui("devices"))), h("div", { class: "chips" }, ...chips));
}

// --- filter by lane or plate -----------------------------------------------------------
function filterText() {
  return document.getElementById("filter").value.trim().toLowerCase();
}

function applyFilter() {
  const text = filterText();
  let shown = 0;
  for (const card of document.querySelectorAll("section.lane")) {
    const match = !text || card.dataset.lane.toLowerCase() === text ||
      (card.dataset.plate || "").toLowerCase().includes(text);
    card.hidden = !match;
    if (match) shown += 1;
  }
  const none = document.getElementById("no-match");
  none.hidden = !text || shown > 0 || board.lanes.size === 0;
}

function setupFilter() {
  const input = document.getElementById("filter");
  const params = new URLSearchParams(window.location.search);
  input.value = params.get("plate") || params.get("lane") || params.get("q") || "";
  input.addEventListener("input", () => {
    const url = new URL(window.location.href);
    url.search = input.value.trim() ? `?q=${encodeURIComponent(input.value.trim())}` : "";
    window.history.replaceState(null, "", url);
    applyFilter();
  });
}

function staticTexts() {
  for (const node of document.querySelectorAll("[data-ui]")) {
    node.replaceChildren(bi(ui(node.dataset.ui)));
  }
  const input = document.getElementById("filter");
  input.placeholder = uiText("filter_placeholder");
  input.setAttribute("aria-label", uiText("filter"));
}

// --- the live stream -----------------------------------------------------------------
function setLink(state, text) {
  const link = document.getElementById("link");
  link.dataset.link = state;
  link.textContent = text;
}

function connect() {
  const source = new EventSource("/events");
  source.addEventListener("open", () => setLink("live", uiText("live")));
  source.addEventListener("error", () => setLink("lost", `${uiText("reconnecting")}…`));
  source.addEventListener("snapshot", (event) => {
    const snapshot = JSON.parse(event.data);
    board.station = snapshot.station;
    board.lanes = new Map(snapshot.lanes.map((lane) => [lane.lane, lane]));
    board.curves = new Map(snapshot.curves.map((curves) => [curves.lane, curves]));
    renderAll();
  });
  source.addEventListener("lane", (event) => {
    const lane = JSON.parse(event.data);
    board.lanes.set(lane.lane, lane);
    renderLane(lane.lane);
  });
  source.addEventListener("curves", (event) => {
    const curves = JSON.parse(event.data);
    board.curves.set(curves.lane, curves);
    renderLane(curves.lane);
  });
}

async function start() {
  const answer = await fetch("/catalogue.json");
  CAT = await answer.json();
  staticTexts();
  setupFilter();
  connect();
}

start();
