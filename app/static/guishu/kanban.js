// The pipeline kanban: drag a card to another column; the drop posts the stage change (with
// the page's CSRF token) to the same service as the opportunity's form. Dropping on the lost
// column asks for the reason. The page reloads to show the new totals.
(function () {
  "use strict";
  var board = document.getElementById("kanban");
  if (!board) { return; }
  var dragged = null;
  board.addEventListener("dragstart", function (e) {
    var card = e.target.closest ? e.target.closest(".kanban-card") : null;
    if (!card || card.getAttribute("draggable") !== "true") { e.preventDefault(); return; }
    dragged = card;
    e.dataTransfer.effectAllowed = "move";
    e.dataTransfer.setData("text/plain", card.getAttribute("data-id"));
  });
  board.addEventListener("dragover", function (e) {
    var col = e.target.closest ? e.target.closest(".kanban-column") : null;
    if (col && dragged) { e.preventDefault(); col.classList.add("drop-target"); }
  });
  board.addEventListener("dragleave", function (e) {
    var col = e.target.closest ? e.target.closest(".kanban-column") : null;
    if (col) { col.classList.remove("drop-target"); }
  });
  board.addEventListener("drop", function (e) {
    var col = e.target.closest ? e.target.closest(".kanban-column") : null;
    if (!col || !dragged) { return; }
    e.preventDefault();
    col.classList.remove("drop-target");
    var card = dragged;
    dragged = null;
    var stageId = col.getAttribute("data-stage-id");
    if (stageId === card.getAttribute("data-stage-id")) { return; }
    // Out of the drop event: Chromium ignores window.prompt() while a drag is being dropped.
    window.setTimeout(function () { move(card, col, stageId); }, 0);
  });

  function move(card, col, stageId) {
    var body = new URLSearchParams();
    body.set("csrf_token", board.getAttribute("data-csrf"));
    body.set("stage_id", stageId);
    body.set("expected_stage_id", card.getAttribute("data-stage-id"));
    if (col.getAttribute("data-kind") === "lost") {
      var reason = window.prompt(board.getAttribute("data-lost-prompt"));
      if (!reason) { return; }
      body.set("loss_reason", reason);
    }
    var url = board.getAttribute("data-url").replace(/0$/, card.getAttribute("data-id"));
    fetch(url, {method: "POST", body: body, credentials: "same-origin",
                headers: {"Accept": "application/json", "X-Requested-With": "XMLHttpRequest",
                          "X-CSRFToken": board.getAttribute("data-csrf")}})
      .then(function (r) { return r.json().then(function (data) { return [r.ok, data]; }); })
      .then(function (res) {
        if (!res[0]) { window.alert(res[1].message || board.getAttribute("data-error")); return; }
        window.location.reload();
      })
      .catch(function () { window.alert(board.getAttribute("data-error")); });
  }
}());
