/* The agent's (or expert's) side of the video call: join through Janus when
 * a call is ours, invite an expert, transfer, hang up.
 *
 * The agent socket's snapshots say which call we are in (agent.js passes
 * each on as "remotebank:snapshot"); nothing here polls. When a call we have
 * not joined has its room ready, GET /api/calls/<call>/ gives the join
 * credentials, once. A reload gets the same snapshot first, so it rejoins
 * within the grace period (R1.4).
 */
(() => {
  "use strict";

  const ui = window.RemoteBankConsole;
  const { config, messages } = ui;
  const byId = (id) => document.getElementById(id);
  let current = null; // the API's view of our call
  let video = null; // RemoteBankCall
  let roles = {};

  function fillInvitees(people) {
    const invitee = byId("call-invitee");
    const chosen = invitee.value;
    // The first option is "any available expert"; the rest are the colleagues available now.
    while (invitee.options.length > 1) invitee.remove(1);
    for (const person of people || []) {
      const option = document.createElement("option");
      option.value = person.id;
      option.textContent = person.name;
      invitee.appendChild(option);
    }
    if ([...invitee.options].some((option) => option.value === chosen)) invitee.value = chosen;
  }

  // Availability changes all the time: the list is asked again each time the agent opens it.
  async function refreshInvitees() {
    try {
      fillInvitees((await ui.api(config.urls.invitees)).invitees);
    } catch (error) {
      /* keep the list as it was; the invite itself is checked by the server */
    }
  }
  byId("call-invitee").addEventListener("focus", refreshInvitees);
  byId("call-invitee").addEventListener("pointerdown", refreshInvitees);

  function fill() {
    fillInvitees(config.experts);
    const queue = byId("call-queue");
    for (const item of config.queues || []) {
      const option = document.createElement("option");
      option.value = item.id;
      option.textContent = item.name;
      queue.appendChild(option);
    }
  }

  // The service panel (service.js) follows the call we are in.
  function announce(call) {
    window.dispatchEvent(new CustomEvent("remotebank:call", { detail: call }));
  }

  function status(text) {
    byId("call-status").textContent = text;
  }

  function leave(text) {
    if (video) video.leave();
    video = null;
    current = null;
    byId("call-remote").textContent = "";
    byId("call-snapshots").textContent = "";
    byId("call-panel").hidden = true;
    if (text) ui.showNotice(text);
  }

  // The snapshot's call: {call, state, role, room_ready, business}, or null.
  function follow(summary) {
    if (!summary || summary.state === "ended") {
      if (current || video) leave(messages.call_ended);
      announce(null);
      return;
    }
    if (current && current.call === summary.call && (video || !summary.room_ready)) {
      current = { ...current, state: summary.state };
      announce(current);
      return;
    }
    load(summary.call);
  }

  let loading = null;
  async function load(callId) {
    if (loading === callId) return;
    loading = callId;
    let call;
    try {
      call = await ui.api(`${config.urls.calls}${encodeURIComponent(callId)}/`);
    } catch (error) {
      ui.showError(error.message);
      return;
    } finally {
      loading = null;
    }
    show(call);
  }

  function show(call) {
    current = call;
    announce(call);
    roles = Object.fromEntries(call.participants.map((p) => [p.handle, p.role]));
    if (video) video.relabel();
    byId("call-panel").hidden = false;
    byId("call-staff-actions").hidden = call.role !== "agent";
    if (call.state === "ended") {
      leave(messages.call_ended);
      return;
    }
    if (!video && call.join) {
      status(messages.call_connecting);
      video = new window.RemoteBankCall({
        credentials: call.join,
        localVideo: byId("call-local"),
        remoteContainer: byId("call-remote"),
        labelFor: (handle) => messages[roles[handle]] || messages.expert,
        onState: (name, detail) => {
          if (name === "remote_video") status(messages.call_connected);
          if (name === "remote_left") status(messages.call_peer_left);
          if (name === "quality") byId("call-quality").textContent = `${messages.quality}: ${detail.label} (${detail.kbits} kbit/s)`;
        },
        onError: (code, message) => ui.showError(messages[code] || message),
      });
      video.start();
      // After a reload in the middle of a call (rejoin), the snapshots already taken show again.
      showSnapshots().catch(() => {});
    }
  }

  // The call's own answer is shown at once; the snapshot that follows the change confirms it.
  async function act(url, method, body, done) {
    try {
      ui.showError("");
      const answer = await ui.api(url, { method, body });
      if (done) ui.showNotice(done);
      if (answer && answer.call && answer.participants) show(answer);
    } catch (error) {
      ui.showError(error.message);
    }
  }

  const callUrl = (suffix = "") => `${config.urls.calls}${current.call}/${suffix}`;
  const snapshotsUrl = () => byId("call-snapshot").dataset.url.replace("00000000-0000-0000-0000-000000000000", current.call);
  const captureUrl = () =>
    byId("call-snapshot").dataset.captureUrl.replace("00000000-0000-0000-0000-000000000000", current.call);

  // The call's stored snapshots, newest last; <img> elements built without parsing server text as HTML.
  async function showSnapshots() {
    if (!current) return;
    const { snapshots } = await ui.api(snapshotsUrl());
    const list = byId("call-snapshots");
    list.replaceChildren();
    for (const snapshot of snapshots) {
      if (!snapshot.image_url) continue;
      const figure = document.createElement("figure");
      const image = document.createElement("img");
      image.src = snapshot.image_url;
      image.width = snapshot.width;
      image.height = snapshot.height;
      image.alt = byId("call-snapshot").textContent;
      image.dataset.snapshot = snapshot.id;
      image.dataset.sha256 = snapshot.sha256;
      const caption = document.createElement("figcaption");
      caption.textContent = new Date(snapshot.taken_at).toLocaleTimeString();
      figure.append(image, caption);
      list.appendChild(figure);
    }
  }

  byId("call-hangup").addEventListener("click", () => current && act(callUrl("hang-up/"), "POST", {}));
  byId("call-invite").addEventListener("click", () => {
    if (!current) return;
    const chosen = byId("call-invitee").value;
    act(callUrl("invite/"), "POST", chosen ? { staff: Number(chosen) } : {}, messages.invited);
  });
  byId("call-transfer").addEventListener("click", () => {
    if (current) act(callUrl("transfer/"), "POST", { queue: Number(byId("call-queue").value) });
  });
  // Capture the customer's current frame (R5): the SERVER takes it from the call's video (no image is sent).
  byId("call-snapshot").addEventListener("click", async () => {
    const button = byId("call-snapshot");
    if (!current) return;
    ui.showError("");
    button.disabled = true;
    try {
      await ui.api(captureUrl(), { method: "POST", body: {} });
      ui.showNotice(button.dataset.done);
      await showSnapshots();
    } catch (error) {
      ui.showError(error.message);
    } finally {
      button.disabled = false;
    }
  });
  byId("call-mute").addEventListener("click", () => {
    if (video) byId("call-mute").textContent = video.toggleAudio() ? messages.unmute : messages.mute;
  });
  byId("call-camera").addEventListener("click", () => {
    if (video) byId("call-camera").textContent = video.toggleVideo() ? messages.camera_on : messages.camera_off;
  });

  window.addEventListener("remotebank:agent-event", (event) => {
    const message = event.detail || {};
    if (message.event === "call_invite") ui.showNotice(ui.format(messages.invite_from, { name: message.by || "" }));
    // A supervisor joined or left: the call's participants (and so the tiles' captions) changed.
    if (message.event === "call_supervisor_joined" || message.event === "call_supervisor_left") {
      ui.showNotice(message.event === "call_supervisor_joined" ? messages.supervisor_joined : messages.supervisor_left);
      if (current) load(current.call);
    }
  });
  window.addEventListener("remotebank:snapshot", (event) => follow((event.detail || {}).call || null));
  fill();
})();
