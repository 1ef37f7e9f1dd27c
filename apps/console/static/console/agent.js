/* Agent workspace: my state, offers ringing (with countdown), the service in progress, queue figures.
 *
 * The WebSocket only tells us that something changed; GET /api/queueing/agent/
 * is the truth, fetched at load, after every action, on every agent event and
 * after every reconnection (events sent while the socket was down are lost).
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
  let expiryRefreshScheduled = false;
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
    const seconds = Math.ceil((Date.parse(entry.expires_at) - ui.serverNow()) / 1000);
    if (seconds > 0) {
      line.textContent = ui.format(messages.seconds_left, { seconds });
      return;
    }
    line.textContent = messages.expired;
    byId("offer-accept").disabled = true;
    byId("offer-decline").disabled = true;
    // The dispatcher takes the offer back within a tick; then ask what became of it.
    if (!expiryRefreshScheduled) {
      expiryRefreshScheduled = true;
      setTimeout(() => {
        expiryRefreshScheduled = false;
        refresh();
      }, 2000);
    }
  }

  async function refresh() {
    try {
      const me = await ui.api(config.urls.me);
      state = me.state;
      entry = me.entry;
    } catch (error) {
      ui.showError(error.message);
    }
    render();
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
    await refresh();
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
    // The call panel (call.js) follows the same events.
    window.dispatchEvent(new CustomEvent("remotebank:agent-event", { detail: message }));
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
    if (message.state) {
      state = message.state;
    }
    if (message.event === "offer") {
      // Ring at once with what the event carries; the level follows from the API.
      entry = { id: message.entry, state: "offered", business: message.business, level: null, expires_at: message.expires_at };
      ui.showNotice("");
      render();
    } else if (message.event === "offer_withdrawn") {
      ui.showNotice(messages.offer_withdrawn);
    } else if (message.event === "offer_missed") {
      ui.showNotice(messages.offer_missed);
    }
    refresh();
  }

  function connect() {
    retryTimer = null;
    ui.setStatus(messages.connecting, "connecting");
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + config.urls.socket);
    socket.addEventListener("open", () => {
      failedConnections = 0;
      ui.setStatus(messages.live, "live");
      refresh();
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

  refresh();
  connect();
})();
