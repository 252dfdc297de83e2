// A list page that left its total out (app/paging.py: PostgreSQL expected a large count)
// fetches it from the list's /count/ with the page's own filters once the rows are shown.
(function () {
  var spans = document.querySelectorAll("[data-count-url]");
  Array.prototype.forEach.call(spans, function (span) {
    fetch(span.dataset.countUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (c) {
        span.textContent = c.text;
        span.removeAttribute("aria-busy");
        span.classList.add("record-count-loaded");
      })
      .catch(function () {
        span.textContent = "?";
        span.removeAttribute("aria-busy");
        if (span.dataset.failed) { span.title = span.dataset.failed; }
      });
  });
})();
