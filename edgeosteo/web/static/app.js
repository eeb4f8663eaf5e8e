// Small progressive enhancements; every page works without them.
(function () {
  var form = document.getElementById("screening-form");
  if (form) {
    var input = document.getElementById("image");
    var drop = document.getElementById("drop");
    var chosen = document.getElementById("chosen");
    var show = function () {
      chosen.textContent = input.files.length ? input.files[0].name : "";
    };
    input.addEventListener("change", show);
    ["dragenter", "dragover"].forEach(function (type) {
      drop.addEventListener(type, function (e) { e.preventDefault(); drop.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (type) {
      drop.addEventListener(type, function (e) { e.preventDefault(); drop.classList.remove("over"); });
    });
    drop.addEventListener("drop", function (e) {
      if (e.dataTransfer && e.dataTransfer.files.length) { input.files = e.dataTransfer.files; show(); }
    });
    form.addEventListener("submit", function (e) {
      var missing = false;
      form.querySelectorAll("[required]").forEach(function (field) {
        var bad = !field.checkValidity();
        field.closest(".field") && field.closest(".field").classList.toggle("invalid", bad);
        missing = missing || bad;
      });
      document.getElementById("required-message").hidden = !missing;
      if (missing) { e.preventDefault(); return; }
      document.getElementById("progress").hidden = false;
      form.querySelector("button[type=submit]").disabled = true;
    });
  }
  // both the new-screening form and the answers form hide women-only questions for men
  var sex = document.getElementById("f-sex");
  if (sex) {
    var womenOnly = function () {
      document.querySelectorAll(".women-only").forEach(function (row) {
        row.hidden = sex.value === "male";
      });
    };
    sex.addEventListener("change", womenOnly);
    womenOnly();
  }
  var toggle = document.getElementById("heatmap-toggle");
  if (toggle) {
    toggle.addEventListener("change", function () {
      document.getElementById("heatmap").hidden = !toggle.checked;
    });
  }
  var print = document.getElementById("print");
  if (print) { print.addEventListener("click", function () { window.print(); }); }
})();
