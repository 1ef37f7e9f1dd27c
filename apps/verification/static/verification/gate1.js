// Gate 1 on the customer's page: the SMS proof of the mobile number and the
// account photo read in the background. The page's own script renders the
// visit; it calls RemoteBankGate1.render(visit) and listens for
// "remotebank:visit" events carrying a fresh visit from here.
(() => {
  const api = "/api/visits/";
  const $ = (id) => document.getElementById(id);
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;
  let resendTimer = null;
  let photoTimer = null;

  function publish(visit) { document.dispatchEvent(new CustomEvent("remotebank:visit", { detail: visit })); }
  function hint(message) { $("sms-hint").textContent = message || ""; $("sms-hint").hidden = !message; }

  async function call(path, options = {}) {
    const init = { method: options.method || "POST", credentials: "same-origin", headers: {} };
    if (init.method !== "GET") init.headers["X-CSRFToken"] = csrf();
    if (options.json) { init.body = JSON.stringify(options.json); init.headers["Content-Type"] = "application/json"; }
    if (options.form) init.body = options.form;
    const response = await fetch(api + path, init);
    const body = await response.json().catch(() => ({}));
    if (!response.ok) { const error = new Error(body.message || response.statusText); error.body = body; throw error; }
    return body;
  }

  function countdown(seconds) {
    clearInterval(resendTimer);
    const button = $("sms-send");
    let left = seconds;
    const label = button.dataset.label || (button.dataset.label = button.textContent);
    const tick = () => {
      if (left <= 0) { clearInterval(resendTimer); button.disabled = false; button.textContent = label; return; }
      button.disabled = true; button.textContent = `${label} (${left})`; left -= 1;
    };
    tick(); resendTimer = setInterval(tick, 1000);
  }

  function renderSms(visit) {
    const proof = visit.mobile_proof;
    if (!proof || proof.proven) return false;
    $("sms-mobile").textContent = proof.mobile;
    if (proof.resend_in_seconds > 0) countdown(proof.resend_in_seconds);
    return true;
  }

  function watchAccountPhoto(visit) {
    clearTimeout(photoTimer);
    const photo = visit.account_photo;
    if (!photo) return;
    if (photo.state === "reading") { photoTimer = setTimeout(async () => publish(await call("current/", { method: "GET" })), 800); return; }
    if (photo.state === "read" && $("account-number").dataset.filledFrom !== String(photo.attempts_left)) {
      $("account-number").value = photo.number; $("account-number").dataset.filledFrom = String(photo.attempts_left);
    }
  }

  async function guarded(button, work, say) {
    button.disabled = true;
    try { say(""); publish(await work()); }
    catch (error) {
      say(error.message);
      if (error.body && error.body.details && error.body.details.retry_after) countdown(error.body.details.retry_after);
      if (error.body && error.body.code === "out_of_order") publish(await call("current/", { method: "GET" }));
    } finally { if (!resendTimer || button.id !== "sms-send") button.disabled = false; }
  }

  window.RemoteBankGate1 = {
    // True when the SMS step is what the customer must do now.
    needsSms: (visit) => Boolean(visit.mobile_proof && !visit.mobile_proof.proven),
    render(visit) { renderSms(visit); watchAccountPhoto(visit); },
    bind(say) {
      $("sms-send").onclick = () => guarded($("sms-send"), async () => {
        const visit = await call("current/mobile/code/");
        hint($("sms-hint").dataset.sent); return visit;
      }, say);
      $("sms-verify").onclick = () => guarded($("sms-verify"), () => call("current/mobile/verify/", { json: { code: $("sms-code").value } }), say);
    },
    readAccountPhoto(form, say) {
      return guarded($("account-read"), () => call("current/account/photo/", { form }), say);
    },
  };
})();
