// What the HIT pages share (the 2AFC page and the ACR/DSIS rating page): the submit flow and
// the start. Loaded before the page's own script (linked, or inlined first for HTMLQuestion).
var plicPage = (function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };

  // p: the page's state and steps. p.task, p.form, p.preview, p.n; p.answeredCount(),
  // p.payload(), p.progress(), p.finish(), p.useStored(stored, why), p.show(i); the flags through
  // p.sending() / p.setSending(v), p.stored() and p.fits().
  function wireSubmit(p) {
    p.form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (p.preview || p.sending() || p.answeredCount() !== p.n) { return; }
      // HTMLQuestion (no record_url): MTurk keeps the answers
      if (p.stored() || !p.task.record_url) { p.finish(); return; }
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
            p.finish();
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

  return { wireSubmit: wireSubmit, start: start };
})();
