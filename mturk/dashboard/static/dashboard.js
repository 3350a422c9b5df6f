// Live figures: poll the JSON endpoint; when the study changed, fetch this page again and swap
// its content in (no reload; confirmation pages do not poll, so a half-filled form stays).
(function () {
  const main = document.getElementById("live");
  if (!main) return;
  const every = parseFloat(main.dataset.poll || "0"), url = main.dataset.live;
  if (!every || !url) return;
  let stamp = null;
  async function tick() {
    try {
      const r = await fetch(url, {credentials: "same-origin", cache: "no-store"});
      if (r.ok) {
        const data = await r.json();
        for (const [k, v] of Object.entries(data.overview || {})) {
          for (const el of document.querySelectorAll('[data-k="' + k + '"]')) {
            if (el.closest("#live") && v !== null && typeof v !== "object") el.textContent =
              (typeof v === "number" && !Number.isInteger(v)) ? v.toFixed(1) : v;
          }
        }
        if (stamp !== null && data.stamp !== stamp) {
          const page = await fetch(location.href, {credentials: "same-origin",
                                                   headers: {"X-Partial": "1"}, cache: "no-store"});
          if (page.ok) { main.innerHTML = await page.text(); main.dataset.refreshed = data.stamp; }
        }
        stamp = data.stamp;
        main.dataset.stamp = stamp;
      }
    } catch (e) { /* the next tick tries again */ }
    setTimeout(tick, every * 1000);
  }
  tick();
})();
