// 登记工单: live suggestions while the agent types (debounced), one click to take them, and
// Alt+Enter to submit. The form works without it.
(function () {
  "use strict";
  var form = document.getElementById("new-ticket");
  if (!form) return;
  var csrf = form.querySelector("input[name=csrf_token]").value;
  var fields = ["content", "address", "phone", "region"].map(function (n) { return form.elements[n]; });
  var timer = null;
  var seq = 0;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function fact(dl, label, text) {
    dl.appendChild(el("dt", "", label));
    var dd = el("dd", "", text);
    dl.appendChild(dd);
    return dd;
  }

  function orders(list, items, empty) {
    list.textContent = "";
    if (!items.length) list.appendChild(el("li", "hint", empty));
    items.forEach(function (t) {
      var li = el("li");
      var a = el("a", "", t.number);
      a.href = "/staff/tickets/" + t.id;
      a.target = "_blank";
      li.appendChild(a);
      li.appendChild(el("span", "badge", t.status_label));
      if (t.confidential) li.appendChild(el("span", "badge warn", "保密"));
      li.appendChild(el("span", "", " " + t.content));
      list.appendChild(li);
    });
  }

  function show(s) {
    var dl = document.getElementById("assist-facts");
    dl.textContent = "";
    var top = (s.top3 || []).map(function (x) { return x.label + "（" + Math.round(x.probability * 100) + "%）"; });
    if (top.length) {
      var dd = fact(dl, "分类建议", top.join("、"));
      dd.id = "assist-top3";
      var use = el("button", "link-button", "采用");
      use.type = "button";
      use.addEventListener("click", function () { form.elements.category.value = (s.category || []).join(","); });
      dd.appendChild(use);
    }
    if (s.kind) fact(dl, "类型建议", { consult: "咨询", help: "求助", complaint: "投诉", report: "举报", suggestion: "建议", praise: "表扬", other: "其他" }[s.kind] || s.kind);
    if (s.region && s.region.name) fact(dl, "识别区划", s.region.name);
    if (s.department_name) {
      var d = fact(dl, "建议承办", s.department_name + "（置信度 " + Math.round((s.confidence || 0) * 100) + "%）");
      d.id = "assist-department";
      var take = el("button", "link-button", "派给它");
      take.type = "button";
      take.addEventListener("click", function () {
        form.elements.lead.value = s.department_code;
        document.getElementById("then-dispatch").checked = true;
      });
      d.appendChild(take);
    }
    if (s.answerable) fact(dl, "提示", "知识库有现成答复，可直接答复");
    orders(document.getElementById("assist-mine"), s.phone_orders || [], "无");
    orders(document.getElementById("assist-nearby"), s.nearby || [], "无");
    document.getElementById("assist").dataset.ready = "1";
  }

  function ask() {
    var content = form.elements.content.value.trim();
    if (content.length < 4) return;
    var mine = ++seq;
    var body = { content: content };
    ["address", "phone", "region"].forEach(function (n) {
      var v = form.elements[n] && form.elements[n].value.trim();
      if (v) body[n] = v;
    });
    fetch("/api/v1/assist", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) { if (s && mine === seq) show(s); })
      .catch(function () {});
  }

  fields.forEach(function (f) {
    if (!f) return;
    f.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(ask, 400);
    });
  });
  form.addEventListener("keydown", function (e) {
    if (e.altKey && e.key === "Enter") {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  if (form.elements.content.value.trim()) ask();
})();
