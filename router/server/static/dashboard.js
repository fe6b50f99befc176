// The dashboard's only script: fetch the panel again every few seconds (from this proxy alone)
// and swap it in. The panel is HTML the server rendered and escaped; nothing else is loaded.
(function () {
  "use strict";
  var panel = document.getElementById("panel");
  var status = document.getElementById("status");
  var since = document.getElementById("since");
  var refreshMs = Math.max(1, parseFloat(panel.dataset.refresh) || 5) * 1000;
  var timer = null;
  var busy = false;
  var again = false; // the window changed while a refresh was in flight: ask once more

  function show(text, stale) {
    status.textContent = text;
    status.className = stale ? "status stale" : "status";
  }

  function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    var asked = panel.dataset.since;
    var url = "/dashboard/panel?since=" + encodeURIComponent(asked);
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) {
          show("logged out: reload the page to log in", true);
          stop();
          return null;
        }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        // An answer for the window the menu has since left would show the wrong window's
        // figures until the next refresh: drop it.
        if (html === null || asked !== panel.dataset.since) return;
        panel.innerHTML = html;
        show("updated " + new Date().toLocaleTimeString(), false);
      })
      .catch(function (e) { show("refresh failed (" + e.message + "); retrying", true); })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  function start() { stop(); timer = setInterval(refresh, refreshMs); }
  function stop() { if (timer !== null) clearInterval(timer); timer = null; }

  since.addEventListener("change", function () {
    panel.dataset.since = since.value;
    history.replaceState(null, "", "/dashboard?since=" + encodeURIComponent(since.value));
    if (busy) again = true; else refresh();
  });
  // A hidden tab asks for nothing; it catches up as soon as it is shown again.
  document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });
  show("live, every " + refreshMs / 1000 + " s", false);
  start();
})();
