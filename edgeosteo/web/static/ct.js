// The CT case's tap: a tap on the sagittal reformat sets the form's tap in the reformat's
// own pixels (x: an image row, y: a slice), marks it, and enables Measure.
(function () {
  "use strict";
  var overlay = document.getElementById("ct-tap-overlay");
  if (!overlay) { return; }
  var columns = Number(overlay.getAttribute("data-columns"));
  var rows = Number(overlay.getAttribute("data-rows"));
  var mark = document.getElementById("ct-tap-mark");
  var button = document.getElementById("ct-measure-button");
  var status = document.getElementById("ct-tap-status");
  var NS = "http://www.w3.org/2000/svg";

  function line(x1, y1, x2, y2) {
    var l = document.createElementNS(NS, "line");
    l.setAttribute("x1", x1); l.setAttribute("y1", y1);
    l.setAttribute("x2", x2); l.setAttribute("y2", y2);
    l.setAttribute("vector-effect", "non-scaling-stroke");
    return l;
  }

  function clamp(v, lo, hi) { return Math.min(Math.max(v, lo), hi); }

  overlay.addEventListener("pointerdown", function (event) {
    event.preventDefault();
    var box = overlay.getBoundingClientRect();
    // a pixel's centre is at index + 0.5 of the shown width
    var x = clamp((event.clientX - box.left) / box.width * columns - 0.5, 0, columns - 1);
    var y = clamp((event.clientY - box.top) / box.height * rows - 0.5, 0, rows - 1);
    document.getElementById("ct-tap-x").value = x.toFixed(1);
    document.getElementById("ct-tap-y").value = y.toFixed(1);
    while (mark.firstChild) { mark.removeChild(mark.firstChild); }
    var dx = columns / 40, dy = dx * (box.width / columns) / (box.height / rows);
    mark.appendChild(line(x - dx, y, x + dx, y));
    mark.appendChild(line(x, y - dy, x, y + dy));
    mark.setAttribute("data-x", x.toFixed(1));
    mark.setAttribute("data-y", y.toFixed(1));
    button.disabled = false;
    status.textContent = status.getAttribute("data-tapped");
  });
  document.getElementById("ct-tool").addEventListener("submit", function () {
    button.disabled = true;  // one measurement per press: reading the series takes seconds
  });
})();
