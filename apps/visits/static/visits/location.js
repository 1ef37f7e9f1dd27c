// Where the customer is (docs/gates.md, "Location"): asked once per visit,
// before the customer calls an agent, with the reason shown first. The
// browser's own permission prompt is the consent; a refusal or a device
// without location is reported too, and the server's policy decides.
(() => {
  "use strict";
  const TIMEOUT_MS = 15000;

  function position() {
    return new Promise((resolve) => {
      if (!("geolocation" in navigator)) { resolve({ consent: "unavailable" }); return; }
      navigator.geolocation.getCurrentPosition(
        (found) => resolve({
          consent: "granted",
          latitude: found.coords.latitude,
          longitude: found.coords.longitude,
          accuracy: found.coords.accuracy,
        }),
        (error) => resolve({ consent: error.code === error.PERMISSION_DENIED ? "denied" : "unavailable" }),
        { enableHighAccuracy: false, timeout: TIMEOUT_MS, maximumAge: 60000 },
      );
    });
  }

  // Shows the notice; resolves true when the customer agrees to be asked, false when they decline.
  function notice() {
    const box = document.getElementById("location-notice");
    if (!box) return Promise.resolve(true);
    box.hidden = false;
    return new Promise((resolve) => {
      const done = (agreed) => { box.hidden = true; resolve(agreed); };
      document.getElementById("location-allow").onclick = () => done(true);
      document.getElementById("location-deny").onclick = () => done(false);
    });
  }

  let reported = null;

  // ``send(body)`` posts the report (the page's own fetch helper, with CSRF).
  async function report(send) {
    if (reported) return reported;
    const agreed = await notice();
    const body = agreed ? await position() : { consent: "denied" };
    reported = await send(body);
    return reported;
  }

  window.RemoteBankLocation = { report };
})();
