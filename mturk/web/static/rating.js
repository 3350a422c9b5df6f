// The rating HIT page (ACR, DSIS). Task data comes from the JSON block #task-data.
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var task = JSON.parse($("task-data").textContent);
  var trials = task.trials, mode = task.mode, n = trials.length, dsis = task.design === "dsis";
  var ids = { assignment_id: task.assignment_id, hit_id: task.hit_id,
              worker_id: task.worker_id };
  var form = $("submit-form");
  var preview = mode === "preview";
  if (mode === "htmlquestion") {
    var q = new URLSearchParams(window.location.search);
    ids.assignment_id = q.get("assignmentId") || "";
    ids.hit_id = q.get("hitId") || "";
    ids.worker_id = q.get("workerId") || "";
    preview = !ids.assignment_id || ids.assignment_id === task.preview_id;
    var to = (q.get("turkSubmitTo") || "").replace(/\/+$/, "");
    if (task.submit_hosts.indexOf(to) >= 0) { form.action = to + "/mturk/externalSubmit"; }
    form.elements.assignmentId.value = preview ? "" : ids.assignment_id;
  }
  var answers = {}, idx = 0, shownAt = Date.now(), zoom = false, phase = "test";
  var sending = false, fits = true, stored = null;
  var img = $("stimulus-img"), scale = $("scale");
  var buttons = Array.prototype.slice.call(document.querySelectorAll(".score"));

  function answeredCount() { return Object.keys(answers).length; }
  function canAnswer() { return !preview && !stored && fits && !sending && phase === "test"; }

  function setPhase(p) {
    phase = dsis ? p : "test";
    var t = trials[idx];
    img.src = phase === "ref" ? t.ref : t.img;
    $("trial").dataset.phase = phase;
    $("caption").textContent = phase === "ref" ? "Reference" : (dsis ? "Test image" : "Image");
    $("to-test").disabled = phase !== "ref";
    if (phase === "test") { shownAt = Date.now(); }
    progress();
  }

  function show(i) {
    idx = Math.max(0, Math.min(n - 1, i));
    var t = trials[idx];
    $("trial").dataset.index = String(idx);
    $("trial").dataset.trialId = t.trial_id;
    var a = answers[t.trial_id];
    buttons.forEach(function (b) {
      b.setAttribute("aria-pressed", String(!!a && Number(b.dataset.score) === a.score));
    });
    setPhase(dsis && !a ? "ref" : "test");
    layout();
  }

  // Every image pixel gets max(1, floor(devicePixelRatio)) device pixels (as on the 2AFC page).
  function layout() {
    var t = trials[idx], L = task.layout, dpr = window.devicePixelRatio || 1;
    var k = Math.max(1, Math.floor(dpr + 1e-6));
    var w = Math.ceil(t.w * k / dpr * 64) / 64, h = Math.ceil(t.h * k / dpr * 64) / 64;
    img.style.width = w + "px"; img.style.height = h + "px";
    img.parentNode.style.width = w + "px"; img.parentNode.style.height = h + "px";
    var needW = w + 2 * L.border + 2 * L.pad, needH = h + 2 * L.border + L.caption;
    var haveW = document.documentElement.clientWidth, haveH = window.innerHeight;
    fits = haveW >= needW && haveH >= needH;
    var warn = $("too-small");
    warn.hidden = fits;
    warn.textContent = fits ? "" : "This window is too small to show the image at full " +
      "size: it needs at least " + Math.ceil(needW) + " \u00d7 " + Math.ceil(needH) +
      " pixels and has " + haveW + " \u00d7 " + haveH + ". Please use a larger window or " +
      "screen (a computer, not a phone). Answers are turned off until the image fits.";
    document.body.classList.toggle("too-small", !fits);
    progress();
  }

  function progress() {
    var k = answeredCount();
    $("progress").textContent = "Image " + (idx + 1) + " of " + n + " \u2014 " + k +
      " of " + n + " rated" + (stored ? " (saved)" : "");
    scale.disabled = !canAnswer();
    $("submit").disabled = preview || sending || k !== n || (!stored && !fits);
  }

  function rate(score) {
    if (!canAnswer()) { return; }
    var t = trials[idx];
    answers[t.trial_id] = { trial_id: t.trial_id, score: score, rt_ms: Date.now() - shownAt };
    for (var j = 1; j <= n; j++) {           // next unrated image, if any
      var k = (idx + j) % n;
      if (!answers[trials[k].trial_id]) { show(k); return; }
    }
    show(idx);
  }

  function useStored(s, why) {
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
  img.parentNode.addEventListener("mousemove", function (e) {
    if (!zoom) { return; }
    var r = img.parentNode.getBoundingClientRect();
    img.style.transformOrigin = ((e.clientX - r.left) / r.width * 100) + "% " +
      ((e.clientY - r.top) / r.height * 100) + "%";
  });

  buttons.forEach(function (b) {
    b.addEventListener("click", function () { rate(Number(b.dataset.score)); });
  });
  $("to-test").addEventListener("click", function () { setPhase("test"); });
  $("show-ref").addEventListener("click", function () { setPhase("ref"); });
  $("prev").addEventListener("click", function () { show(idx - 1); });
  $("next").addEventListener("click", function () { show(idx + 1); });
  $("zoom").addEventListener("click", function () { setZoom(!zoom); });
  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey) { return; }
    var k = e.key;
    if (k.length === 1 && k >= "1" && k <= "5") { rate(Number(k)); }
    else if (dsis && (k === " " || k === "Enter" || k === "Spacebar") && phase === "ref") {
      setPhase("test");
    }
    else if (dsis && k === "r") { setPhase("ref"); }
    else if (k === "Backspace") { show(idx - 1); }
    else if (k === "z") { setZoom(!zoom); }
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
