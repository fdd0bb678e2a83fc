// bootserver board: live updates over one server-sent-event stream (no framework, no build step).
"use strict";
(function () {
  const live = document.getElementById("live");
  const page = document.body.dataset.page;

  function ago(at) {
    if (!at) return "—";
    const s = Math.max(0, Math.floor(Date.now() / 1000 - at));
    if (s < 120) return s + "s ago";
    if (s < 7200) return Math.floor(s / 60) + "m ago";
    if (s < 172800) return Math.floor(s / 3600) + "h ago";
    return Math.floor(s / 86400) + "d ago";
  }
  setInterval(function () {  // re-label "how long ago" locally; no request
    document.querySelectorAll(".ago[data-at]").forEach(function (el) {
      const at = parseFloat(el.dataset.at); if (at) el.textContent = ago(at);
    });
  }, 1000);

  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (e) { if (!confirm(form.dataset.confirm)) e.preventDefault(); });
  });

  function open(url, handlers) {
    if (!window.EventSource) return;
    const source = new EventSource(url);
    source.onopen = function () { live.classList.add("on"); live.title = "live"; };
    source.onerror = function () { live.classList.remove("on"); live.title = "reconnecting"; };
    Object.keys(handlers).forEach(function (name) {
      source.addEventListener(name, function (e) { handlers[name](JSON.parse(e.data)); });
    });
  }

  function fromHTML(html) {
    const t = document.createElement("tbody"); t.innerHTML = html.trim(); return t.firstElementChild;
  }

  if (page === "fleet") {
    const table = document.getElementById("fleet");
    const body = table.tBodies[0];
    const params = new URLSearchParams({state: table.dataset.state, q: table.dataset.q});
    open("/ui/events?" + params, {
      row: function (d) {
        const old = document.getElementById("m-" + d.mac);
        if (!d.wanted) { if (old) old.remove(); return; }
        const row = fromHTML(d.html);
        if (old) old.replaceWith(row);
        else if (table.dataset.first === "yes") {
          body.insertBefore(row, body.firstChild);
          const empty = document.querySelector(".empty"); if (empty) empty.remove();
          while (body.rows.length > parseInt(table.dataset.limit, 10)) body.deleteRow(-1);
        } else return;
        row.classList.add("flash");
      },
      gone: function (d) { const old = document.getElementById("m-" + d.mac); if (old) old.remove(); },
      counts: function (counts) {
        let all = 0;
        Object.keys(counts).forEach(function (s) {
          all += counts[s]; const el = document.getElementById("count-" + s); if (el) el.textContent = counts[s];
        });
        document.getElementById("count-all").textContent = all;
        if (!table.dataset.state && !table.dataset.q) document.getElementById("total").textContent = all;
      },
      resync: function () { location.reload(); }
    });
  }

  if (page === "machine") {
    const mac = document.getElementById("machine").dataset.mac;
    const box = document.getElementById("timeline-box");
    open("/ui/events?mac=" + encodeURIComponent(mac), {
      row: function (d) {
        const state = document.getElementById("state");
        state.textContent = d.state; state.className = "state st-" + d.state;
        fetch(box.dataset.src, {cache: "no-store"}).then(function (r) { return r.ok ? r.text() : null; })
          .then(function (html) { if (html) box.innerHTML = html; });
      },
      gone: function () { location.href = "/ui/"; },
      resync: function () { location.reload(); }
    });
  }
})();
