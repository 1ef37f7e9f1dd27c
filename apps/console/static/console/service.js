/* The service in the call: gates 2–4 (R6.2–R6.4) and the business (R7), for the serving agent.
 *
 * The server's state machine decides everything; this panel only shows
 * GET /api/gates/calls/<call>/ and GET /api/operations/calls/<call>/ and
 * offers the next step. A call event asks for its own half ("call_gates"
 * the gates, "call_operation" the operations); an action, a change of the
 * call and a reconnected socket ask for both. While the socket is up the
 * events carry it and both are asked again only every 15 s, the safety net;
 * while it is down, every second and a half while something runs and every
 * five seconds otherwise.
 * The agent never sees the customer's answers or PIN: the API does not send them.
 */
(() => {
  "use strict";

  const ui = window.RemoteBankConsole;
  const { config, messages } = ui;
  const byId = (id) => document.getElementById(id);
  let callId = null;
  let gates = null;
  let operations = [];
  let pendingKey = null; // the Idempotency-Key of a start whose answer has not arrived
  let timer = null;
  let lastRefresh = 0;
  let busy = false;
  let wasLive = true;
  const LIVE_REFRESH_MILLISECONDS = 15000;
  const isLive = () => byId("live-status")?.dataset.status === "live";

  const gatesUrl = (suffix = "") => `${config.urls.gates}calls/${callId}/${suffix}`;
  const operationsUrl = () => `${config.urls.operations}calls/${callId}/`;
  const operationUrl = (id, suffix) => `${config.urls.operations}${id}/${suffix}`;

  function text(parent, tag, value, className) {
    const node = document.createElement(tag);
    node.textContent = value;
    if (className) node.className = className;
    parent.appendChild(node);
    return node;
  }

  function button(parent, label, onClick, primary) {
    const node = text(parent, "button", label, primary ? "button default" : "button");
    node.type = "button";
    node.addEventListener("click", onClick);
    return node;
  }

  function renderGates() {
    const list = byId("gates-list");
    list.replaceChildren();
    for (const gate of gates.gates) {
      const item = document.createElement("li");
      item.dataset.gate = gate.gate;
      item.dataset.status = gate.status;
      text(item, "strong", `${gate.label}: `);
      text(item, "span", messages.gate_status[gate.status] || gate.status, "state-badge");
      for (const attempt of gate.attempts) {
        const line = text(item, "div", `#${attempt.number} ${attempt.message}`, "help");
        line.dataset.status = attempt.status;
        if (attempt.scores && attempt.scores.threshold !== undefined) {
          text(
            line,
            "span",
            ` — ${messages.scores}: ${["live_vs_id", "live_vs_registry", "id_vs_registry"]
              .map((key) => `${messages[key]} ${attempt.scores[key]}`)
              .join(", ")} (${messages.threshold} ${attempt.scores.threshold})`,
          );
        }
      }
      list.appendChild(item);
    }
    const photo = byId("gates-registry-photo");
    photo.hidden = !gates.has_registry_photo || photo.dataset.failed === "1";
    if (gates.has_registry_photo && !photo.src) photo.src = gatesUrl("registry-photo/");

    const actions = byId("gates-actions");
    actions.replaceChildren();
    const running = gates.gates.some((gate) => gate.attempts.some((attempt) => attempt.status === "running"));
    if (running) {
      text(actions, "span", messages.checking, "help");
      return;
    }
    if (gates.state === "identity") {
      button(actions, messages.identity_check, () => act(gatesUrl("identity/"), {}), true);
    } else if (gates.state === "face") {
      button(actions, messages.face_check, faceCheck, true);
    } else if (gates.state === "questions") {
      button(actions, messages.questions_draw, () => act(gatesUrl("questions/"), {}), true);
    } else if (gates.state === "passed") {
      text(actions, "strong", messages.all_passed);
    } else if (gates.state === "failed") {
      text(actions, "strong", messages.service_ended, "errornote");
    }
  }

  function faceCheck() {
    // Gate 3 with liveness (issue 14): the server challenges the customer and captures the live image itself.
    act(gatesUrl("face/"), {});
  }

  function renderOperations() {
    const panel = byId("operation-body");
    panel.replaceChildren();
    const passed = gates && gates.state === "passed";
    byId("operation-panel").hidden = !passed && !operations.length;
    for (const operation of operations) {
      const block = document.createElement("div");
      block.className = "operation";
      block.dataset.state = operation.state;
      text(block, "p", `${config.businesses[operation.business] || operation.business}: ${messages.operation_states[operation.state] || operation.state}${operation.result_label ? ` (${operation.result_label})` : ""}`);
      const changed = Object.keys(operation.after || {});
      if (changed.length) {
        const table = document.createElement("table");
        for (const name of changed) {
          const row = document.createElement("tr");
          ui.cell(row, messages.fields[name] || name);
          ui.cell(row, String(operation.before[name] || "—"));
          ui.cell(row, String(operation.after[name]));
          table.appendChild(row);
        }
        block.appendChild(table);
      }
      if (operation.details && operation.details.application) {
        text(block, "p", ui.format(messages.application, operation.details));
      }
      if (operation.details && operation.details.reported_lost_on) {
        text(block, "p", ui.format(messages.reported_lost_on, { date: operation.details.reported_lost_on }));
      }
      if (operation.state === "awaiting_confirmation") {
        if (operation.confirm_by === "agent") {
          button(block, messages.confirm, () => act(operationUrl(operation.id, "confirm/"), {}), true);
        } else {
          const waiting = { customer_pin: messages.waiting_pin, customer_intent: messages.waiting_intent };
          text(block, "p", waiting[operation.confirm_by] || messages.waiting_confirm, "help");
        }
        if (operation.script) {
          // The agent reads along while the legal representative answers on their phone.
          const list = text(block, "ol", "");
          for (const line of operation.script) text(list, "li", line.text);
        }
        button(block, messages.cancel, () => act(operationUrl(operation.id, "cancel/"), {}));
      }
      if (operation.has_certificate) {
        const link = text(block, "a", messages.certificate);
        link.href = operationUrl(operation.id, "certificate/");
      }
      panel.appendChild(block);
    }
    const open = operations.some((item) => ["awaiting_confirmation", "processing"].includes(item.state));
    const done = operations.some((item) => item.state === "succeeded");
    if (passed && !open && !done) startForm(panel);
  }

  function startForm(panel) {
    const form = document.createElement("form");
    form.id = "operation-start";
    if (config.business === "info_maintenance") {
      for (const name of ["address", "mobile", "occupation", "id_valid_until"]) {
        const label = text(form, "label", `${messages.fields[name]} `);
        const input = document.createElement("input");
        input.name = name;
        input.type = name === "id_valid_until" ? "date" : "text";
        label.appendChild(input);
      }
    }
    button(form, messages.start, () => {
      const changes = {};
      for (const input of form.querySelectorAll("input")) if (input.value.trim()) changes[input.name] = input.value.trim();
      pendingKey = pendingKey || window.crypto.randomUUID();
      act(`${operationsUrl()}start/`, config.business === "info_maintenance" ? { changes } : {}, { "Idempotency-Key": pendingKey }, true);
    }, true);
    panel.appendChild(form);
  }

  async function act(url, body, extraHeaders, isStart) {
    ui.showError("");
    try {
      await ui.api(url, { method: "POST", body, extraHeaders });
      if (isStart) pendingKey = null;
    } catch (error) {
      // A start that failed for sure gets a new key next time; a network
      // failure keeps it, so a retry cannot start the business twice.
      if (isStart && error.code !== "network") pendingKey = null;
      ui.showError(error.message);
    }
    refresh();
  }

  async function refresh(only) {
    if (!callId) return;
    const asked = callId;
    if (!only) lastRefresh = Date.now();
    let fresh;
    try {
      fresh = await Promise.all([
        only === "operation" && gates ? null : ui.api(gatesUrl()),
        only === "gates" ? null : ui.api(operationsUrl()),
      ]);
    } catch (error) {
      if (error.code !== "not_in_call") ui.showError(error.message);
      return;
    }
    if (asked !== callId) return; // the call changed meanwhile: its own refresh is on its way
    if (fresh[0]) gates = fresh[0];
    if (fresh[1]) operations = fresh[1].operations;
    byId("gates-panel").hidden = false;
    renderGates();
    renderOperations();
    busy =
      gates.gates.some((gate) => gate.attempts.some((attempt) => attempt.status === "running")) ||
      operations.some((item) => item.state === "processing");
    schedule();
  }

  // Events drive the panel; the poll is the safety net for events lost while
  // the socket was down (they are not replayed).
  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(tick, busy ? 1500 : 5000);
  }

  function tick() {
    const live = isLive();
    const back = live && !wasLive; // reconnected: what changed meanwhile
    wasLive = live;
    if (!live || back || Date.now() - lastRefresh >= LIVE_REFRESH_MILLISECONDS) refresh();
    else schedule();
  }

  // A photo that cannot load (the call ended and its access with it) is hidden, never shown broken.
  byId("gates-registry-photo").addEventListener("error", (event) => {
    event.target.dataset.failed = "1";
    event.target.hidden = true;
  });

  // call.js announces the call we are in (or its end), again with every snapshot
  // of the socket: the panel is asked for only when the call or its state changed.
  let announced = null;
  window.addEventListener("remotebank:call", (event) => {
    const call = event.detail;
    const next = call && call.state !== "ended" && call.role === "agent" ? call.call : null;
    const key = next ? `${next}:${call.state}` : null;
    if (key === announced) return;
    announced = key;
    if (next !== callId) {
      callId = next;
      gates = null;
      operations = [];
      config.business = call ? call.business : null;
      const photo = byId("gates-registry-photo");
      photo.removeAttribute("src");
      photo.hidden = true;
      delete photo.dataset.failed;
      byId("gates-panel").hidden = !callId;
      byId("operation-panel").hidden = true;
    }
    refresh();
  });
  window.addEventListener("remotebank:agent-event", (event) => {
    const message = event.detail || {};
    if (message.event === "call_gates") refresh("gates");
    else if (message.event === "call_operation") refresh("operation");
  });
})();
