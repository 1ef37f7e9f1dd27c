/* Gate 3 for the agent: the live image the server captured, the ID-card portrait and the registry photo,
 * side by side as thumbnails, with the three distances and the liveness result (issue 14).
 *
 * Follows the call the agent socket names ("remotebank:snapshot") and refreshes on its gate events
 * ("call_gates"); it never polls. Each image is loaded once per attempt: opening a snapshot is audited.
 */
(() => {
  "use strict";
  const box = document.getElementById("face-compare");
  const ui = window.RemoteBankConsole;
  if (!box || !ui) return;
  const images = document.getElementById("face-compare-images");
  const scores = document.getElementById("face-compare-scores");
  let callId = null;
  let shown = null; // the snapshot id whose images are on screen
  // Side by side (CSSOM, allowed by the page's CSP, unlike an inline style attribute).
  Object.assign(images.style, { display: "flex", gap: "8px", flexWrap: "nowrap" });

  function figure(src, caption, name) {
    const item = document.createElement("figure");
    item.dataset.image = name;
    const image = document.createElement("img");
    image.src = src;
    image.alt = caption;
    image.className = "face-thumbnail";
    image.width = 96;
    const text = document.createElement("figcaption");
    text.textContent = caption;
    item.append(image, text);
    return item;
  }

  async function refresh() {
    if (!callId) return;
    let data;
    try {
      data = await ui.api(`${ui.config.urls.gates}calls/${callId}/`);
    } catch (error) {
      return;
    }
    const face = (data.gates || []).find((gate) => gate.gate === "face");
    const attempts = ((face && face.attempts) || []).filter((attempt) => attempt.snapshot);
    const attempt = attempts[attempts.length - 1];
    if (!attempt) {
      box.hidden = true;
      return;
    }
    box.hidden = false;
    if (shown !== attempt.snapshot) {
      shown = attempt.snapshot;
      images.replaceChildren(
        figure(`/api/recordings/snapshots/${attempt.snapshot}/image/`, box.dataset.live, "live"),
        figure(`${ui.config.urls.gates}calls/${callId}/id-portrait/`, box.dataset.portrait, "id_portrait"),
        figure(`${ui.config.urls.gates}calls/${callId}/registry-photo/`, box.dataset.registry, "registry"),
      );
    }
    const s = attempt.scores || {};
    const parts = ["live_vs_id", "live_vs_registry", "id_vs_registry"]
      .filter((key) => s[key] !== undefined)
      .map((key) => `${(ui.messages && ui.messages[key]) || key} ${s[key]}`);
    if (s.threshold !== undefined) parts.push(`(${(ui.messages && ui.messages.threshold) || "threshold"} ${s.threshold})`);
    if (s.liveness) {
      parts.push(s.liveness.passed ? box.dataset.livenessPassed : `${box.dataset.livenessFailed}: ${(s.liveness.reasons || []).join(", ")}`);
    }
    scores.textContent = parts.join(" · ");
  }

  window.addEventListener("remotebank:snapshot", (event) => {
    const call = (event.detail || {}).call || null;
    const next = call && call.call ? call.call : null;
    if (next !== callId) {
      callId = next;
      shown = null;
      images.replaceChildren();
      box.hidden = true;
    }
    refresh();
  });
  window.addEventListener("remotebank:agent-event", (event) => {
    if ((event.detail || {}).event === "call_gates") refresh();
  });
})();
