// Small progressive enhancements; every page works without them.
(function () {
  // the clinical form's own messages (the browser's bubbles speak the browser's language):
  // an empty required field asks for it, a value outside the range says the range; decimals
  // finer than the field's step are the server's to accept
  var checkClinicalFields = function (form) {
    var found = { any: false, missing: false };
    form.querySelectorAll(".field input, .field select").forEach(function (field) {
      var box = field.closest(".field");
      var v = field.validity;
      var text = "";
      if (v.valueMissing) { text = box.dataset.missing; found.missing = true; }
      else if (v.rangeUnderflow || v.rangeOverflow || v.badInput) {
        text = box.dataset.range || box.dataset.missing;
      }
      box.classList.toggle("invalid", text !== "");
      var problem = box.querySelector(".problem");
      if (problem) { problem.textContent = text; }
      found.any = found.any || text !== "";
    });
    return found;
  };
  var answersForm = document.getElementById("answers-form");
  if (answersForm) {
    answersForm.addEventListener("submit", function (e) {
      if (checkClinicalFields(answersForm).any) { e.preventDefault(); }
    });
  }
  var form = document.getElementById("screening-form");
  if (form) {
    var input = document.getElementById("image");
    var drop = document.getElementById("drop");
    var chosen = document.getElementById("chosen");
    var show = function () {
      chosen.textContent = input.files.length ? input.files[0].name : chosen.dataset.none;
      chosen.classList.toggle("has-file", input.files.length > 0);
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
      var problems = checkClinicalFields(form);
      var message = document.getElementById("required-message");
      message.hidden = !problems.any;
      message.textContent = problems.missing ? message.dataset.missing : message.dataset.invalid;
      if (problems.any) { e.preventDefault(); return; }
      document.getElementById("progress").hidden = false;
      form.querySelector("button[type=submit]").disabled = true;
    });
  }
  // a film photo is shown rectified beside the original before screening; the technician
  // can mark the film's four corners by hand when the outline is wrong
  var review = document.getElementById("photo-review");
  if (form && review) {
    var image = document.getElementById("image");
    var cornersField = document.getElementById("film_corners");
    var sourceField = document.getElementById("film_corners_source");
    var frame = document.getElementById("corner-frame");
    var photo = document.getElementById("review-photo");
    var outline = document.getElementById("review-outline");
    var count = document.getElementById("corner-count");
    var photoSize = null;
    var clicks = null; // null: not marking; otherwise the corners tapped so far (photo pixels)
    var sequence = 0;
    var byId = function (id) { return document.getElementById(id); };
    var isPhoto = function () {
      var chosen = form.querySelector("input[name=capture]:checked");
      return chosen && chosen.value === "photo" && image.files.length > 0;
    };
    var svg = function (name, attributes) {
      var node = document.createElementNS("http://www.w3.org/2000/svg", name);
      Object.keys(attributes).forEach(function (key) { node.setAttribute(key, attributes[key]); });
      return node;
    };
    var draw = function (points, closed) {
      while (outline.firstChild) { outline.removeChild(outline.firstChild); }
      if (!photoSize || !points) { return; }
      var stroke = Math.max(photoSize[0], photoSize[1]) / 200;
      outline.setAttribute("viewBox", "0 0 " + photoSize[0] + " " + photoSize[1]);
      if (closed && points.length === 4) {
        outline.appendChild(svg("polygon", {
          points: points.map(function (p) { return p.join(","); }).join(" "),
          fill: "none", stroke: "#1e88e5", "stroke-width": stroke
        }));
      }
      points.forEach(function (p) {
        outline.appendChild(svg("circle", {
          cx: p[0], cy: p[1], r: stroke * 2.5, fill: "#1e88e5", "class": "corner-dot"
        }));
      });
    };
    var setMarking = function (on) {
      clicks = on ? [] : null;
      frame.classList.toggle("marking", on);
      byId("corner-help").hidden = !on;
      count.textContent = on ? "0 / 4" : "";
    };
    var show = function (answer) {
      photoSize = [answer.photo.width, answer.photo.height];
      photo.src = answer.photo.image;
      byId("review-film").src = answer.film.image;
      draw(answer.corners, true);
      cornersField.value = answer.corners ? JSON.stringify(answer.corners) : "";
      sourceField.value = answer.corners ? (answer.corner_source === "user" ? "user" : "detected") : "";
      review.dataset.cornerSource = answer.corner_source;
      var list = byId("review-messages");
      list.textContent = "";
      answer.messages.forEach(function (message) {
        var item = document.createElement("li");
        item.className = message.verdict;
        item.dataset.code = message.code;
        item.textContent = message.text;
        list.appendChild(item);
      });
      byId("review-ok").hidden = !answer.usable || answer.messages.length > 0;
      byId("review-pair").hidden = false;
      byId("review-actions").hidden = false;
      byId("auto-corners").hidden = answer.corner_source !== "user";
    };
    var ask = function (corners) {
      var mine = ++sequence;
      cornersField.value = "";
      sourceField.value = "";
      if (!isPhoto()) { review.hidden = true; return; }
      review.hidden = false;
      byId("review-error").hidden = true;
      byId("review-working").hidden = false;
      var body = new FormData();
      body.append("csrf_token", form.querySelector("input[name=csrf_token]").value);
      body.append("image", image.files[0]);
      if (corners) {
        body.append("film_corners", JSON.stringify(corners));
        body.append("film_corners_source", "user");
      }
      fetch(review.dataset.reviewUrl, { method: "POST", body: body, credentials: "same-origin" })
        .then(function (response) {
          return response.json().then(function (answer) { return [response.ok, answer]; });
        })
        .then(function (result) {
          if (mine !== sequence) { return; } // a newer photo or newer corners were chosen
          byId("review-working").hidden = true;
          if (result[0]) { show(result[1]); review.dataset.state = "shown"; return; }
          byId("review-error").textContent = result[1].text;
          byId("review-error").hidden = false;
          byId("review-pair").hidden = !photoSize;
          review.dataset.state = "error";
        })
        .catch(function () {
          if (mine !== sequence) { return; }
          byId("review-working").hidden = true;
          review.dataset.state = "unavailable"; // the screening still finds the film itself
        });
    };
    var fresh = function () { setMarking(false); photoSize = null; draw(null); ask(null); };
    image.addEventListener("change", fresh);
    form.querySelectorAll("input[name=capture]").forEach(function (radio) {
      radio.addEventListener("change", fresh);
    });
    byId("drop").addEventListener("drop", function () { window.setTimeout(fresh, 0); });
    byId("mark-corners").addEventListener("click", function () { setMarking(true); draw([], false); });
    byId("auto-corners").addEventListener("click", function () { setMarking(false); ask(null); });
    frame.addEventListener("click", function (event) {
      if (clicks === null || !photoSize) { return; }
      var box = photo.getBoundingClientRect();
      clicks.push([
        Math.round((event.clientX - box.left) / box.width * photoSize[0]),
        Math.round((event.clientY - box.top) / box.height * photoSize[1])
      ]);
      count.textContent = clicks.length + " / 4";
      draw(clicks, false);
      if (clicks.length === 4) {
        var corners = clicks;
        setMarking(false);
        ask(corners);
      }
    });
    if (isPhoto()) { ask(null); }
  }
  // the body part: the chosen file's own header sets it; a choice against it needs a tick
  var part = document.getElementById("body-part");
  var fileInput = document.getElementById("image");
  if (form && part && fileInput) {
    var headerPart = null;
    var note = document.getElementById("header-part");
    var confirmRow = document.getElementById("confirm-part");
    var confirmBox = document.getElementById("body-part-confirmed");
    var judge = function () {
      var against = headerPart !== null && part.value !== "" && part.value !== headerPart;
      confirmRow.hidden = !against;
      confirmBox.required = against;
      if (!against) { confirmBox.checked = false; }
    };
    var facts = function () {
      headerPart = null;
      note.hidden = true;
      document.getElementById("photo-hint").hidden = true;
      judge();
      if (!fileInput.files || !fileInput.files[0]) { return; }
      var body = new FormData();
      body.append("csrf_token", form.querySelector("input[name=csrf_token]").value);
      body.append("image", fileInput.files[0]);
      fetch(part.dataset.factsUrl, { method: "POST", body: body, credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (answer) {
          if (!answer) { return; }
          var digital = form.querySelector("input[name=capture][value=digital]");
          document.getElementById("photo-hint").hidden = !(answer.capture === "photo" && digital.checked);
          if (!answer.body_part) { return; }
          headerPart = answer.body_part;
          document.getElementById("header-part-name").textContent = answer.label;
          note.hidden = false;
          part.value = answer.listed ? answer.body_part : "";
          judge();
        })
        .catch(function () { /* the screening reads the header itself */ });
    };
    fileInput.addEventListener("change", facts);
    document.getElementById("use-photo-mode").addEventListener("click", function () {
      var photoRadio = form.querySelector("input[name=capture][value=photo]");
      photoRadio.checked = true;
      photoRadio.dispatchEvent(new Event("change"));
      document.getElementById("photo-hint").hidden = true;
    });
    form.querySelectorAll("input[name=capture]").forEach(function (radio) {
      radio.addEventListener("change", function () {
        if (radio.value === "photo" && radio.checked) { document.getElementById("photo-hint").hidden = true; }
      });
    });
    document.getElementById("drop").addEventListener("drop", function () {
      window.setTimeout(facts, 0);
    });
    part.addEventListener("change", judge);
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
  // a heatmap toggle (the used model's, or the experimental model's) shows it and its legend
  document.querySelectorAll("input[data-heatmap]").forEach(function (toggle) {
    var show = function () {
      document.getElementById(toggle.getAttribute("data-heatmap")).hidden = !toggle.checked;
      document.getElementById("heatmap-legend").hidden = !toggle.checked;
    };
    toggle.addEventListener("change", show);
    show();
  });
  // an error page's "Go back" returns to the page before it (without script: the start page)
  document.querySelectorAll("a[data-back]").forEach(function (link) {
    link.addEventListener("click", function (e) {
      if (window.history.length > 1) { e.preventDefault(); window.history.back(); }
    });
  });
  // the measuring tool: taps on the image become points in the radiograph's pixels; the
  // box finds the edges and returns the points it used, drawn as handles the reader drags
  // its own scope: the photo review above has helpers of the same names (svg, draw)
  (function () {
  var tool = document.getElementById("measure-tool");
  var svg = document.getElementById("measure-overlay");
  if (tool && svg) {
    var NS = "http://www.w3.org/2000/svg";
    var preview = document.getElementById("preview-overlay");
    var select = document.getElementById("measure-method");
    var status = document.getElementById("measure-status");
    var save = document.getElementById("measure-save");
    var accept = document.getElementById("measure-accept");
    var token = document.querySelector("input[name=csrf_token]").value;
    var zh = document.documentElement.lang.indexOf("zh") === 0;
    var points = [];
    var proposed = [];
    var bad = [];
    var dragging = -1;
    var measured = false;
    var tried = false;
    svg.classList.add("tapping");
    var reset = function () {
      points = []; proposed = []; bad = []; measured = false; tried = false;
      save.disabled = true; accept.hidden = true; status.textContent = ""; status.className = "";
      draw(null);
    };
    var help = function () {
      var option = select.options[select.selectedIndex];
      document.getElementById("measure-help").textContent = option ? option.dataset.help : "";
      // toggleAttribute: the diagrams are SVG elements, which have no hidden property
      document.querySelectorAll(".tap-diagram, .measure-option").forEach(function (el) {
        el.toggleAttribute("hidden", el.dataset.method !== select.value);
      });
    };
    select.addEventListener("change", function () { reset(); help(); });
    help();
    var options = function () {
      var chosen = {};
      document.querySelectorAll(".measure-option").forEach(function (row) {
        if (row.dataset.method !== select.value) { return; }
        var control = row.querySelector("select");
        chosen[control.dataset.option] = control.value;
      });
      return chosen;
    };
    var toImage = function (e) {
      var box = svg.getBoundingClientRect();
      var cols = Number(svg.dataset.columns), rows = Number(svg.dataset.rows);
      return [(e.clientX - box.left) / box.width * cols, (e.clientY - box.top) / box.height * rows];
    };
    var radius = function () { return Number(svg.dataset.columns) / 80; };
    var handle = function (p, i, kind) {
      var circle = document.createElementNS(NS, "circle");
      circle.setAttribute("cx", p[0]); circle.setAttribute("cy", p[1]);
      circle.setAttribute("r", radius());
      circle.setAttribute("class", "handle" + (kind ? " " + kind : ""));
      circle.dataset.index = i;
      preview.appendChild(circle);
    };
    var draw = function (result) {
      while (preview.firstChild) { preview.removeChild(preview.firstChild); }
      ((result && result.overlay) || []).forEach(function (shape) {
        var el = document.createElementNS(NS, shape.kind === "polygon" ? "polygon" : "polyline");
        el.setAttribute("points", shape.points.map(function (p) { return p.join(","); }).join(" "));
        el.setAttribute("class", "shape " + shape.role);
        el.setAttribute("vector-effect", "non-scaling-stroke");
        preview.appendChild(el);
      });
      points.forEach(function (p, i) { handle(p, i, bad.indexOf(i) >= 0 ? "bad" : ""); });
      proposed.forEach(function (p, i) { handle(p, points.length + i, "proposed"); });
    };
    var run = function (keep) {
      var body = { method: select.value, points: points, options: options(), save: keep === true };
      tried = true;
      status.textContent = "…";
      return fetch(tool.dataset.url, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": token },
        body: JSON.stringify(body)
      }).then(function (r) { return r.json(); }).then(function (data) {
        var m = data.measurement || data;
        bad = [];
        if (m.status === "measured") {
          if (keep === true) { window.location.reload(); return; }
          points = m.points_used.map(function (p) { return [p[0], p[1]]; });
          proposed = (m.points_proposed || []).map(function (p) { return [p[0], p[1]]; });
          measured = true;
          save.disabled = false;
          accept.hidden = proposed.length === 0;
          document.getElementById("measure-next").textContent = (m.details && m.details.next_level) || "";
          draw(m);
          var finding = m.details && m.details.finding;
          var shown = m.unit === "mm" ? m.value.toFixed(2) + " mm" : (m.unit === "ratio" ? m.value.toFixed(2) : String(m.value));
          status.textContent = finding ? (zh ? finding.zh_CN : finding.en) : shown + (m.cutoff ? " (" + m.cutoff.rule + ")" : "");
          status.className = "measured";
        } else {
          measured = false;
          save.disabled = true;
          proposed = [];
          accept.hidden = true;
          (m.point_checks || []).forEach(function (check, i) { if (!check.ok) { bad.push(i); } });
          draw(null);
          status.textContent = (zh ? m.message_zh_CN : m.message_en) || m.code;
          status.className = "refused";
        }
      }).catch(function () { status.textContent = "!"; });
    };
    svg.addEventListener("pointerdown", function (e) {
      var target = e.target;
      if (target.classList && target.classList.contains("handle")) {
        dragging = Number(target.dataset.index);
        svg.setPointerCapture(e.pointerId);
        e.preventDefault();
        return;
      }
      var max = Number(select.options[select.selectedIndex].dataset.max);
      if (points.length >= max) { return; }
      points.push(toImage(e));
      proposed = []; bad = []; measured = false; save.disabled = true; accept.hidden = true;
      draw(null);
      e.preventDefault();
    });
    svg.addEventListener("pointermove", function (e) {
      if (dragging < 0) { return; }
      if (dragging < points.length) { points[dragging] = toImage(e); }
      else { proposed[dragging - points.length] = toImage(e); }
      draw(null);
    });
    svg.addEventListener("pointerup", function () {
      if (dragging < 0) { return; }
      var moved = dragging;
      dragging = -1;
      // a dragged proposal is accepted with the rest of the proposal; a dragged tap is
      // measured again when a measurement was asked for
      if (moved >= points.length) { return; }
      bad = bad.filter(function (i) { return i !== moved; });
      if (tried) { run(false); }
    });
    document.getElementById("measure-run").addEventListener("click", function () { run(false); });
    accept.addEventListener("click", function () {
      points = points.concat(proposed);
      proposed = [];
      accept.hidden = true;
      run(false);
    });
    document.getElementById("measure-clear").addEventListener("click", reset);
    save.addEventListener("click", function () { run(true); });
  }
  })();
  var print = document.getElementById("print");
  if (print) { print.addEventListener("click", function () { window.print(); }); }
})();
