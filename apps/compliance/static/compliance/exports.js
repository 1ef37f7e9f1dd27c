// Progress bars of the audit exports still being generated (compliance workspace).
// Polls each export's status API every two seconds; when one is ready the page
// reloads so that its download link appears. Reads only.
(function () {
  "use strict";
  var POLL_MS = 2000;

  function poll(bar) {
    var url = bar.getAttribute("data-status-url");
    var row = bar.closest("tr");
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) {
        if (!body) { return; }
        if (body.rows_total) { bar.max = body.rows_total; }
        bar.value = body.rows_written;
        row.querySelector(".export-rows").textContent = body.rows_written + " / " + (body.rows_total || "?");
        if (body.state === "done" || body.state === "failed") {
          window.location.reload();
          return;
        }
        window.setTimeout(function () { poll(bar); }, POLL_MS);
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("progress.export-progress[data-status-url]").forEach(function (bar) {
      window.setTimeout(function () { poll(bar); }, POLL_MS);
    });
  });
})();
