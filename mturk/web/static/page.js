// What the HIT pages share (the 2AFC page and the ACR/DSIS rating page): the submit flow and
// the start. Loaded before the page's own script (linked, or inlined first for HTMLQuestion).
var plicPage = (function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };

  // The page's state: the task (JSON block #task-data), the form, the ids (on an HTMLQuestion
  // from MTurk's query string: no assignment = preview), the answers by trial id, the trial
  // shown (idx, since shownAt), and the flags sending, fits and stored (the server's record).
  // The page's script adds show(i), progress() and layout() to it.
  function state() {
    var task = JSON.parse($("task-data").textContent), form = $("submit-form");
    var p = { task: task, form: form, trials: task.trials, n: task.trials.length,
              mode: task.mode, preview: task.mode === "preview", answers: {}, idx: 0,
              shownAt: Date.now(), sending: false, fits: true, stored: null,
              ids: { assignment_id: task.assignment_id, hit_id: task.hit_id,
                     worker_id: task.worker_id } };
    if (task.mode === "htmlquestion") {
      var q = new URLSearchParams(window.location.search);
      p.ids.assignment_id = q.get("assignmentId") || "";
      p.ids.hit_id = q.get("hitId") || "";
      p.ids.worker_id = q.get("workerId") || "";
      p.preview = !p.ids.assignment_id || p.ids.assignment_id === task.preview_id;
      var to = (q.get("turkSubmitTo") || "").replace(/\/+$/, "");
      if (task.submit_hosts.indexOf(to) >= 0) { form.action = to + "/mturk/externalSubmit"; }
      form.elements.assignmentId.value = p.preview ? "" : p.ids.assignment_id;
    }
    return p;
  }

  function answeredCount(p) { return Object.keys(p.answers).length; }
  function canAnswer(p) { return !p.preview && !p.stored && p.fits && !p.sending; }

  // Record the answer to the trial shown, then show the next unanswered trial, if any.
  function record(p, a) {
    p.answers[a.trial_id] = a;
    for (var j = 1; j <= p.n; j++) {
      var k = (p.idx + j) % p.n;
      if (!p.answers[p.trials[k].trial_id]) { p.show(k); return; }
    }
    p.show(p.idx);
  }

  // The server's record of this assignment stands: show it, and let the worker submit it.
  function useStored(p, s, why) {
    p.stored = s; p.answers = {};
    s.answers.forEach(function (a) { p.answers[a.trial_id] = a; });
    storedBanner(p.mode, p.form, why);
    p.show(p.idx);
  }

  // Every image pixel gets max(1, floor(devicePixelRatio)) device pixels: never fewer than one,
  // and a whole number, so nothing is resampled except by nearest-neighbour enlargement. Sizes
  // each of imgs (and its frame) for trial t; returns the CSS size {w, h}.
  function sizeImages(t, imgs) {
    var dpr = window.devicePixelRatio || 1, k = Math.max(1, Math.floor(dpr + 1e-6));
    // CSS lengths snap to 1/64 px: round up, so a view never gets fewer device pixels
    var w = Math.ceil(t.w * k / dpr * 64) / 64, h = Math.ceil(t.h * k / dpr * 64) / 64;
    imgs.forEach(function (im) {
      im.style.width = w + "px"; im.style.height = h + "px";
      im.parentNode.style.width = w + "px"; im.parentNode.style.height = h + "px";
    });
    return { w: w, h: h };
  }

  // Whether the window holds needW x needH; if not, the warning says so (``what``: "the three
  // images", "the image") and answers are off until it does.
  function checkFit(p, needW, needH, what, fit) {
    var haveW = document.documentElement.clientWidth, haveH = window.innerHeight;
    p.fits = haveW >= needW && haveH >= needH;
    var warn = $("too-small");
    warn.hidden = p.fits;
    warn.textContent = p.fits ? "" : "This window is too small to show " + what + " at full " +
      "size: it needs at least " + Math.ceil(needW) + " \u00d7 " + Math.ceil(needH) +
      " pixels and has " + haveW + " \u00d7 " + haveH + ". Please use a larger window or " +
      "screen (a computer, not a phone). Answers are turned off until " + fit + ".";
    document.body.classList.toggle("too-small", !p.fits);
    p.progress();
  }

  // The progress line ("Comparison 2 of 8 — 1 of 8 answered") and the submit button.
  function progress(p, noun, done) {
    var k = answeredCount(p);
    $("progress").textContent = noun + " " + (p.idx + 1) + " of " + p.n + " \u2014 " + k +
      " of " + p.n + " " + done + (p.stored ? " (saved)" : "");
    $("submit").disabled = p.preview || p.sending || k !== p.n || (!p.stored && !p.fits);
  }

  // A tool button (zoom, flicker) pressed or not, and the trial's class that shows it.
  function pressTool(id, cls, on) {
    $("trial").classList.toggle(cls, on);
    $(id).setAttribute("aria-pressed", String(on));
  }

  // The keys every page shares: none with a modifier; Backspace goes back. ``keys(k)``: the
  // page's own, true when it used the key.
  function onKeys(p, keys) {
    document.addEventListener("keydown", function (e) {
      if (e.altKey || e.ctrlKey || e.metaKey) { return; }
      if (keys(e.key)) { e.preventDefault(); }
      else if (e.key === "Backspace") { p.show(p.idx - 1); e.preventDefault(); }
    });
    $("prev").addEventListener("click", function () { p.show(p.idx - 1); });
    $("next").addEventListener("click", function () { p.show(p.idx + 1); });
    window.addEventListener("resize", function () { p.layout(); });
  }

  // The end of an assignment: a local study shows its thanks; on MTurk the answers go to
  // {turkSubmitTo}/mturk/externalSubmit (the prototype call because the button's id "submit"
  // shadows form.submit).
  function finish(p) {
    if (p.task.mode === "local") {
      p.form.hidden = true; $("done").hidden = false;
      return;
    }
    $("answers-field").value = JSON.stringify(payload(p));
    HTMLFormElement.prototype.submit.call(p.form);
  }

  // The banner over answers the server already holds for this assignment.
  function storedBanner(mode, form, why) {
    var banner = $("stored-banner");
    banner.hidden = false;
    banner.textContent = mode === "local"
      ? "Your answers to this batch are already recorded. Thank you!"
      : why + " Those saved answers stand and cannot be changed; press Submit to send them " +
        "to Mechanical Turk and finish the HIT.";
    if (mode === "local") { form.hidden = true; $("done").hidden = false; }
  }

  function payload(p) {
    return { assignment_id: p.ids.assignment_id, hit_id: p.ids.hit_id,
             worker_id: p.ids.worker_id,
             answers: p.trials.map(function (t) { return p.answers[t.trial_id]; }) };
  }

  // p: the page's state (``state()``) with its show(i) and progress().
  function wireSubmit(p) {
    p.form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (p.preview || p.sending || answeredCount(p) !== p.n) { return; }
      // HTMLQuestion (no record_url): MTurk keeps the answers
      if (p.stored || !p.task.record_url) { finish(p); return; }
      if (!p.fits) { return; }
      p.sending = true; p.progress();
      $("submit-status").textContent = "Saving\u2026";
      fetch(p.task.record_url, { method: "POST", headers: { "Content-Type": "application/json" },
                                 body: JSON.stringify(payload(p)) })
        .then(function (r) {
          return r.json().catch(function () { return {}; }).then(function (body) {
            p.sending = false;
            if (r.status === 409 && body.stored) {
              useStored(p, body.stored, "Answers to this HIT were already saved earlier " +
                        "(perhaps in another window).");
              $("submit-status").textContent = "";
              return;
            }
            if (!r.ok) { throw new Error(body.error || "server answered " + r.status); }
            $("submit-status").textContent = "Saved.";
            finish(p);
          });
        })
        .catch(function (err) {
          p.sending = false; p.progress();
          $("submit-status").textContent = "Could not save (" + err.message + "); try again.";
        });
    });
  }

  // Show the page: the first trial, or the answers this assignment already stored.
  function start(p) {
    $("trial").hidden = false; $("tools").hidden = false;
    if (p.preview) { $("preview-banner").hidden = false; }
    if (p.task.stored) {
      var when = p.task.stored.saved_at ? new Date(p.task.stored.saved_at) : null;
      useStored(p, p.task.stored, "You already submitted answers to this HIT" +
                  (when && !isNaN(when) ? " (saved " + when.toLocaleString() + ")." : "."));
    } else {
      p.show(0);
    }
  }

  // Wire the submit button and show the page.
  function run(p) { wireSubmit(p); start(p); }

  return { state: state, answeredCount: answeredCount, canAnswer: canAnswer, record: record,
           sizeImages: sizeImages, checkFit: checkFit, progress: progress, pressTool: pressTool,
           onKeys: onKeys, run: run };
})();
