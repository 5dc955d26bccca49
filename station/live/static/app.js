// The live lane page: renders the board's snapshot, then each lane as it changes
// (server-sent events from /events). Every value is set as text or as an attribute:
// nothing received is ever parsed as HTML.
"use strict";

const ITEM_NAMES = {
  B1: "一轴制动", B2: "二轴制动", B3: "三轴制动", B4: "四轴制动", B5: "五轴制动",
  B0: "驻车制动", H1: "左外灯", H2: "左内灯", H3: "右内灯", H4: "右外灯",
  S1: "车速表", TSI: "双怠速排放", FA: "自由加速烟度",
};
const VERDICTS = { pass: "合格", fail: "不合格", aborted: "中止", not_judged: "不判定" };
const STATUS = { pending: "待检", running: "检测中", done: "已完成" };
const AVAILABILITY = { online: "在线", degraded: "异常", offline: "离线", starting: "启动中" };
const DEVICE_CLASSES = {
  brake_tester: "制动台", axle_weigher: "轴重台", headlamp_tester: "灯光仪",
  gas_analyser: "尾气分析仪", opacimeter: "烟度计", speedometer_tester: "车速表台",
};
const CATEGORIES = {
  passenger_car: "乘用车", other_le_3500kg: "其他汽车 ≤3500kg", other: "其他汽车",
  articulated: "铰接客车 / 汽车列车", trailer: "挂车",
};
const VALUE_NAMES = {
  axle_brake_ratio: "制动率", unbalance: "不平衡率", drag_ratio_left: "左阻滞率",
  drag_ratio_right: "右阻滞率", parking_brake_ratio: "驻车制动率",
  vehicle_brake_ratio: "整车制动率", high_beam_intensity: "远光发光强度",
  headlamp_high_beam_total: "远光总强度", static_axle_load: "轴荷",
  max_force_left: "左最大制动力", max_force_right: "右最大制动力",
  drag_force_left: "左阻滞力", drag_force_right: "右阻滞力", axle_load_kg: "轴荷 kg",
  intensity_cd: "发光强度 cd", total_cd: "总强度 cd", parking_force_total: "驻车制动力",
  speedometer_actual_at_40_kmh: "实际车速 (指示40)", vehicle_weight: "整车重量",
  lamp_height: "灯高", lamp_system: "灯制",
};

const STEPS = {
  inspection_started: "开始检测", inspection_finished: "检测结束", item_started: "项目开始",
  item_result: "项目结果", brake_positioning: "驶上滚筒", brake_on_rollers: "车辆到位",
  brake_weighing: "称重", brake_weighed: "称重完成", brake_drag: "测阻滞力",
  brake_braking: "制动中", brake_live: "制动中", brake_result: "制动结果",
  brake_lift_up: "举升驶离", brake_stay: "停留 · 准备驻车制动", headlamp_setup: "开远光灯",
  headlamp_left_measuring: "测左灯", headlamp_right_measuring: "测右灯", headlamp_homing: "灯光仪回位",
  headlamp_lamp_measured: "灯光测量", headlamp_total: "远光总强度", headlamp_judged: "灯光判定",
  headlamp_reused: "灯光判定", speedometer_spinning: "车速表测试", speedometer_latched: "车速读取",
  speedometer_lift_down: "举升下降",
};

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

function itemName(code) {
  return ITEM_NAMES[code] || code;
}

function valueName(name) {
  return VALUE_NAMES[name] ? `${VALUE_NAMES[name]}` : name.replaceAll("_", " ");
}

