/* A supervisor in a live call of their team (issue 21): listen silently or join.
 *
 * The wallboard's link names the mode; the page asks the calls API for its
 * seat and, when it has none yet, enters with that mode (the service checks
 * team and call state). A listening seat's credentials say publish: false,
 * so RemoteBankCall joins the room only to subscribe. "Join the call" turns
 * a listener into a participant on the same Janus session. The seat is asked
 * again every few seconds: the call's end (or a seat closed elsewhere) stops
 * the video.
 */
(() => {
  "use strict";

  const ui = window.RemoteBankConsole;
  const { config, messages } = ui;
  const byId = (id) => document.getElementById(id);
  const POLL_MILLISECONDS = 3000;
  let video = null;
  let roles = {};
  let seat = null;
  let timer = null;
  let over = false;

  function showMode(mode) {
    const line = byId("supervise-mode");
    line.dataset.mode = mode;
    line.textContent = mode === "join" ? messages.joined : messages.listening;
    byId("supervise-join").hidden = mode !== "listen";
    ui.setStatus(line.textContent, "live");
  }

  function stop(text) {
    over = true;
    if (timer) clearInterval(timer);
    timer = null;
    if (video) video.leave();
    video = null;
    byId("call-remote").textContent = "";
    byId("supervise-join").hidden = true;
    byId("supervise-leave").hidden = true;
    ui.setStatus(text, "closed");
    ui.showNotice(text);
  }

  function apply(answer) {
    seat = answer;
    roles = Object.fromEntries((answer.participants || []).map((p) => [p.handle, p.role]));
    if (answer.state === "ended") {
      stop(messages.call_ended);
      return;
    }
    if (!answer.present) {
      stop(messages.left);
      return;
    }
    showMode(answer.mode);
    if (video) {
      video.relabel();
      return;
    }
    if (!answer.join) return; // the room is being prepared: the next poll brings the credentials
    byId("call-status").textContent = messages.entering;
    video = new window.RemoteBankCall({
      credentials: answer.join,
      localVideo: byId("call-local"),
      remoteContainer: byId("call-remote"),
      labelFor: (handle) => messages[roles[handle]] || "",
      onState: (name) => {
        if (name === "remote_video") byId("call-status").textContent = "";
      },
      onError: (code, message) => ui.showError(messages[code] || message),
    });
    video.start();
  }

  async function refresh() {
    if (over) return;
    try {
      apply(await ui.api(config.urls.seat));
    } catch (error) {
      ui.showError(error.message);
    }
  }

  async function enter() {
    let answer;
    try {
      answer = await ui.api(config.urls.seat);
    } catch (error) {
      // No seat yet: enter with the mode chosen on the wallboard.
      if (error.code !== "not_a_participant") {
        ui.showError(error.message);
        return;
      }
      try {
        answer = await ui.api(config.urls.seat, { method: "POST", body: { mode: config.mode } });
      } catch (refused) {
        ui.showError(refused.message);
        ui.setStatus(refused.message, "refused");
        return;
      }
    }
    // A seat left earlier in this call: enter again.
    if (!answer.present && answer.state !== "ended") {
      try {
        answer = await ui.api(config.urls.seat, { method: "POST", body: { mode: config.mode } });
      } catch (refused) {
        ui.showError(refused.message);
        return;
      }
    }
    apply(answer);
    if (!over) timer = setInterval(refresh, POLL_MILLISECONDS);
  }

  byId("supervise-join").addEventListener("click", async () => {
    ui.showError("");
    try {
      const answer = await ui.api(config.urls.seat, { method: "POST", body: { mode: "join" } });
      apply(answer);
      if (video) video.startPublishing();
    } catch (error) {
      ui.showError(error.message);
    }
  });

  byId("supervise-leave").addEventListener("click", async () => {
    ui.showError("");
    try {
      await ui.api(config.urls.leave, { method: "POST", body: {} });
    } catch (error) {
      ui.showError(error.message);
      return;
    }
    stop(messages.left);
    window.location.assign(config.urls.wallboard);
  });

  enter();
})();
