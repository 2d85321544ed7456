// 12345 工作台: live updates over one WebSocket (/api/v1/live) — new orders in a list, someone
// else acting on the open order, the screen pop when a call rings this agent — and keyboard
// shortcuts. The pages work without it; this only tells people sooner.
(function () {
  "use strict";
  var me = document.currentScript ? document.currentScript.dataset : {};
  var user = me.user || "";
  var role = me.role || "";
  var meta = document.getElementById("ticket-meta");
  var openTicket = meta ? Number(meta.dataset.ticketId) : null;
  var LAST = "hotline.live.last";
  var retry = 1000;
  var changes = 0;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function banner(id, text, href) {
    var b = document.getElementById(id);
    if (!b) {
      b = el("p", "live-banner");
      b.id = id;
      b.setAttribute("role", "status");
      var main = document.getElementById("main");
      main.insertBefore(b, main.firstChild);
    }
    b.textContent = "";
    var a = el("a", "", text);
    a.href = href || window.location.href;
    b.appendChild(a);
    return b;
  }

  function onTicket(m) {
    if (m.id) sessionStorage.setItem(LAST, String(m.id));
    document.dispatchEvent(new CustomEvent("hotline:ticket", { detail: m }));
    if (openTicket && m.ticket === openTicket) {
      if (m.actor && m.actor.id !== null && String(m.actor.id) === me.userId) return; // mine
      banner(
        "live-ticket",
        "本工单刚被" + (m.actor ? m.actor.name : "他人") + "执行了“" + m.label + "”" +
          (m.status_label ? "，现为“" + m.status_label + "”" : "") + "。点击刷新查看最新状态"
      );
      return;
    }
    if (document.getElementById("tickets") || document.querySelector(".queues")) {
      changes += 1;
      banner("live-list", "列表有 " + changes + " 条新变化（最新：" + m.number + " " + m.label + "），点击刷新");
    }
  }

  function pop(m) {
    var box = document.getElementById("screen-pop");
    if (!box) {
      box = el("aside", "screen-pop");
      box.id = "screen-pop";
      box.setAttribute("aria-live", "assertive");
      document.body.appendChild(box);
    }
    box.textContent = "";
    var head = el("h2", "", m.event === "call.ringing" ? "来电振铃" : "通话中");
    box.appendChild(head);
    var d = m.data || {};
    var facts = el("dl", "facts");
    function fact(k, v) {
      if (v === undefined || v === null || v === "") return;
      facts.appendChild(el("dt", "", k));
      facts.appendChild(el("dd", "", String(v)));
    }
    fact("来电号码", m.caller);
    fact("语言", d.language === "mn" ? "蒙古语" : d.language === "cmn" ? "普通话" : d.language);
    fact("按键选择", d.kind === "consult" ? "政策咨询" : d.kind === "complaint" ? "投诉举报" : d.kind);
    fact("排队等待", d.waited_s !== undefined && d.waited_s !== null ? d.waited_s + " 秒" : "");
    box.appendChild(facts);
    var list = el("ul", "pop-orders");
    list.id = "pop-orders";
    box.appendChild(list);
    var add = el("a", "button", "为此来电登记工单");
    add.href = "/staff/tickets/new?" + new URLSearchParams({ phone: m.caller || "", call: m.call || "" });
    add.id = "pop-register";
    box.appendChild(add);
    var close = el("button", "secondary", "关闭");
    close.type = "button";
    close.addEventListener("click", function () { box.remove(); });
    box.appendChild(close);
    if (m.caller) {
      fetch("/api/v1/tickets?" + new URLSearchParams({ phone: m.caller, limit: "10" }), {
        credentials: "same-origin",
      })
        .then(function (r) { return r.ok ? r.json() : { items: [] }; })
        .then(function (data) {
          if (!data.items.length) list.appendChild(el("li", "", "该号码没有历史工单"));
          data.items.forEach(function (t) {
            var li = el("li");
            var a = el("a", "", t.number);
            a.href = "/staff/tickets/" + t.id;
            li.appendChild(a);
            li.appendChild(el("span", "badge", t.status_label));
            if (t.caller && t.caller.confidential) li.appendChild(el("span", "badge warn", "保密"));
            li.appendChild(el("span", "pop-text", " " + (t.summary || t.title || t.content || "").slice(0, 40)));
            if (t.answer) li.appendChild(el("div", "pop-answer", "答复：" + t.answer.slice(0, 80)));
            list.appendChild(li);
          });
        })
        .catch(function () {});
    }
  }

  function onCall(m) {
    if (m.agent !== user) {
      document.dispatchEvent(new CustomEvent("hotline:call", { detail: m }));
      return;
    }
    if (m.event === "call.ringing" || m.event === "call.answered") pop(m);
    if (m.event === "call.ended") {
      var box = document.getElementById("screen-pop");
      if (box) box.classList.add("ended");
    }
    document.dispatchEvent(new CustomEvent("hotline:call", { detail: m }));
  }

  function connect() {
    var last = sessionStorage.getItem(LAST);
    // page: shown to supervisors as where this person is working (在线人员)
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/v1/live" +
      "?page=" + encodeURIComponent(location.pathname) + (last ? "&since=" + encodeURIComponent(last) : "");
    var ws = new WebSocket(url);
    ws.onopen = function () { retry = 1000; document.body.dataset.live = "on"; };
    ws.onmessage = function (e) {
      var m = JSON.parse(e.data);
      if (m.type === "ticket") onTicket(m);
      else if (m.type === "call") onCall(m);
      else if (m.type === "reload") banner("live-list", "错过的变化较多，点击刷新", window.location.href);
    };
    ws.onclose = function () {
      document.body.dataset.live = "off";
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    };
  }

  // keyboard shortcuts (listed on the page): Alt+N 登记, Alt+L 列表, Alt+D 派单, Alt+R 直接答复,
  // Alt+S 提交修改
  var keys = {
    n: function () { location.href = "/staff/tickets/new"; },
    l: function () { location.href = "/staff/tickets"; },
    d: function () { focusForm("act-dispatch"); },
    r: function () { focusForm("act-answer"); },
    s: function () { focusForm("act-edit"); },
  };
  function focusForm(id) {
    var f = document.getElementById(id);
    if (!f) return;
    f.scrollIntoView({ block: "center" });
    var first = f.querySelector("select, textarea, input:not([type=hidden])");
    if (first) first.focus();
  }
  document.addEventListener("keydown", function (e) {
    if (!e.altKey || e.ctrlKey || e.metaKey) return;
    var k = keys[e.key.toLowerCase()];
    if (k) {
      e.preventDefault();
      k();
    }
  });

  if (user && "WebSocket" in window) connect();
})();
