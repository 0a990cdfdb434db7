// Line numbers beside the YAML/JSON textareas of the console (routing rules, scoring model): the gutter
// follows the text as it is typed and scrolled; lines a service found a problem on stay marked.
(function () {
  function attach(area) {
    var gutter = document.getElementById(area.id + "-gutter");
    if (!gutter || area.dataset.gutterReady) return;
    area.dataset.gutterReady = "1";
    var marked = (area.dataset.problemLines || "").split(",").filter(Boolean);
    function draw() {
      var count = area.value.split("\n").length;
      var out = [];
      for (var n = 1; n <= count; n++) {
        out.push(marked.indexOf(String(n)) >= 0 ? "<span class=\"bad\">" + n + "</span>" : String(n));
      }
      gutter.innerHTML = out.join("\n");
      gutter.scrollTop = area.scrollTop;
    }
    area.addEventListener("input", draw);
    area.addEventListener("scroll", function () { gutter.scrollTop = area.scrollTop; });
    draw();
  }
  function attachAll() {
    document.querySelectorAll("textarea[data-line-numbers]").forEach(attach);
  }
  document.addEventListener("DOMContentLoaded", attachAll);
  document.addEventListener("htmx:afterSwap", attachAll);
})();
