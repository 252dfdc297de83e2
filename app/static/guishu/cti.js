// Screen pops and the call buttons (click-to-call), on every page for a signed-in user.
// Pops: an EventSource on /cti/pops/stream says "a call is ringing for you"; the cards come
// from /cti/pops?since=<last call id> (rendered by the server, scoped and masked there). When
// the stream fails (no Redis, a proxy that buffers) the script polls that URL every few
// seconds instead, and tries the stream again later. Dismissed cards stay dismissed for the
// browser tab's session.
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !window.fetch) { return; }
  var words = script.dataset;
  var STREAM = words.stream, POLL = words.poll, DIAL = words.dial;
  var POLL_EVERY = 5000, STREAM_RETRY = 60000;
  var store = window.sessionStorage || {getItem: function () { return null; }, setItem: function () {}};
  // Each page asks from 0 first: the calls still ringing or in conversation (the last two
  // minutes) come back after a navigation, except those dismissed.
  var since = 0;
  var dismissed = JSON.parse(store.getItem("guishu.cti.dismissed") || "[]");
  var shown = {};
  var pollTimer = null, source = null, busy = false;

  var box = document.createElement("div");
  box.id = "cti-pops";
  box.style.cssText = "position:fixed;right:16px;bottom:16px;width:360px;max-width:90vw;" +
    "z-index:2000;max-height:80vh;overflow-y:auto";
  document.body.appendChild(box);

  function remember() {
    store.setItem("guishu.cti.dismissed", JSON.stringify(dismissed.slice(-50)));
  }

  function show(pop) {
    var id = pop.call_id;
    if (shown[id] || dismissed.indexOf(id) >= 0) { return; }
    var holder = document.createElement("div");
    holder.innerHTML = pop.html;  // rendered and escaped by the server (templates/_cti_card.html)
    var card = holder.firstElementChild;
    if (!card) { return; }
    shown[id] = card;
    box.appendChild(card);
    var close = card.querySelector(".cti-dismiss");
    if (close) {
      close.addEventListener("click", function () {
        dismissed.push(id);
        remember();
        card.parentNode.removeChild(card);
        delete shown[id];
      });
    }
  }

  function poll() {
    if (busy) { return; }
    busy = true;
    fetch(POLL + "?since=" + encodeURIComponent(since), {credentials: "same-origin",
                                                        headers: {"Accept": "application/json"}})
      .then(function (r) {
        var json = (r.headers.get("Content-Type") || "").indexOf("json") >= 0;
        return r.ok && json ? r.json() : null;
      })
      .then(function (data) {
        if (!data) { return; }
        (data.pops || []).forEach(show);
        if (typeof data.last === "number" && data.last > since) { since = data.last; }
      })
      .catch(function () {})
      .then(function () { busy = false; });
  }

  function startPolling() {
    if (!pollTimer) { pollTimer = window.setInterval(poll, POLL_EVERY); }
  }

  function stopPolling() {
    if (pollTimer) { window.clearInterval(pollTimer); pollTimer = null; }
  }

  function retryLater() {
    startPolling();
    window.setTimeout(connect, STREAM_RETRY);
  }

  function fallBack() {
    if (!source) { return; }  // "unavailable" then "error": one fallback, one retry
    source.close();
    source = null;
    retryLater();
  }

  function connect() {
    if (!window.EventSource || !STREAM) { startPolling(); return; }
    try { source = new EventSource(STREAM, {withCredentials: true}); }
    catch (e) { source = null; retryLater(); return; }
    source.addEventListener("open", function () { stopPolling(); poll(); });
    source.addEventListener("pop", function () { poll(); });
    source.addEventListener("unavailable", fallBack);
    source.addEventListener("error", function () {
      // CLOSED: the server refused the stream (not 200 / not text/event-stream): poll.
      // CONNECTING: the browser reconnects by itself (the server ends streams on purpose).
      if (source && source.readyState === 2) { fallBack(); }
    });
  }

  // --- click-to-call ----------------------------------------------------------------------
  function notice(kind, text) {
    var div = document.createElement("div");
    div.className = "alert alert-" + kind + " cti-dial-result";
    div.setAttribute("role", "status");
    div.textContent = text;
    box.appendChild(div);
    window.setTimeout(function () { if (div.parentNode) { div.parentNode.removeChild(div); } }, 8000);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest(".cti-dial") : null;
    if (!button || !DIAL) { return; }
    event.preventDefault();
    var body = {};
    body[button.dataset.ctiField] = Number(button.dataset.ctiId);
    if (button.dataset.ctiNumber) { body.number = button.dataset.ctiNumber; }
    button.disabled = true;
    fetch(DIAL, {method: "POST", credentials: "same-origin",
                 headers: {"Content-Type": "application/json", "X-CSRFToken": button.dataset.csrf},
                 body: JSON.stringify(body)})
      .then(function (r) { return r.json().then(function (data) { return [r.ok, data]; }); })
      .then(function (answer) {
        notice(answer[0] ? "success" : "danger",
               answer[0] ? words.dialing : (answer[1].message || words.failed));
      })
      .catch(function () { notice("danger", words.failed); })
      .then(function () { button.disabled = false; });
  });

  poll();
  connect();
})();
