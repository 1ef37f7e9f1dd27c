/* Agent workspace: my state, offers ringing (with countdown), the service in progress, queue figures.
 *
 * The page shows what the agent socket pushes and asks nothing by itself:
 * the socket's first message is a full snapshot (state, the entry ringing or
 * in the call, the call, the queue figures), and every change on the server
 * is followed by a fresh one, including the dispatcher's (wrap-up over, offer
 * taken back). A reconnection starts with a snapshot again, so events lost
 * while the socket was down do not matter. Actions are HTTP POSTs; their
 * effect arrives as a snapshot.
 */
(() => {
  "use strict";

  const ui = window.RemoteBankConsole;
  const { config, messages } = ui;
  const byId = (id) => document.getElementById(id);
  // Which states each button may move to (the AgentPresence transitions).
  const SETTABLE_FROM = {
    available: ["offline", "away", "wrap_up"],
    away: ["available", "wrap_up", "offline"],
    offline: ["available", "away", "wrap_up"],
  };
  const CLOSE_NOT_ALLOWED = 4403;
  const MAX_RETRY_SECONDS = 30;

  let state = null;
  let entry = null;
  let acting = false;
  let countdownTimer = null;
  let socket = null;
  let failedConnections = 0;
  let retryTimer = null;

  const entryUrl = (template, entryId) => template.replace("/0/", `/${encodeURIComponent(entryId)}/`);
  const businessLabel = (code) => (code ? config.businesses[code] || code : "…");
  const levelLabel = (code) => (code ? config.levels[code] || code : "…");

  function render() {
    const badge = byId("my-state");
    badge.textContent = state ? config.states[state] || state : "…";
    badge.dataset.state = state || "";
    document.querySelectorAll("button[data-set-state]").forEach((button) => {
      button.disabled = acting || !state || !SETTABLE_FROM[button.dataset.setState].includes(state);
    });
    byId("wrap-up-note").hidden = state !== "wrap_up";

    const ringing = Boolean(entry && entry.state === "offered");
    byId("offer-panel").hidden = !ringing;
    if (ringing) {
      byId("offer-business").textContent = businessLabel(entry.business);
      byId("offer-level").textContent = levelLabel(entry.level);
      byId("offer-waited").textContent = entry.enqueued_at
        ? ui.clock(Math.max(0, (ui.serverNow() - Date.parse(entry.enqueued_at)) / 1000))
        : "—";
    }
    byId("offer-accept").disabled = acting || !ringing;
    byId("offer-decline").disabled = acting || !ringing;
    tickCountdown();

    const connected = Boolean(entry && entry.state === "connected");
    byId("service-panel").hidden = !connected;
    if (connected) {
      byId("service-customer").textContent = entry.customer || "—";
      byId("service-business").textContent = businessLabel(entry.business);
      byId("service-level").textContent = levelLabel(entry.level);
    }
    byId("service-end").disabled = acting || !connected;
    byId("service-end").hidden = !connected;
    // One action for the serving agent: "End service" hangs up the call too
    // (the server ends it), so the call panel's own hang-up is not shown.
    byId("call-hangup").hidden = connected;
  }

  function tickCountdown() {
    const line = byId("offer-countdown");
    if (!entry || entry.state !== "offered" || !entry.expires_at) {
      line.textContent = "";
      clearInterval(countdownTimer);
      countdownTimer = null;
      return;
    }
    if (countdownTimer === null) {
      countdownTimer = setInterval(tickCountdown, 250);
    }
    if (entry.enqueued_at) {
      byId("offer-waited").textContent = ui.clock(Math.max(0, (ui.serverNow() - Date.parse(entry.enqueued_at)) / 1000));
    }
    const seconds = Math.ceil((Date.parse(entry.expires_at) - ui.serverNow()) / 1000);
    if (seconds > 0) {
      line.textContent = ui.format(messages.seconds_left, { seconds });
      return;
    }
    line.textContent = messages.expired;
    byId("offer-accept").disabled = true;
    byId("offer-decline").disabled = true;
    // The dispatcher takes the offer back within a tick; the socket then pushes what became of it.
  }

  async function act(url, body) {
    acting = true;
    ui.showError("");
    ui.showNotice("");
    render();
    try {
      await ui.api(url, { method: "POST", body: body || {} });
    } catch (error) {
      ui.showError(error.message);
    } finally {
      acting = false;
    }
    render();
  }

  function renderFigures(queues) {
    const tbody = byId("figures-table").tBodies[0];
    tbody.replaceChildren();
    if (!queues.length) {
      ui.emptyRow(tbody, 5, messages.no_queues);
      return;
    }
    for (const queue of queues) {
      const row = document.createElement("tr");
      ui.cell(row, queue.paused ? `${queue.name} (${messages.queue_paused})` : queue.name);
      ui.cell(row, String(queue.waiting), "number");
      ui.cell(row, String(queue.offered), "number");
      ui.cell(row, ui.clock(queue.longest_wait_seconds), "number");
      ui.cell(row, ui.clock(queue.average_wait_seconds), "number");
      tbody.appendChild(row);
    }
  }

  function onMessage(message) {
    // The call panel (call.js) and the service panel (service.js) follow the same messages.
    window.dispatchEvent(new CustomEvent("remotebank:agent-event", { detail: message }));
    if (message.type === "snapshot") {
      state = message.state;
      entry = message.entry;
      if (Array.isArray(message.queues)) renderFigures(message.queues);
      window.dispatchEvent(new CustomEvent("remotebank:snapshot", { detail: message }));
      render();
      return;
    }
    if (message.type === "figures" && Array.isArray(message.queues)) {
      renderFigures(message.queues);
      return;
    }
    if (message.type === "error") {
      ui.showError(message.message || "");
      return;
    }
    if (message.type !== "agent") {
      return;
    }
    // Events only bring notices; the snapshot right behind each one brings the state.
    if (message.event === "offer") {
      ui.showNotice("");
    } else if (message.event === "offer_withdrawn") {
      ui.showNotice(messages.offer_withdrawn);
    } else if (message.event === "offer_missed") {
      ui.showNotice(messages.offer_missed);
    }
  }

  // The server's snapshot rendered into the page: shown before the socket's first one arrives.
  // After every script of the page has run, so call.js and service.js hear it too.
  function showInitialSnapshot() {
    if (config.snapshot) onMessage(config.snapshot);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", showInitialSnapshot);
  } else {
    window.setTimeout(showInitialSnapshot, 0);
  }

  function connect() {
    retryTimer = null;
    ui.setStatus(messages.connecting, "connecting");
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + config.urls.socket);
    socket.addEventListener("open", () => {
      failedConnections = 0;
      ui.setStatus(messages.live, "live");
    });
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      onMessage(message);
    });
    socket.addEventListener("close", (event) => {
      socket = null;
      if (event.code === CLOSE_NOT_ALLOWED) {
        ui.setStatus(messages.refused, "refused");
        return;
      }
      // Exponential backoff with jitter, so a restarted server is not hit by every agent at once.
      const seconds = Math.min(MAX_RETRY_SECONDS, 2 ** failedConnections) * (0.75 + Math.random() / 2);
      failedConnections += 1;
      ui.setStatus(ui.format(messages.reconnecting, { seconds: Math.max(1, Math.round(seconds)) }), "reconnecting");
      retryTimer = setTimeout(connect, seconds * 1000);
    });
  }

  window.addEventListener("online", () => {
    if (socket === null && retryTimer !== null) {
      clearTimeout(retryTimer);
      connect();
    }
  });

  document.querySelectorAll("button[data-set-state]").forEach((button) => {
    button.addEventListener("click", () => act(config.urls.state, { state: button.dataset.setState }));
  });
  byId("offer-accept").addEventListener("click", () => entry && act(entryUrl(config.urls.accept, entry.id)));
  byId("offer-decline").addEventListener("click", () => entry && act(entryUrl(config.urls.decline, entry.id)));
  byId("service-end").addEventListener("click", () => act(config.urls.service_end));

  render();
  connect();
})();
