/* Supervisor live view: figures and waiting customers from GET /api/queueing/figures/ every few seconds;
 * moves and agent states through the queueing API; the agents table and the charts are re-read from this
 * page's own server rendering now and then (the API does not list agents).
 */
(() => {
  "use strict";

  const ui = window.RemoteBankConsole;
  const { config, messages } = ui;
  const byId = (id) => document.getElementById(id);
  const queuesByCode = new Map(config.queues.map((queue) => [queue.code, queue]));
  const withId = (template, id) => template.replace("/0/", `/${encodeURIComponent(id)}/`);

  // Re-drawing a table under an open select would close it mid-choice: wait until the user is done.
  const busy = (container) => container.contains(document.activeElement) && document.activeElement.tagName === "SELECT";

  function renderFigures(queues) {
    const tbody = byId("figures-table").tBodies[0];
    tbody.replaceChildren();
    if (!queues.length) {
      ui.emptyRow(tbody, 7, messages.no_queues);
      return;
    }
    for (const queue of queues) {
      const row = document.createElement("tr");
      ui.cell(row, queue.paused ? `${queue.name} (${messages.paused})` : queue.name);
      ui.cell(row, String(queue.waiting), "number");
      ui.cell(row, String(queue.offered), "number");
      ui.cell(row, ui.clock(queue.longest_wait_seconds), "number");
      ui.cell(row, ui.clock(queue.average_wait_seconds), "number");
      ui.cell(row, ui.percent(queue.service_level), "number");
      ui.cell(row, ui.percent(queue.abandon_rate), "number");
      tbody.appendChild(row);
    }
  }

  function renderAgentCounts(counts) {
    const list = byId("agent-counts");
    list.replaceChildren();
    for (const [state, label] of Object.entries(config.states)) {
      const item = document.createElement("li");
      const number = document.createElement("strong");
      number.textContent = String(counts[state] || 0);
      item.append(`${label}: `, number);
      list.appendChild(item);
    }
  }

  function moveSelect(entry, queue) {
    const select = document.createElement("select");
    select.className = "move-select";
    select.dataset.entry = String(entry.entry);
    select.setAttribute("aria-label", messages.move_to);
    select.disabled = entry.state !== "waiting";
    select.appendChild(new Option(messages.move_to, ""));
    for (const target of config.queues) {
      if (!queue || target.id !== queue.id) {
        select.appendChild(new Option(target.name, String(target.id)));
      }
    }
    return select;
  }

  function renderWaiting(waiting) {
    const tbody = byId("waiting-table").tBodies[0];
    if (busy(tbody)) {
      return;
    }
    tbody.replaceChildren();
    if (!waiting.length) {
      ui.emptyRow(tbody, 7, messages.nobody_waiting);
      return;
    }
    const now = ui.serverNow();
    for (const entry of waiting) {
      const queue = queuesByCode.get(entry.queue);
      const row = document.createElement("tr");
      row.dataset.entry = String(entry.entry);
      ui.cell(row, queue ? queue.name : entry.queue);
      ui.cell(row, config.businesses[entry.business] || entry.business);
      ui.cell(row, config.levels[entry.level] || entry.level);
      ui.cell(row, ui.clock((now - Date.parse(entry.enqueued_at)) / 1000), "number");
      ui.cell(row, config.entry_states[entry.state] || entry.state);
      ui.cell(row, entry.pending_reason);
      ui.cell(row, "").appendChild(moveSelect(entry, queue));
      tbody.appendChild(row);
    }
  }

  async function poll() {
    if (!document.hidden) {
      try {
        const figures = await ui.api(config.urls.figures);
        renderFigures(figures.queues);
        renderAgentCounts(figures.agents);
        renderWaiting(figures.waiting);
        ui.setStatus(ui.format(messages.updated, { time: new Date().toLocaleTimeString() }), "live");
      } catch (error) {
        ui.setStatus(
          ui.format(messages.stale, { message: error.message, seconds: config.refresh_seconds }),
          "stale",
        );
      }
    }
    setTimeout(poll, config.refresh_seconds * 1000);
  }

  // The agents table and the charts are rendered by the server: fetch this page and swap them in.
  async function refreshRendered() {
    if (!document.hidden) {
      try {
        const response = await fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
        if (response.ok && !response.redirected) {
          const page = new DOMParser().parseFromString(await response.text(), "text/html");
          for (const id of ["agents-body", "charts"]) {
            const fresh = page.getElementById(id);
            const current = byId(id);
            if (fresh && current && !busy(current)) {
              current.replaceWith(document.importNode(fresh, true));
            }
          }
        }
      } catch (error) {
        // The figures poll reports connection trouble; this one just tries again later.
      }
    }
    setTimeout(refreshRendered, config.agents_refresh_seconds * 1000);
  }

  document.addEventListener("change", async (event) => {
    const select = event.target;
    if (!(select instanceof HTMLSelectElement) || !select.value) {
      return;
    }
    ui.showError("");
    ui.showNotice("");
    if (select.classList.contains("move-select")) {
      const target = config.queues.find((queue) => String(queue.id) === select.value);
      select.disabled = true;
      try {
        await ui.api(withId(config.urls.move, select.dataset.entry), {
          method: "POST",
          body: { queue: Number(select.value) },
        });
        ui.showNotice(ui.format(messages.moved, { queue: target ? target.name : select.value }));
      } catch (error) {
        ui.showError(error.message);
      }
      select.blur();
      select.value = "";
      select.disabled = false;
    } else if (select.classList.contains("state-select")) {
      const row = select.closest("tr");
      select.disabled = true;
      try {
        const answer = await ui.api(withId(config.urls.staff_state, select.dataset.staff), {
          method: "POST",
          body: { state: select.value },
        });
        const stateCell = row.querySelector(".agent-state");
        stateCell.textContent = config.states[answer.state] || answer.state;
        stateCell.dataset.state = answer.state;
        for (const option of select.options) {
          option.disabled = option.value === answer.state;
        }
        ui.showNotice(
          ui.format(messages.state_set, {
            name: row.querySelector(".agent-name").textContent,
            state: config.states[answer.state] || answer.state,
          }),
        );
      } catch (error) {
        ui.showError(error.message);
      }
      select.blur();
      select.value = "";
      select.disabled = false;
    }
  });

  poll();
  setTimeout(refreshRendered, config.agents_refresh_seconds * 1000);
})();
