// The SLA clock counts down every second between the server's refreshes (htmx, every 5 s): each element
// with data-due (an ISO time) shows the time left, or how long overdue, as formatting.duration writes it.
(function () {
  "use strict";

  function duration(seconds) {
    seconds = Math.abs(seconds);
    if (seconds < 1) { return Math.round(seconds * 1000) + " ms"; }
    var whole = Math.floor(seconds);
    var days = Math.floor(whole / 86400), hours = Math.floor((whole % 86400) / 3600);
    var minutes = Math.floor((whole % 3600) / 60), secs = whole % 60;
    if (days) { return days + " d " + hours + " h"; }
    if (hours) { return hours + " h " + minutes + " min"; }
    if (minutes) { return minutes + " min " + secs + " s"; }
    return secs + " s";
  }

  function tick() {
    document.querySelectorAll("[data-due]").forEach(function (element) {
      // At most milliseconds: what every browser's Date.parse reads (the server writes microseconds).
      var due = element.dataset.due.replace(/(\.\d{3})\d+/, "$1");
      var left = (Date.parse(due) - Date.now()) / 1000;
      if (isNaN(left)) { return; }
      element.textContent = duration(left);
      element.classList.toggle("overdue", left < 0);
      var label = element.previousElementSibling;
      if (label && label.tagName === "DT") { label.textContent = left < 0 ? "Overdue by" : "Time left"; }
    });
  }

  setInterval(tick, 1000);
})();