function formatValue(value, unit) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "boolean") return value ? "是" : "否";
  return unit ? `${value} ${unit}` : String(value);
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
  document.getElementById("station").textContent = board.station ? `检测站 ${board.station}` : "";
  const main = document.getElementById("lanes");
  const names = [...board.lanes.keys()].sort();
  document.getElementById("no-lanes").hidden = names.length > 0;
  for (const card of main.querySelectorAll("section.lane")) {
    if (!board.lanes.has(card.dataset.lane)) card.remove();
  }
  for (const name of names) renderLane(name);
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
  const inspection = lane.inspection;
  const curves = board.curves.get(name);
  // each part is rebuilt only when its data changed: live values of the devices come
  // several times a second and must not redraw the curves under the reader's finger
  renderPart(card, "head", [lane.gateway], () => [laneHead(lane, gateway)]);
  renderPart(card, "inspection", [inspection, curves && curves.version], () =>
    inspection ? inspectionBlock(name, inspection) : [h("p", { class: "idle" }, "空闲 · 暂无检测 idle")]);
  renderPart(card, "devices", [lane.devices, gateway], () => [devicesBlock(lane)]);
}

function renderPart(card, part, data, build) {
  let node = card.querySelector(`:scope > [data-part="${part}"]`);
  if (!node) {
    node = h("div", { class: `part-${part}`, "data-part": part });
    card.append(node);
  }
  const key = JSON.stringify(data);
  if (partKeys.get(node) === key) return;
  partKeys.set(node, key);
  node.replaceChildren(...build());
}

function laneHead(lane, gateway) {
  const label = { online: "网关在线", offline: "网关离线", unknown: "网关未知" }[gateway];
  const head = h("header", { class: "lane-head" },
    h("h2", {}, `${lane.lane} `, h("small", {}, "检测线")),
    h("span", { class: "badge gw", "data-gateway": gateway,
      title: lane.gateway ? `${lane.gateway.gateway_id} ${lane.gateway.version || ""}` : "" }, label));
  if (lane.gateway && lane.gateway.outbox_alarm) {
    head.append(h("span", { class: "badge alarm" }, "发件箱告警 outbox alarm"));
  }
  return head;
}

function inspectionBlock(laneName, inspection) {
  const blocks = [vehicleBlock(inspection)];
  if (inspection.verdict) {
    blocks.push(h("div", { class: "overall", "data-verdict": inspection.verdict },
      `总评 ${VERDICTS[inspection.verdict] || inspection.verdict} · ${inspection.verdict.toUpperCase()}`));
  }
  if (inspection.step) blocks.push(stepBlock(inspection.step));
  const curves = board.curves.get(laneName);
  const recordCurves = curves && curves.inspection_id === inspection.inspection_id ? curves.items : {};
  blocks.push(h("ol", { class: "items" },
    ...inspection.items.map((item) => itemBlock(laneName, item, recordCurves[item.code]))));
  const judged = inspection.summary.filter((m) => m.verdict !== null);
  if (judged.length) {
    blocks.push(h("div", { class: "summary" }, h("h3", {}, "整车 whole vehicle"), valueList(judged)));
  }
  return blocks;
}

function vehicleBlock(inspection) {
  const sub = [
    inspection.vin ? `VIN ${inspection.vin}` : null,
    inspection.category ? CATEGORIES[inspection.category] || inspection.category : null,
    `检验流水号 ${inspection.inspection_id}${inspection.attempt > 1 ? ` · 第${inspection.attempt}次` : ""}`,
  ].filter(Boolean);
  return h("div", { class: "vehicle" },
    inspection.plate ? h("span", { class: "plate" }, inspection.plate) : null,
    ...sub.map((text) => h("span", { class: "sub" }, text)));
}

function stepBlock(step) {
  const where = step.item_code ? `${step.item_code} ${itemName(step.item_code)} · ` : "";
  const label = STEPS[step.step] ? `${STEPS[step.step]}: ` : "";
  return h("div", { class: "step", "data-step": step.step, "data-item": step.item_code },
    h("span", { class: "when" }, clock(step.ts)), `${where}${label}${step.message}`);
}

