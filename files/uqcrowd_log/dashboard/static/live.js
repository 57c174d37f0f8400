// Live: the last hour and the sessions by status, read again every 5 s (live.json).
(function () {
  var base = location.pathname.replace(/\/$/, "");
  function refresh() {
    fetch(base + "/live.json", { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (live) {
      document.getElementById("per-minute").innerHTML = live.chart;
      document.querySelector(".counts .in-progress").textContent = "in progress: " + live.sessions["in progress"];
      document.querySelector(".counts .complete").textContent = "complete: " + live.sessions["complete"];
      document.querySelector(".counts .incomplete").textContent = "incomplete: " + live.sessions["incomplete"];
      document.getElementById("live-at").textContent = "(" + new Date().toISOString().slice(11, 19) + " UTC, " + live.events + " events)";
    });
  }
  refresh();
  setInterval(refresh, 5000);
})();
