// The user picker (templates/guishu/pickers.html): a Select2 over the options the server
// rendered - only the users this user may pick, grouped by department. Typing matches the
// name, the username and the department (every word must match somewhere). A multiple
// picker offers "whole team" at the top of each department: choosing it selects the
// department's and its sub-departments' members shown here; the form still submits user
// ids only, which the server checks one by one. The texts come from the template
// (data-* attributes), translated there.
(function ($) {
  "use strict";
  if (!$ || !$.fn.select2) { return; }

  function words(term) {
    return $.trim(term || "").toLowerCase().split(/\s+/).filter(function (w) { return w; });
  }

  function hits(text, wanted) {
    text = (text || "").toLowerCase();
    return wanted.every(function (w) { return text.indexOf(w) >= 0; });
  }

  // A member matches on its own label (name, username, department) plus its group's label
  // (the department path), so "<department> rep1" or a parent department's name find it.
  function matcher(params, data) {
    var wanted = words(params.term);
    if (!wanted.length) { return data; }
    if (data.children && data.children.length) {
      var kept = data.children.filter(function (child) {
        return hits(data.text + " " + child.text, wanted);
      });
      return kept.length ? $.extend({}, data, {children: kept}) : null;
    }
    return hits(data.text, wanted) ? data : null;
  }

  function members($select, path) {
    return $select.find("optgroup").filter(function () {
      return (this.getAttribute("data-path") || "").indexOf(path) === 0;
    }).find("option:not([data-team])");
  }

  function addTeamChoices($select) {
    var template = $select.attr("data-team-label") || "{department}";
    $select.find("optgroup").each(function () {
      var path = this.getAttribute("data-path");
      if (!path) { return; }  // no department: not a team
      var count = members($select, path).length;
      if (!count) { return; }
      var text = template.replace("{department}", this.getAttribute("label"))
                         .replace("{n}", count);
      $("<option>").attr({value: "team:" + path, "data-team": path}).text(text)
        .prependTo(this);
    });
    $select.on("select2:selecting", function (e) {
      var element = e.params.args.data.element;
      if (!element || !element.hasAttribute("data-team")) { return; }
      e.preventDefault();  // the team choice itself is never a value
      members($select, element.getAttribute("data-team")).prop("selected", true);
      $select.trigger("change").select2("close");
    });
    // Belt and braces: a team choice never reaches the server.
    $select.closest("form").on("submit", function () {
      $select.find("option[data-team]").prop("selected", false);
    });
  }

  $(function () {
    $("select.guishu-picker").each(function () {
      var $select = $(this);
      var multiple = $select.prop("multiple");
      var noResults = $select.attr("data-no-results");
      if (multiple) { addTeamChoices($select); }
      $select.select2({
        theme: "bootstrap",
        width: "100%",
        matcher: matcher,
        closeOnSelect: !multiple,
        placeholder: multiple ? $select.attr("data-placeholder") : undefined,
        language: {noResults: function () { return noResults; }}
      });
      // Select2 4.0 under jQuery 3.6 leaves the focus on the closed box when a single
      // picker opens: typing filtered nothing and Enter took the first option. Put the
      // cursor in the search box, as a keyboard user expects.
      if (!multiple) {
        $select.on("select2:open", function () {
          var field = document.querySelector(
            ".select2-container--open .select2-search__field");
          if (field) { field.focus(); }
        });
      }
    });
  });
})(window.jQuery);