function itemBlock(laneName, item, curves) {
  const verdictText = item.verdict ? VERDICTS[item.verdict] || item.verdict : STATUS[item.status] || item.status;
  const node = h("li", { class: "item", "data-item": item.code, "data-status": item.status,
    "data-verdict": item.verdict },
    h("div", { class: "item-head" },
      h("span", { class: "code" }, item.code),
      h("span", { class: "name" }, itemName(item.code)),
      h("span", { class: "verdict" }, verdictText)));
  const judged = item.measurements.filter((m) => m.verdict !== null);
  if (judged.length) {
    node.append(valueList(judged));
  } else if (Object.keys(item.values).length) {
    node.append(valueList(Object.entries(item.values).map(([name, value]) => ({ name, value, unit: null }))));
  }
  if (item.reason) node.append(h("p", { class: "note" }, item.reason));
  if (item.flags.length) node.append(h("p", { class: "note" }, `可疑数据 flags: ${item.flags.join(", ")}`));
  if (curves && curves.length) {
    curves.forEach((curve) => node.append(curveFigure(item, curve, "record")));
  } else if (item.live.length > 1) {
    node.append(curveFigure(item, liveCurve(item.live), "live"));
  }
  if (item.measurements.length > judged.length) node.append(moreValues(laneName, item));
  return node;
}

function valueList(measurements) {
  const list = h("dl", { class: "values" });
  for (const m of measurements) {
    const limit = limitText(m.limit);
    const mark = m.verdict === "pass" ? "✓" : m.verdict === "fail" ? "✗" : "";
    list.append(
      h("dt", {}, valueName(m.name), limit ? ` (${limit})` : ""),
      h("dd", { class: "value", "data-name": m.name, "data-verdict": m.verdict },
        formatValue(m.value, m.unit), mark ? h("span", { class: "mark" }, mark) : null));
  }
  return list;
}

function moreValues(laneName, item) {
  const key = `${laneName}/${item.code}`;
  const details = h("details", { class: "more" }, h("summary", {}, "全部数据 all values"),
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
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `${item.code} 制动力曲线` });
  chart.append(
    svg("line", { class: "axis", x1: pad.left, y1: pad.top, x2: pad.left, y2: height - pad.bottom }),
    svg("line", { class: "axis", x1: pad.left, y1: height - pad.bottom, x2: width - pad.right, y2: height - pad.bottom }),
    svg("text", { x: 2, y: pad.top + 8 }, top),
    svg("text", { x: 2, y: height - pad.bottom }, 0),
    svg("text", { x: width - pad.right, y: height - 4, "text-anchor": "end" }, `${seconds.toFixed(2)} s`),
    line(curve.left, "l"), line(curve.right, "r"));
  const title = source === "live" ? "实时制动力 live" : "制动力曲线";
  return h("figure", { class: "curve", "data-item": item.code, "data-source": source, "data-samples": count },
    chart,
    h("figcaption", {}, `${item.code} ${itemName(item.code)} ${title} (daN)`,
      h("span", { class: "l" }, `左 L 最大 ${Math.max(0, ...curve.left)}`),
      h("span", { class: "r" }, `右 R 最大 ${Math.max(0, ...curve.right)}`)));
}

function devicesBlock(lane) {
  const chips = lane.devices.map((device) => {
    const availability = device.availability || "unknown";
    const tele = device.telemetry ? Object.entries(device.telemetry)
      .map(([name, value]) => `${valueName(name)} ${formatValue(value, null)}`).join(" · ") : "";
    return h("span", { class: "chip", "data-device": device.id, "data-availability": availability,
      title: device.last_error || "" },
      `${DEVICE_CLASSES[device.device_class] || device.device_class} ${device.id} · ${AVAILABILITY[availability] || "未知"}`,
      tele ? h("span", { class: "tele" }, tele) : null);
  });
  return h("div", { class: "devices" }, h("h3", {}, "设备 devices"), h("div", { class: "chips" }, ...chips));
}

// --- the live stream -----------------------------------------------------------------
function setLink(state, text) {
  const link = document.getElementById("link");
  link.dataset.link = state;
  link.textContent = text;
}

function connect() {
  const source = new EventSource("/events");
  source.addEventListener("open", () => setLink("live", "实时 live"));
  source.addEventListener("error", () => setLink("lost", "重连中 reconnecting…"));
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

connect();
