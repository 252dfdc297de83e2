/* Draws each .guishu-chart (templates/guishu/_charts.html) with the vendored ECharts: fetches
   /api/v1/stats/<name> (same origin, the session's cookie) and renders bar, line or pie.
   Its words come from the page (data attributes); the titles and labels from the API, in the
   reader's language. When a chart is drawn its container gets data-drawn="1". */
(function () {
  "use strict";
  var script = document.getElementById("charts-script");
  var locale = script.getAttribute("data-locale") || "ZH";

  function message(el, text) {
    el.textContent = text;
    el.className += " text-muted";
    el.style.height = "auto";
    el.setAttribute("data-drawn", "0");
  }

  function option(kind, data, rightFrom) {
    var names = data.series.map(function (s) { return s.name; });
    if (kind === "pie") {
      var values = data.series.length ? data.series[0].data : [];
      return {
        tooltip: {trigger: "item"},
        legend: {type: "scroll", bottom: 0},
        series: [{type: "pie", radius: ["35%", "65%"], name: names[0] || "",
                  data: data.categories.map(function (c, i) { return {name: c, value: values[i]}; })}]
      };
    }
    var twoAxes = rightFrom > 0 && data.series.length > rightFrom;
    return {
      tooltip: {trigger: "axis"},
      legend: {data: names, top: 0},
      grid: {left: 50, right: twoAxes ? 60 : 20, top: 40, bottom: 60, containLabel: true},
      xAxis: {type: "category", data: data.categories,
              axisLabel: {interval: data.categories.length > 12 ? "auto" : 0,
                          rotate: data.categories.length > 6 ? 30 : 0}},
      // The first axis counts (whole numbers); the second holds amounts.
      yAxis: twoAxes ? [{type: "value", minInterval: 1}, {type: "value"}]
                     : [{type: "value", minInterval: 1}],
      dataZoom: data.categories.length > 40 ? [{type: "slider", bottom: 0}] : [],
      series: data.series.map(function (s, i) {
        return {type: kind, name: s.name, data: s.data, smooth: kind === "line",
                yAxisIndex: twoAxes && i >= rightFrom ? 1 : 0};
      })
    };
  }

  function draw(el) {
    var name = el.getAttribute("data-stat");
    var query = el.getAttribute("data-query");
    var url = "/api/v1/stats/" + encodeURIComponent(name) + (query ? "?" + query : "");
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (resp) {
        if (!resp.ok) { throw new Error(resp.status); }
        return resp.json();
      })
      .then(function (data) {
        var total = data.series.reduce(function (n, s) {
          return n + s.data.reduce(function (a, v) { return a + Math.abs(v || 0); }, 0);
        }, 0);
        var chart = echarts.init(el, null, {locale: locale, renderer: "canvas"});
        chart.setOption(option(el.getAttribute("data-kind"), data,
                               parseInt(el.getAttribute("data-right-axis-from") || "0", 10)));
        if (!total) {
          chart.setOption({graphic: {type: "text", left: "center", top: "middle",
                                     style: {text: script.getAttribute("data-empty"), fill: "#999"}}});
        }
        window.addEventListener("resize", function () { chart.resize(); });
        el.setAttribute("data-drawn", "1");
      })
      .catch(function () { message(el, script.getAttribute("data-failed")); });
  }

  Array.prototype.forEach.call(document.querySelectorAll(".guishu-chart"), draw);
}());
