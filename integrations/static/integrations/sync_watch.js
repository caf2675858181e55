/* The QuickBooks settings tabs while a sync of the company runs (the page includes this script
 * only then, so nothing polls while no run goes; the Sync history tab and the run page refresh
 * themselves instead):
 * - every few seconds it asks the server how things stand (JSON) and puts the Sync button
 *   back as the server renders it, so its reason follows the run's progress;
 * - when the run has ended, the page reloads, so Sync is available again and the figures are
 *   the run's, without a manual reload;
 * - a page with a form staff have changed, or one shown after a POST, is not reloaded (what was
 *   typed would be lost): its Sync button comes back and a note says the run ended.
 */
"use strict";
{
  const config = JSON.parse(document.getElementById("ll-sync-watch").textContent);
  const MAX_FAILURES = 5; // a signed-out session or a server restart: stop asking after this

  // What the page's own forms hold (the Sync button's form aside), to tell whether staff
  // changed something since the page loaded.
  function formsState() {
    return [...document.querySelectorAll("#content-main form")]
      .filter((form) => !form.closest(".ll-sync"))
      .map((form) => new URLSearchParams(new FormData(form)).toString())
      .join("\n");
  }

  const initial = formsState();
  let failures = 0;

  function showButton(html) {
    const current = document.querySelector(".ll-sync");
    if (!current || !html) return;
    const holder = document.createElement("div");
    holder.innerHTML = html.trim();
    const fresh = holder.querySelector(".ll-sync");
    if (fresh) current.replaceWith(fresh);
  }

  function sayRunEnded() {
    if (document.getElementById("qbo-run-ended")) return;
    const note = document.createElement("p");
    note.id = "qbo-run-ended";
    note.className = "ll-banner warning";
    note.setAttribute("role", "status");
    note.textContent =
      "The sync run has ended. Reload the page to see what it changed; what you typed here " +
      "is not saved until you save it.";
    const header = document.querySelector(".ll-header");
    if (header) header.after(note);
  }

  async function poll() {
    let state;
    try {
      const response = await fetch(config.url, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
        cache: "no-store",
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      state = await response.json();
    } catch (error) {
      failures += 1;
      if (failures < MAX_FAILURES) window.setTimeout(poll, config.interval);
      return;
    }
    failures = 0;
    if (state.running) {
      showButton(state.button);
      window.setTimeout(poll, config.interval);
    } else if (config.reload && formsState() === initial) {
      window.location.reload();
    } else {
      showButton(state.button);
      sayRunEnded();
    }
  }

  window.setTimeout(poll, config.interval);
}
