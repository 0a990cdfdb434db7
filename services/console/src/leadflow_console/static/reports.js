// Draws each report chart from the JSON spec the page carries beside its <canvas> (the page's
// Content-Security-Policy allows no inline script). The table under each chart holds the same figures.
(function () {
  "use strict";
  // The Okabe-Ito colours, told apart with every common colour blindness.
  var PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#8A6D00", "#56B4E9", "#E69F00", "#000000"];

  function draw(canvas) {
    var source = document.getElementById(canvas.dataset.chart);
    if (!source || typeof Chart === "undefined") { return; }
    var spec = JSON.parse(source.textContent);
    var datasets = spec.datasets.map(function (set, i) {
      var colour = PALETTE[i % PALETTE.length];
      return Object.assign({}, set, {
        backgroundColor: colour, borderColor: colour, borderWidth: spec.type === "line" ? 2 : 0,
        spanGaps: true, pointRadius: 3
      });
    });
    new Chart(canvas, {
      type: spec.type,
      data: { labels: spec.labels, datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: { legend: { position: "bottom" } },
        scales: {
          x: { stacked: spec.stacked },
          y: { stacked: spec.stacked, beginAtZero: true, title: { display: !!spec.y_title, text: spec.y_title } }
        }
      }
    });
    canvas.dataset.drawn = "true";
  }

  function drawAll() {
    document.querySelectorAll("canvas[data-chart]").forEach(draw);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
