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

  // The figures API counts presences; staff who never logged in have none and are offline all the same.
  function withOffline(counts) {
    const all = { ...counts };
    const present = Object.entries(all)
      .filter(([state]) => state !== "offline")
      .reduce((sum, [, n]) => sum + (n || 0), 0);
    all.offline = Math.max(0, (config.staff_total || 0) - present);
    return all;
  }

  function renderAgentCounts(apiCounts) {
    const counts = withOffline(apiCounts);
    const list = byId("agent-counts");
    list.replaceChildren();
    for (const [state, label] of Object.entries(config.states)) {
      const item = document.createElement("li");
      item.dataset.state = state;
      const number = document.createElement("strong");
      number.textContent = String(counts[state] || 0);
      item.append(`${label}: `, number);
      list.appendChild(item);
    }
    return counts;
  }

  // KPI tiles: green when the queue's figure meets its target, amber within a quarter of it, red beyond.
  function level(value, target, higherIsBetter) {
    if (value === null || value === undefined || target === null || target === undefined) return "none";
    if (higherIsBetter) {
      if (value >= target) return "ok";
      return value >= target * 0.75 ? "warn" : "bad";
    }
    if (value <= target) return "ok";
    return value <= target * 1.25 ? "warn" : "bad";
  }

  function tile(row, label, text, levelName, targetText) {
    const box = document.createElement("div");
    box.className = "kpi";
    box.dataset.level = levelName;
    const title = document.createElement("div");
    title.className = "kpi-label";
    title.textContent = label;
    const value = document.createElement("div");
    value.className = "kpi-value";
    value.textContent = text;
    box.append(title, value);
    if (targetText) {
      const target = document.createElement("div");
      target.className = "kpi-target";
      target.textContent = ui.format(messages.kpi_target, { target: targetText });
      box.appendChild(target);
    }
    row.appendChild(box);
  }

  function renderTiles(queues, counts) {
    const board = byId("kpi-tiles");
    board.replaceChildren();
    for (const queue of queues) {
      const target = (config.targets || {})[queue.code] || {};
      const row = document.createElement("div");
      row.className = "kpi-row";
      row.dataset.queue = queue.code;
      const name = document.createElement("div");
      name.className = "kpi-name";
      name.textContent = queue.paused ? `${queue.name} (${messages.paused})` : queue.name;
      row.appendChild(name);
      tile(row, messages.kpi_waiting, String(queue.waiting), level(queue.waiting, target.waiting, false), String(target.waiting));
      tile(row, messages.kpi_longest, ui.clock(queue.longest_wait_seconds), level(queue.longest_wait_seconds || 0, target.longest_wait_seconds, false), ui.clock(target.longest_wait_seconds));
      tile(row, messages.kpi_service_level, ui.percent(queue.service_level), level(queue.service_level, target.service_level, true), `≥ ${ui.percent(target.service_level)}`);
      tile(row, messages.kpi_abandon, ui.percent(queue.abandon_rate), level(queue.abandon_rate, target.abandon_rate, false), `≤ ${ui.percent(target.abandon_rate)}`);
      board.appendChild(row);
    }
    const agents = document.createElement("div");
    agents.className = "kpi-row agents";
    const name = document.createElement("div");
    name.className = "kpi-name";
    name.textContent = byId("agent-counts").previousElementSibling ? byId("agent-counts").previousElementSibling.textContent : "";
    agents.appendChild(name);
    for (const [state, label] of Object.entries(config.states)) {
      const n = counts[state] || 0;
      tile(agents, label, String(n), state === "available" && n === 0 ? "warn" : "none");
    }
    board.appendChild(agents);
  }

  // Live timers: how long each agent has been in a call (or ringing, or wrapping up), every second.
  function tickTimers() {
    const now = ui.serverNow();
    for (const cell of document.querySelectorAll(".agent-timer[data-since]")) {
      cell.textContent = ui.clock((now - Date.parse(cell.dataset.since)) / 1000);
    }
  }
  setInterval(tickTimers, 1000);

  // Readable charts: Chart.js (static/vendor/chartjs, no CDN) over today's snapshots; the server's SVG stays
  // as the fallback when the library cannot run.
  const charts = new Map();
  function hourLabel(hour) {
    const h = Math.floor(hour);
    const m = Math.floor((hour - h) * 60);
    return `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}`;
  }
  function drawCharts(points) {
    if (typeof window.Chart !== "function") return;
    for (const canvas of document.querySelectorAll("canvas.waiting-canvas")) {
      const series = (points || {})[canvas.dataset.queue] || [];
      const data = { labels: series.map(([hour]) => hourLabel(hour)), datasets: [{ label: messages.chart_waiting, data: series.map(([, n]) => n), borderColor: "#417690", backgroundColor: "rgba(65,118,144,0.15)", fill: true, pointRadius: 0, tension: 0.2, stepped: false }] };
      const existing = charts.get(canvas.dataset.queue);
      if (existing) {
        existing.data = data;
        existing.update("none");
        continue;
      }
      charts.set(canvas.dataset.queue, new window.Chart(canvas, {
        type: "line",
        data,
        options: {
          responsive: true,
          maintainAspectRatio: false,
          animation: false,
          plugins: { legend: { display: false } },
          scales: {
            x: { ticks: { maxTicksLimit: 8, autoSkip: true, maxRotation: 0 } },
            y: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: messages.chart_waiting } },
          },
        },
      }));
    }
    byId("charts").classList.add("drawn");
  }
  drawCharts(config.chart_points);
  tickTimers();

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
        renderTiles(figures.queues, renderAgentCounts(figures.agents));
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

  // The agents table, the team's live calls and the charts are rendered by the server: fetch this page and swap them in.
  async function refreshRendered() {
    if (!document.hidden) {
      try {
        const response = await fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
        if (response.ok && !response.redirected) {
          const page = new DOMParser().parseFromString(await response.text(), "text/html");
          // The charts keep their canvases: only their numbers come from the fresh page.
          const fresh = page.getElementById("console-config");
          if (fresh) drawCharts(JSON.parse(fresh.textContent).chart_points);
          for (const id of ["agents-body", "live-calls-body"]) {
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
