// Dedupe while typing: on the customer add / edit form, every change of a checked field asks
// POST /api/v1/dedupe/check (the same rules the save enforces) and shows the answer above
// the form. The server checks again on save; this only tells the user early.
(function () {
  "use strict";
  // The page renders the words in the user's language on this script's tag.
  var words = document.currentScript ? document.currentScript.dataset : {};
  var form = document.querySelector("form#model_form") || document.querySelector("form[method=post]");
  if (!form) { return; }
  var FIELDS = ["name", "customer_type", "mobile", "phone", "email", "city", "address",
                "birthday", "birthday_lunar"];
  var match = window.location.pathname.match(/\/customers\/edit\/(\d+)/);
  var excludeId = match ? Number(match[1]) : null;
  var box = document.createElement("div");
  box.id = "dedupe-hint";
  box.setAttribute("role", "status");
  box.style.display = "none";
  form.parentNode.insertBefore(box, form);
  var timer = null, sequence = 0;

  function payload() {
    var out = {};
    FIELDS.forEach(function (name) {
      var el = form.elements[name];
      if (!el) { return; }
      if (el.type === "checkbox") { out[name] = el.checked; }
      else if (el.value && el.value.trim()) { out[name] = el.value.trim(); }
    });
    if (excludeId) { out.exclude_id = excludeId; }
    return out;
  }

  // The session signs this call: the API wants the form's CSRF token with it.
  function csrfToken() {
    var field = form.elements["csrf_token"];
    return field ? field.value : "";
  }

  function show(kind, lines) {
    box.className = "alert alert-" + kind;
    box.textContent = "";
    lines.forEach(function (line) {
      var div = document.createElement("div");
      div.textContent = line;  // text only: names come from other users' input
      box.appendChild(div);
    });
    box.style.display = "";
  }

  function check() {
    var body = payload();
    if (!body.name && !body.mobile && !body.phone && !body.email) {
      box.style.display = "none";
      return;
    }
    var mine = ++sequence;
    fetch("/api/v1/dedupe/check", {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrfToken()},
      body: JSON.stringify(body)
    }).then(function (resp) {
      return resp.json().then(function (data) { return {status: resp.status, data: data}; });
    }).then(function (r) {
      if (mine !== sequence) { return; }  // a newer check is on its way
      if (r.status !== 200) { box.style.display = "none"; return; }  // field errors come on save
      if (!r.data.matches.length) { show("success", [words.none]); return; }
      show(r.data.blocked ? "danger" : "warning", r.data.matches.map(function (m) {
        return m.message + " — " + (m.action === "block" ? words.blocked : words.warned);
      }));
    }).catch(function () { box.style.display = "none"; });
  }

  form.addEventListener("change", function (event) {
    if (FIELDS.indexOf(event.target.name) >= 0) {
      clearTimeout(timer);
      timer = setTimeout(check, 250);
    }
  });
})();
