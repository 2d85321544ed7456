// Knowledge-base suggestions on the order pages: the articles and the similar answered orders
// for the request in view (agent's order form: as the text is typed; department's reply page:
// for the order). Reads the API; renders with textContent only.
"use strict";
(function () {
  const box = document.getElementById("kb-suggest");
  if (!box) return;
  const csrf = (document.querySelector("input[name=csrf_token]") || {}).value || "";

  function render(data) {
    box.replaceChildren();
    const h = document.createElement("h2");
    h.textContent = "知识推荐";
    box.append(h);
    if (data.degraded) {
      const p = document.createElement("p");
      p.textContent = "检索服务暂不可用，稍后再试。";
      box.append(p);
      return;
    }
    const list = document.createElement("ol");
    for (const a of data.articles) {
      const li = document.createElement("li");
      const link = document.createElement("a");
      link.href = "/staff/kb/" + a.id;
      link.textContent = a.title;
      li.append(link);
      const ex = document.createElement("div");
      ex.className = "answer";
      ex.textContent = a.excerpt;
      li.append(ex);
      list.append(li);
    }
    for (const t of data.orders) {
      const li = document.createElement("li");
      const link = document.createElement("a");
      link.href = "/staff/tickets/" + t.id;
      link.textContent = "相似工单 " + t.number;
      li.append(link);
      const ans = document.createElement("div");
      ans.className = "answer";
      ans.textContent = "答复：" + (t.answer || "");
      li.append(ans);
      list.append(li);
    }
    if (!list.children.length) {
      const p = document.createElement("p");
      p.textContent = "没有相关知识。";
      box.append(p);
      return;
    }
    box.append(list);
  }

  async function load(url, init) {
    try {
      const resp = await fetch(url, init);
      if (resp.ok) render(await resp.json());
    } catch (e) {
      // a failed suggestion must not disturb the page
    }
  }

  const ticket = box.dataset.ticket;
  if (ticket) {
    load("/api/v1/tickets/" + ticket + "/suggestions", { credentials: "same-origin" });
    return;
  }
  const source = document.getElementById(box.dataset.source || "content");
  if (!source) return;
  let timer = null;
  source.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      const text = source.value.trim();
      if (text.length < 4) return;
      load("/api/v1/suggestions", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ text: text }),
      });
    }, 400);
  });
})();

// 多人同诉 on an order: the group's size (orders, distinct callers) and the merge candidates
(function () {
  const box = document.getElementById("kb-group");
  if (!box) return;
  fetch("/api/v1/tickets/" + box.dataset.ticket + "/similar", { credentials: "same-origin" })
    .then(function (resp) { return resp.ok ? resp.json() : null; })
    .then(function (data) {
      if (!data || (!data.group && !data.candidates.length)) return;
      const h = document.createElement("h2");
      h.textContent = "多人同诉 / 相似工单";
      box.append(h);
      if (data.group) {
        const p = document.createElement("p");
        p.id = "group-count";
        p.textContent = "主工单 " + data.group.main_number + "：共 " + data.group.orders +
          " 件工单，" + data.group.callers + " 位来电人";
        box.append(p);
      }
      if (data.candidates.length) {
        const ul = document.createElement("ul");
        for (const c of data.candidates) {
          const li = document.createElement("li");
          const a = document.createElement("a");
          a.href = "/staff/tickets/" + c.id;
          a.textContent = c.number;
          li.append(a, "（" + c.reason_label + "，相似度 " + c.score.toFixed(2) + "，" +
            (c.state === "open" ? "待处理" : c.state) + "）");
          ul.append(li);
        }
        box.append(ul);
      }
    })
    .catch(function () {});
})();
