// What the HIT pages share (the 2AFC page and the ACR/DSIS rating page): the submit flow and
// the start. Loaded before the page's own script (linked, or inlined first for HTMLQuestion).
var plicPage = (function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };

  // The end of an assignment: a local study shows its thanks; on MTurk the answers go to
  // {turkSubmitTo}/mturk/externalSubmit (the prototype call because the button's id "submit"
  // shadows form.submit).
  function finish(p) {
    if (p.task.mode === "local") {
      p.form.hidden = true; $("done").hidden = false;
      return;
    }
    $("answers-field").value = JSON.stringify(p.payload());
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

  // p: the page's state and steps. p.task, p.form, p.preview, p.n; p.answeredCount(),
  // p.payload(), p.progress(), p.useStored(stored, why), p.show(i); the flags through
  // p.sending() / p.setSending(v), p.stored() and p.fits().
  function wireSubmit(p) {
    p.form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (p.preview || p.sending() || p.answeredCount() !== p.n) { return; }
      // HTMLQuestion (no record_url): MTurk keeps the answers
      if (p.stored() || !p.task.record_url) { finish(p); return; }
      if (!p.fits()) { return; }
      p.setSending(true); p.progress();
      $("submit-status").textContent = "Saving\u2026";
      fetch(p.task.record_url, { method: "POST", headers: { "Content-Type": "application/json" },
                                 body: JSON.stringify(p.payload()) })
        .then(function (r) {
          return r.json().catch(function () { return {}; }).then(function (body) {
            p.setSending(false);
            if (r.status === 409 && body.stored) {
              p.useStored(body.stored, "Answers to this HIT were already saved earlier (perhaps " +
                          "in another window).");
              $("submit-status").textContent = "";
              return;
            }
            if (!r.ok) { throw new Error(body.error || "server answered " + r.status); }
            $("submit-status").textContent = "Saved.";
            finish(p);
          });
        })
        .catch(function (err) {
          p.setSending(false); p.progress();
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
      p.useStored(p.task.stored, "You already submitted answers to this HIT" +
                  (when && !isNaN(when) ? " (saved " + when.toLocaleString() + ")." : "."));
    } else {
      p.show(0);
    }
  }

  return { wireSubmit: wireSubmit, start: start, storedBanner: storedBanner };
})();
