/* Shared by the console's live pages: configuration, CSRF-protected fetch, clear errors, formatting. */
(() => {
  "use strict";

  const config = JSON.parse(document.getElementById("console-config").textContent);
  // The CSRF cookie is HttpOnly (settings), so the token comes from the page itself.
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  const messages = config.messages;
  // Server clock minus browser clock, from the Date header of each answer:
  // offer deadlines and waiting times are the server's.
  let clockSkew = 0;

  class ApiError extends Error {
    constructor(code, message, status) {
      super(message);
      this.code = code;
      this.status = status;
    }
  }

  function format(template, values) {
    return String(template).replace(/%\((\w+)\)s/g, (whole, name) => (name in values ? String(values[name]) : whole));
  }

  async function api(url, { method = "GET", body, extraHeaders = {} } = {}) {
    const headers = { Accept: "application/json", ...extraHeaders };
    if (method !== "GET") {
      headers["X-CSRFToken"] = csrfToken;
      headers["Content-Type"] = "application/json";
    }
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new ApiError("network", messages.network, 0);
    }
    const serverDate = Date.parse(response.headers.get("Date") || "");
    if (!Number.isNaN(serverDate)) {
      clockSkew = serverDate - Date.now();
    }
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    if (response.ok) {
      return data;
    }
    if (data && data.code === "not_authenticated") {
      throw new ApiError(data.code, messages.session, response.status);
    }
    // The API's own errors: {"code", "message"}, already in the page's language.
    if (data && typeof data.message === "string") {
      throw new ApiError(data.code || "error", data.message, response.status);
    }
    throw new ApiError("http", format(messages.unexpected, { status: response.status }), response.status);
  }

  function serverNow() {
    return Date.now() + clockSkew;
  }

  function showError(text) {
    const box = document.getElementById("console-error");
    box.textContent = text;
    box.hidden = !text;
  }

  function showNotice(text) {
    const box = document.getElementById("console-notice");
    box.textContent = text;
    box.hidden = !text;
  }

  function setStatus(text, status) {
    const line = document.getElementById("live-status");
    line.textContent = text;
    line.dataset.status = status;
  }

  function clock(seconds) {
    if (seconds === null || seconds === undefined || Number.isNaN(seconds)) {
      return "—";
    }
    const total = Math.max(Math.round(seconds), 0);
    const hours = Math.floor(total / 3600);
    const minutes = Math.floor((total % 3600) / 60);
    const secs = String(total % 60).padStart(2, "0");
    return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${secs}` : `${minutes}:${secs}`;
  }

  function percent(share) {
    return share === null || share === undefined ? "—" : `${Math.round(share * 100)}%`;
  }

  // Table cells built with textContent only: nothing from the server is parsed as HTML.
  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) {
      td.className = className;
    }
    row.appendChild(td);
    return td;
  }

  function emptyRow(tbody, columns, text) {
    const row = document.createElement("tr");
    const td = cell(row, text);
    td.colSpan = columns;
    tbody.appendChild(row);
  }

  window.RemoteBankConsole = { config, messages, api, ApiError, format, serverNow, showError, showNotice, setStatus, clock, percent, cell, emptyRow };
})();
