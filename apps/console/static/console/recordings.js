/* Recordings list and player: post-processing progress refreshes while something is waiting or being
 * processed (the API polled every few seconds), and a failed one can be re-run.
 *
 * The rows carry data-recording (id) and data-state. When a recording leaves the active states the page
 * reloads once, so that its Play link, error or Re-run button come from the server's own rendering.
 */
(() => {
  "use strict";

  const ui = window.RemoteBankConsole;
  const { config, messages } = ui;
  const ACTIVE = new Set(["pending", "processing"]);
  let timer = null;

  const rows = () => Array.from(document.querySelectorAll("[data-recording][data-state]"));
  const field = (row, name) => row.querySelector(`[data-field="${name}"]`);

  function anyActive() {
    return rows().some((row) => ACTIVE.has(row.dataset.state));
  }

  function show(row, recording) {
    const state = field(row, "state");
    state.textContent = config.states[recording.state] || recording.state;
    state.dataset.state = recording.state;
    const active = ACTIVE.has(recording.state);
    for (const name of ["progress", "progress-bar"]) {
      const element = field(row, name);
      if (!element) continue;
      element.hidden = !active;
      if (name === "progress") element.textContent = `${recording.progress}%`;
      else element.value = recording.progress;
    }
  }

  async function poll() {
    timer = null;
    let answer;
    try {
      answer = await ui.api(config.urls.status);
    } catch (error) {
      ui.setStatus(ui.format(messages.stale, { message: error.message, seconds: config.refresh_seconds }), "stale");
      schedule();
      return;
    }
    const recordings = Array.isArray(answer.results) ? answer.results : [answer];
    const byId = new Map(recordings.map((recording) => [String(recording.id), recording]));
    let settled = false;
    for (const row of rows()) {
      const recording = byId.get(row.dataset.recording);
      if (!recording) continue;
      show(row, recording);
      if (ACTIVE.has(row.dataset.state) && !ACTIVE.has(recording.state)) settled = true;
      row.dataset.state = recording.state;
    }
    if (settled) {
      window.location.reload();
      return;
    }
    schedule();
  }

  function schedule() {
    if (anyActive()) {
      ui.setStatus(ui.format(messages.refreshing, { seconds: config.refresh_seconds }), "live");
      if (timer === null) timer = window.setTimeout(poll, config.refresh_seconds * 1000);
    } else {
      ui.setStatus(messages.settled, "live");
    }
  }

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-reprocess]");
    if (!button) return;
    button.disabled = true;
    ui.showError("");
    try {
      const recording = await ui.api(button.dataset.reprocess, { method: "POST", body: {} });
      ui.showNotice(messages.reprocess_queued);
      const row = button.closest("[data-recording]");
      if (row) {
        const error = field(row, "error");
        if (error) error.hidden = true;
        show(row, recording);
        row.dataset.state = recording.state;
      }
      button.remove();
      schedule();
    } catch (error) {
      button.disabled = false;
      ui.showError(error.message);
    }
  });

  schedule();
})();
