// The 2AFC HIT page. Task data comes from the JSON block #task-data (no inline script needed).
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var task = JSON.parse($("task-data").textContent);
  var trials = task.trials, mode = task.mode, n = trials.length;
  var ids = { assignment_id: task.assignment_id, hit_id: task.hit_id,
              worker_id: task.worker_id };
  var form = $("submit-form");
  var preview = mode === "preview";
  if (mode === "htmlquestion") {
    // MTurk opens an HTMLQuestion with the ids in the query string; no assignment = preview.
    var q = new URLSearchParams(window.location.search);
    ids.assignment_id = q.get("assignmentId") || "";
    ids.hit_id = q.get("hitId") || "";
    ids.worker_id = q.get("workerId") || "";
    preview = !ids.assignment_id || ids.assignment_id === task.preview_id;
    var to = (q.get("turkSubmitTo") || "").replace(/\/+$/, "");
    if (task.submit_hosts.indexOf(to) >= 0) { form.action = to + "/mturk/externalSubmit"; }
    form.elements.assignmentId.value = preview ? "" : ids.assignment_id;
  }
  var answers = {}, idx = 0, shownAt = Date.now(), zoom = false, flickerTimer = null;
  var flickerOn = false, sending = false, fits = true, stored = null;
  var imgs = { left: $("left-img"), right: $("right-img"), ref: $("ref-img") };

  function answeredCount() { return Object.keys(answers).length; }
  function canAnswer() { return !preview && !stored && fits && !sending; }

  function show(i) {
    idx = Math.max(0, Math.min(n - 1, i));
    var t = trials[idx];
    imgs.left.src = t.left; imgs.right.src = t.right; imgs.ref.src = t.ref;
    $("trial").dataset.index = String(idx);
    $("trial").dataset.trialId = t.trial_id;
    var a = answers[t.trial_id];
    $("left").classList.toggle("chosen", !!a && a.side === "left");
    $("right").classList.toggle("chosen", !!a && a.side === "right");
    shownAt = Date.now();
    if (flickerOn) { stopFlicker(); startFlicker(); }
    layout();
  }

  // Every image pixel gets max(1, floor(devicePixelRatio)) device pixels: never fewer than one,
  // and a whole number, so nothing is resampled except by nearest-neighbour enlargement.
  function layout() {
    var t = trials[idx], L = task.layout, dpr = window.devicePixelRatio || 1;
    var k = Math.max(1, Math.floor(dpr + 1e-6));
    // CSS lengths snap to 1/64 px: round up, so a view never gets fewer device pixels
    var w = Math.ceil(t.w * k / dpr * 64) / 64, h = Math.ceil(t.h * k / dpr * 64) / 64;
    Object.keys(imgs).forEach(function (v) {
      imgs[v].style.width = w + "px"; imgs[v].style.height = h + "px";
      imgs[v].parentNode.style.width = w + "px"; imgs[v].parentNode.style.height = h + "px";
    });
    var needW = 3 * (w + 2 * L.border) + 2 * L.gap + 2 * L.pad;
    var needH = h + 2 * L.border + L.caption;
    var haveW = document.documentElement.clientWidth, haveH = window.innerHeight;
    fits = haveW >= needW && haveH >= needH;
    var warn = $("too-small");
    warn.hidden = fits;
    warn.textContent = fits ? "" : "This window is too small to show the three images at full " +
      "size: it needs at least " + Math.ceil(needW) + " \u00d7 " + Math.ceil(needH) +
      " pixels and has " + haveW + " \u00d7 " + haveH + ". Please use a larger window or " +
      "screen (a computer, not a phone). Answers are turned off until the images fit.";
    document.body.classList.toggle("too-small", !fits);
    progress();
  }

  function progress() {
    var k = answeredCount();
    $("progress").textContent = "Comparison " + (idx + 1) + " of " + n + " \u2014 " + k +
      " of " + n + " answered" + (stored ? " (saved)" : "");
    $("submit").disabled = preview || sending || k !== n || (!stored && !fits);
  }

  function answer(side) {
    if (!canAnswer()) { return; }
    var t = trials[idx];
    answers[t.trial_id] = { trial_id: t.trial_id, side: side, rt_ms: Date.now() - shownAt };
    for (var j = 1; j <= n; j++) {           // next unanswered comparison, if any
      var k = (idx + j) % n;
      if (!answers[trials[k].trial_id]) { show(k); return; }
    }
    show(idx);
  }

  function useStored(s, why) {
    // The server's record of this assignment stands: show it, and let the worker submit it.
    stored = s; answers = {};
    s.answers.forEach(function (a) { answers[a.trial_id] = a; });
    plicPage.storedBanner(mode, form, why);
    show(idx);
  }

  function setZoom(on) {
    zoom = on;
    $("trial").classList.toggle("zoomed", on);
    $("zoom").setAttribute("aria-pressed", String(on));
  }
  function startFlicker() {
    var t = trials[idx], showRef = false;
    flickerTimer = setInterval(function () {
      showRef = !showRef;
      imgs.left.src = showRef ? t.ref : t.left;
      imgs.right.src = showRef ? t.ref : t.right;
    }, 500);
  }
  function stopFlicker() {
    if (flickerTimer) { clearInterval(flickerTimer); flickerTimer = null; }
    var t = trials[idx];
    imgs.left.src = t.left; imgs.right.src = t.right;
  }
  function setFlicker(on) {
    flickerOn = on;
    $("trial").classList.toggle("flickering", on);
    $("flicker").setAttribute("aria-pressed", String(on));
    if (on) { startFlicker(); } else { stopFlicker(); }
  }

  // Zoom follows the mouse in any panel and moves all three crops together.
  Array.prototype.forEach.call(document.querySelectorAll(".frame"), function (f) {
    f.addEventListener("mousemove", function (e) {
      if (!zoom) { return; }
      var r = f.getBoundingClientRect();
      var o = ((e.clientX - r.left) / r.width * 100) + "% " +
              ((e.clientY - r.top) / r.height * 100) + "%";
      Object.keys(imgs).forEach(function (k) { imgs[k].style.transformOrigin = o; });
    });
  });

  ["left", "right"].forEach(function (side) {
    $(side).addEventListener("click", function () { answer(side); });
    $(side).addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " " || e.key === "Spacebar") {
        e.preventDefault(); e.stopPropagation(); answer(side);
      }
    });
  });
  $("prev").addEventListener("click", function () { show(idx - 1); });
  $("next").addEventListener("click", function () { show(idx + 1); });
  $("zoom").addEventListener("click", function () { setZoom(!zoom); });
  $("flicker").addEventListener("click", function () { setFlicker(!flickerOn); });
  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey) { return; }
    var k = e.key;
    if (k === "ArrowLeft" || k === "1") { answer("left"); }
    else if (k === "ArrowRight" || k === "2") { answer("right"); }
    else if (k === "Backspace") { show(idx - 1); }
    else if (k === "z") { setZoom(!zoom); }
    else if (k === "f") { setFlicker(!flickerOn); }
    else { return; }
    e.preventDefault();
  });
  window.addEventListener("resize", layout);

  function payload() {
    return { assignment_id: ids.assignment_id, hit_id: ids.hit_id, worker_id: ids.worker_id,
             answers: trials.map(function (t) { return answers[t.trial_id]; }) };
  }
  var steps = { task: task, form: form, preview: preview, n: n, answeredCount: answeredCount,
                payload: payload, progress: progress, useStored: useStored,
                show: show, sending: function () { return sending; },
                setSending: function (v) { sending = v; }, stored: function () { return stored; },
                fits: function () { return fits; } };
  plicPage.wireSubmit(steps);
  plicPage.start(steps);
})();
