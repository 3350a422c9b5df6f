// The 2AFC HIT page. Task data comes from the JSON block #task-data (no inline script needed);
// the state, the layout's rules and the submit flow are page.js's (plicPage).
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var p = plicPage.state();
  var trials = p.trials, zoom = false, flickerTimer = null, flickerOn = false;
  var imgs = { left: $("left-img"), right: $("right-img"), ref: $("ref-img") };

  p.show = function (i) {
    p.idx = Math.max(0, Math.min(p.n - 1, i));
    var t = trials[p.idx];
    imgs.left.src = t.left; imgs.right.src = t.right; imgs.ref.src = t.ref;
    $("trial").dataset.index = String(p.idx);
    $("trial").dataset.trialId = t.trial_id;
    var a = p.answers[t.trial_id];
    $("left").classList.toggle("chosen", !!a && a.side === "left");
    $("right").classList.toggle("chosen", !!a && a.side === "right");
    p.shownAt = Date.now();
    if (flickerOn) { stopFlicker(); startFlicker(); }
    p.layout();
  };

  // Three views side by side, each at whole device pixels (plicPage.sizeImages).
  p.layout = function () {
    var L = p.task.layout;
    var s = plicPage.sizeImages(trials[p.idx], [imgs.left, imgs.right, imgs.ref]);
    plicPage.checkFit(p, 3 * (s.w + 2 * L.border) + 2 * L.gap + 2 * L.pad,
                      s.h + 2 * L.border + L.caption, "the three images", "the images fit");
  };

  p.progress = function () { plicPage.progress(p, "Comparison", "answered"); };

  function answer(side) {
    if (!plicPage.canAnswer(p)) { return; }
    var t = trials[p.idx];
    plicPage.record(p, { trial_id: t.trial_id, side: side, rt_ms: Date.now() - p.shownAt });
  }

  function setZoom(on) { zoom = on; plicPage.pressTool("zoom", "zoomed", on); }
  function startFlicker() {
    var t = trials[p.idx], showRef = false;
    flickerTimer = setInterval(function () {
      showRef = !showRef;
      imgs.left.src = showRef ? t.ref : t.left;
      imgs.right.src = showRef ? t.ref : t.right;
    }, 500);
  }
  function stopFlicker() {
    if (flickerTimer) { clearInterval(flickerTimer); flickerTimer = null; }
    var t = trials[p.idx];
    imgs.left.src = t.left; imgs.right.src = t.right;
  }
  function setFlicker(on) {
    flickerOn = on;
    plicPage.pressTool("flicker", "flickering", on);
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
  $("zoom").addEventListener("click", function () { setZoom(!zoom); });
  $("flicker").addEventListener("click", function () { setFlicker(!flickerOn); });
  plicPage.onKeys(p, function (k) {
    if (k === "ArrowLeft" || k === "1") { answer("left"); }
    else if (k === "ArrowRight" || k === "2") { answer("right"); }
    else if (k === "z") { setZoom(!zoom); }
    else if (k === "f") { setFlicker(!flickerOn); }
    else { return false; }
    return true;
  });
  plicPage.run(p);
})();
