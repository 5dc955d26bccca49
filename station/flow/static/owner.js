// The owner's progress page: fetch this vehicle's steps every few seconds and redraw
// them as text (never markup). The link's token is the page's own URL; nothing else.
"use strict";
(function () {
  const list = document.getElementById("steps");
  if (!list) return;
  const url = window.location.pathname.replace(/\/$/, "") + "/steps";
  const words = { pass: "合格", fail: "不合格", aborted: "未检（中止）", not_judged: "不判定" };
  const el = (tag, attrs, text) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const draw = (data) => {
    const items = data.steps.map((step) => {
      const li = el("li", { class: "step", "data-key": step.key, "data-state": step.state });
      li.append(el("span", { class: "name" }, step.name));
      if (step.verdict) {
        li.append(el("span", { class: "verdict", "data-verdict": step.verdict }, words[step.verdict] || step.verdict));
      }
      if (step.items) {
        const ul = el("ul", { class: "items" });
        for (const item of step.items) {
          const text = item.name + (item.verdict ? " " + (words[item.verdict] || item.verdict) : "");
          ul.append(el("li", { "data-item": item.code, "data-state": item.state }, text));
        }
        li.append(ul);
      }
      return li;
    });
    list.replaceChildren(...items);
  };
  let delay = 2000;
  const poll = async () => {
    try {
      const response = await fetch(url, { cache: "no-store", credentials: "omit" });
      if (response.status === 404) {
        list.replaceChildren(el("li", { class: "step gone", "data-state": "gone" }, "链接已过期"));
        return;  // the inspection is over: stop asking
      }
      if (response.ok) {
        draw(await response.json());
        delay = 2000;
      }
    } catch (err) {
      delay = Math.min(delay * 2, 30000);  // offline for a moment: ask less often
    }
    window.setTimeout(poll, delay);
  };
  window.setTimeout(poll, delay);
})();
