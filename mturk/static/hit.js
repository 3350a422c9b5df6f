// The 2AFC HIT page. Task data comes from the JSON block #task-data (no inline script needed).
(function () {
  "use strict";
  var task = JSON.parse(document.getElementById("task-data").textContent);
  var trials = task.trials, mode = task.mode, n = trials.length;
  var canAnswer = mode !== "preview";
  var answers = {}, idx = 0, shownAt = Date.now(), zoom = false, flickerTimer = null;
  var flickerOn = false, sending = false;
  var $ = function (id) { return document.getElementById(id); };
  var imgs = { left: $("left-img"), right: $("right-img"), ref: $("ref-img") };

  function answeredCount() { return Object.keys(answers).length; }

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
    progress();
  }

  function progress() {
    var k = answeredCount();
    $("progress").textContent = "Comparison " + (idx + 1) + " of " + n + " \u2014 " + k +
      " of " + n + " answered";
    $("submit").disabled = !canAnswer || sending || k !== n;
  }

  function answer(side) {
    if (!canAnswer || sending) { return; }
    var t = trials[idx];
    answers[t.trial_id] = { trial_id: t.trial_id, side: side, rt_ms: Date.now() - shownAt };
    for (var j = 1; j <= n; j++) {           // next unanswered comparison, if any
      var k = (idx + j) % n;
      if (!answers[trials[k].trial_id]) { show(k); return; }
    }
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

  $("left").addEventListener("click", function () { answer("left"); });
  $("right").addEventListener("click", function () { answer("right"); });
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

  function payload() {
    return { assignment_id: task.assignment_id, hit_id: task.hit_id, worker_id: task.worker_id,
             answers: trials.map(function (t) { return answers[t.trial_id]; }) };
  }
  function finish() {
    if (mode === "local") {
      $("submit-form").hidden = true; $("done").hidden = false;
      return;
    }
    $("answers-field").value = JSON.stringify(payload());
    // to {turkSubmitTo}/mturk/externalSubmit; the prototype call because the button's id
    // "submit" shadows form.submit
    HTMLFormElement.prototype.submit.call($("submit-form"));
  }
  $("submit-form").addEventListener("submit", function (e) {
    e.preventDefault();
    if (!canAnswer || sending || answeredCount() !== n) { return; }
    if (!task.record_url) { finish(); return; }   // HTMLQuestion: MTurk keeps the answers
    sending = true; progress();
    $("submit-status").textContent = "Saving\u2026";
    fetch(task.record_url, { method: "POST", headers: { "Content-Type": "application/json" },
                             body: JSON.stringify(payload()) })
      .then(function (r) {
        if (!r.ok) { throw new Error("server answered " + r.status); }
        $("submit-status").textContent = "Saved.";
        finish();
      })
      .catch(function (err) {
        sending = false; progress();
        $("submit-status").textContent = "Could not save (" + err.message + "); try again.";
      });
  });

  show(0);
})();
