// The import page polls its status while the job runs and reloads once when it ends (to
// list the rows that were not imported).
(function () {
  var page = document.getElementById("import-show");
  if (!page) return;
  var running = { queued: 1, running: 1 };
  if (!running[page.dataset.status]) return;
  function set(id, value) { document.getElementById(id).textContent = value; }
  function poll() {
    fetch(page.dataset.statusUrl, { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (s) {
        var pct = s.total ? Math.round(s.processed * 100 / s.total) : 0;
        var bar = document.getElementById("import-progress");
        bar.style.width = pct + "%";
        bar.textContent = pct + "%";
        set("n-processed", s.processed); set("n-total", s.total || "?");
        set("n-inserted", s.inserted); set("n-duplicates", s.duplicates);
        set("n-invalid", s.invalid); set("import-status", s.status_label);
        if (running[s.status]) { setTimeout(poll, 1000); } else { window.location.reload(); }
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 500);
})();
