/* Gate 3's liveness challenge on the customer's page (issue 14).
 *
 * The server draws the challenge and sends it on the visit socket
 * ({type: "visit", event: "liveness", challenge: {steps: [{action, at, window}], seconds}});
 * the page's socket handler re-dispatches every message as "remotebank:visit-event".
 * Each step is shown at its own time (seconds after the challenge arrived)
 * for its window; the server captures the video meanwhile and decides. The
 * page never decides anything: it only tells the customer what to do, and
 * why the face check did not pass ("gates" events with gate "face").
 */
(function () {
  "use strict";
  const box = document.getElementById("liveness");
  const prompt = document.getElementById("liveness-prompt");
  const bar = document.getElementById("liveness-time");
  const result = document.getElementById("face-result");
  if (!box || !prompt || !bar || !result) return;
  let timers = [];

  function clear() {
    timers.forEach((timer) => clearTimeout(timer));
    timers = [];
  }

  function run(challenge) {
    clear();
    result.hidden = true;
    box.hidden = false;
    prompt.textContent = box.dataset.wait;
    const started = performance.now();
    const total = Math.max(1, Number(challenge.seconds) || 1);
    bar.max = total;
    const tick = () => {
      const elapsed = (performance.now() - started) / 1000;
      bar.value = Math.min(total, elapsed);
      if (elapsed < total) timers.push(setTimeout(tick, 100));
    };
    tick();
    for (const step of challenge.steps || []) {
      timers.push(setTimeout(() => { prompt.textContent = box.dataset[step.action] || step.action; }, step.at * 1000));
      timers.push(setTimeout(() => { prompt.textContent = box.dataset.wait; }, (step.at + step.window) * 1000));
    }
    timers.push(setTimeout(() => { prompt.textContent = box.dataset.done; }, total * 1000));
  }

  function outcome(message) {
    if (message.gate !== "face") return;
    if (message.status === "passed") {
      clear();
      box.hidden = true;
    } else if (message.status === "failed") {
      clear();
      box.hidden = true;
      result.textContent = box.dataset.failed;
      result.hidden = false;
      // The call ends right after: say why on the "call ended" screen too, in plain words.
      const ended = document.getElementById("step-ended");
      if (ended && !document.getElementById("face-ended-reason")) {
        const reason = document.createElement("p");
        reason.id = "face-ended-reason";
        reason.className = "error";
        reason.setAttribute("role", "alert");
        reason.textContent = box.dataset.failed;
        ended.insertBefore(reason, ended.children[1] || null);
      }
    } else if (message.status === "error") {
      clear();
      prompt.textContent = box.dataset.retry;
    }
  }

  window.addEventListener("remotebank:visit-event", (event) => {
    const message = event.detail || {};
    if (message.type !== "visit") return;
    if (message.event === "liveness" && message.challenge) run(message.challenge);
    else if (message.event === "gates") outcome(message);
  });
})();
