// The rating HIT page (ACR, DSIS). Task data comes from the JSON block #task-data; the state,
// the layout's rules and the submit flow are page.js's (plicPage).
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var p = plicPage.state();
  var trials = p.trials, dsis = p.task.design === "dsis", zoom = false, phase = "test";
  var img = $("stimulus-img"), scale = $("scale");
  var buttons = Array.prototype.slice.call(document.querySelectorAll(".score"));

  function canAnswer() { return plicPage.canAnswer(p) && phase === "test"; }

  function setPhase(ph) {
    phase = dsis ? ph : "test";
    var t = trials[p.idx];
    img.src = phase === "ref" ? t.ref : t.img;
    $("trial").dataset.phase = phase;
    $("caption").textContent = phase === "ref" ? "Reference" : (dsis ? "Test image" : "Image");
    $("to-test").disabled = phase !== "ref";
    if (phase === "test") { p.shownAt = Date.now(); }
    p.progress();
  }

  p.show = function (i) {
    p.idx = Math.max(0, Math.min(p.n - 1, i));
    var t = trials[p.idx];
    $("trial").dataset.index = String(p.idx);
    $("trial").dataset.trialId = t.trial_id;
    var a = p.answers[t.trial_id];
    buttons.forEach(function (b) {
      b.setAttribute("aria-pressed", String(!!a && Number(b.dataset.score) === a.score));
    });
    setPhase(dsis && !a ? "ref" : "test");
    p.layout();
  };

  // One view at whole device pixels (plicPage.sizeImages, as on the 2AFC page).
  p.layout = function () {
    var L = p.task.layout, s = plicPage.sizeImages(trials[p.idx], [img]);
    plicPage.checkFit(p, s.w + 2 * L.border + 2 * L.pad, s.h + 2 * L.border + L.caption,
                      "the image", "the image fits");
  };

  p.progress = function () {
    plicPage.progress(p, "Image", "rated");
    scale.disabled = !canAnswer();
  };

  function rate(score) {
    if (!canAnswer()) { return; }
    var t = trials[p.idx];
    plicPage.record(p, { trial_id: t.trial_id, score: score, rt_ms: Date.now() - p.shownAt });
  }

  function setZoom(on) { zoom = on; plicPage.pressTool("zoom", "zoomed", on); }
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
  $("zoom").addEventListener("click", function () { setZoom(!zoom); });
  plicPage.onKeys(p, function (k) {
    if (k.length === 1 && k >= "1" && k <= "5") { rate(Number(k)); }
    else if (dsis && (k === " " || k === "Enter" || k === "Spacebar") && phase === "ref") {
      setPhase("test");
    }
    else if (dsis && k === "r") { setPhase("ref"); }
    else if (k === "z") { setZoom(!zoom); }
    else { return false; }
    return true;
  });
  plicPage.run(p);
})();
