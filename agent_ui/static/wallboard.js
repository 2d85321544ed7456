// 话务大屏: refresh the figures every 5 s, and at once when a call event arrives.
(function () {
  "use strict";
  function set(id, v) { var e = document.getElementById(id); if (e) e.textContent = v; }
  function pct(x) { return Math.round(x * 100) + "%"; }
  function refresh() {
    fetch("/api/v1/wallboard", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (w) {
        if (!w) return;
        set("wb-at", w.at.slice(11, 19));
        set("wb-received", w.orders.received_today);
        set("wb-due", w.orders.due_today);
        set("wb-overdue", w.orders.overdue);
        set("wb-review", w.orders.waiting_review);
        if (w.calls) {
          set("wb-waiting", w.calls.waiting === null ? "—" : w.calls.waiting);
          set("wb-longest", w.calls.longest_wait_s === null ? "—" : Math.round(w.calls.longest_wait_s));
          var note = document.getElementById("wb-not-reporting");
          if (note) note.hidden = w.calls.reporting;
          set("wb-answer15", pct(w.calls.answer_rate_15s));
          set("wb-abandon", pct(w.calls.abandon_rate));
          Object.keys(w.calls.agents).forEach(function (k) { set("wb-agents-" + k, w.calls.agents[k]); });
        }
        document.body.dataset.refreshed = w.at;
      })
      .catch(function () {});
  }
  function cell(tr, text) { var td = document.createElement("td"); td.textContent = text; tr.appendChild(td); }
  function presence() {
    var box = document.getElementById("wb-presence");
    if (!box) return;
    fetch("/api/v1/presence", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) {
        if (!d) return;
        set("wb-presence-count", d.count);
        var body = document.getElementById("wb-presence-rows");
        while (body.firstChild) body.removeChild(body.firstChild);
        d.people.forEach(function (p) {
          var tr = document.createElement("tr");
          tr.dataset.username = p.username;
          cell(tr, p.name);
          cell(tr, p.role_label);
          cell(tr, p.department_name || "");
          cell(tr, p.pages.length ? p.pages.map(function (x) { return x.label; }).join("、") : "（未打开工作台）");
          cell(tr, p.agent ? p.agent.state_label + (p.agent.reason ? "（" + p.agent.reason + "）" : "") : "未签入");
          var since = p.online_since || (p.agent && p.agent.since) || "";
          cell(tr, since.slice(11, 19));
          body.appendChild(tr);
        });
        box.dataset.refreshed = d.at;
      })
      .catch(function () {});
  }
  setInterval(refresh, 5000);
  setInterval(presence, 5000);
  document.addEventListener("hotline:call", refresh);
  document.addEventListener("hotline:ticket", refresh);
})();
