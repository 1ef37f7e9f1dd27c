/* In-page camera for the customer's card photos (ID card, bank card, passbook barcode).
 *
 * The back camera is shown with a card-shaped outline to fit the card in; a
 * shot is taken onto a canvas and its sharpness measured as the variance of
 * the Laplacian of a grey, downscaled copy (a blurred photo has few edges,
 * so a low variance). The page says "sharp" or "blurred, hold still and take
 * it again"; the customer may still send it, the server's checks decide. A
 * browser without a camera (or one the customer refused) keeps the file
 * input, which stays on the page as the fallback.
 *
 * window.RemoteBankCardCamera.attach(container, options) returns
 *   { photo(): Blob|null, reset() }.
 * window.RemoteBankCardCamera.sharpness(canvas) is the measure itself.
 */
(() => {
  "use strict";

  // Below this variance (grey levels², on a 320-px-wide copy) a card's text is
  // too soft to read; measured on sharp and Gaussian-blurred card photos.
  const SHARP_ENOUGH = 60;
  const MEASURE_WIDTH = 320;

  function sharpness(source) {
    const scale = Math.min(1, MEASURE_WIDTH / source.width);
    const width = Math.max(3, Math.round(source.width * scale));
    const height = Math.max(3, Math.round(source.height * scale));
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(source, 0, 0, width, height);
    const pixels = context.getImageData(0, 0, width, height).data;
    const grey = new Float32Array(width * height);
    for (let i = 0; i < grey.length; i++) {
      grey[i] = 0.299 * pixels[i * 4] + 0.587 * pixels[i * 4 + 1] + 0.114 * pixels[i * 4 + 2];
    }
    let sum = 0;
    let sumSquares = 0;
    let count = 0;
    for (let y = 1; y < height - 1; y++) {
      for (let x = 1; x < width - 1; x++) {
        const i = y * width + x;
        const laplacian = grey[i - width] + grey[i + width] + grey[i - 1] + grey[i + 1] - 4 * grey[i];
        sum += laplacian;
        sumSquares += laplacian * laplacian;
        count += 1;
      }
    }
    const mean = sum / count;
    return sumSquares / count - mean * mean;
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text) node.textContent = text;
    return node;
  }

  function attach(container, options) {
    const texts = options.texts;
    let stream = null;
    let blob = null;

    const open = element("button", "secondary camera-open", texts.open);
    open.type = "button";
    const frame = element("div", "camera-frame");
    frame.hidden = true;
    const video = element("video");
    video.autoplay = true;
    video.muted = true;
    video.playsInline = true;
    video.setAttribute("playsinline", "");
    const outline = element("div", "card-outline");
    outline.setAttribute("aria-hidden", "true");
    frame.append(video, outline);
    const shoot = element("button", "camera-shoot", texts.shoot);
    shoot.type = "button";
    shoot.hidden = true;
    const preview = element("img", "camera-preview");
    preview.hidden = true;
    preview.alt = texts.preview;
    const hint = element("p", "camera-hint");
    hint.hidden = true;
    hint.setAttribute("aria-live", "polite");
    container.append(open, frame, shoot, preview, hint);

    function stop() {
      if (stream) stream.getTracks().forEach((track) => track.stop());
      stream = null;
      frame.hidden = true;
      shoot.hidden = true;
    }

    open.addEventListener("click", async () => {
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        hint.hidden = false;
        hint.className = "camera-hint error";
        hint.textContent = texts.unavailable;
        return;
      }
      try {
        stream = await navigator.mediaDevices.getUserMedia({
          video: { facingMode: { ideal: "environment" }, width: { ideal: 1920 }, height: { ideal: 1080 } },
          audio: false,
        });
      } catch (error) {
        hint.hidden = false;
        hint.className = "camera-hint error";
        hint.textContent = texts.unavailable;
        return;
      }
      video.srcObject = stream;
      frame.hidden = false;
      shoot.hidden = false;
      preview.hidden = true;
      hint.hidden = false;
      hint.className = "camera-hint";
      hint.textContent = texts.fit;
    });

    shoot.addEventListener("click", () => {
      if (!video.videoWidth) return;
      const canvas = document.createElement("canvas");
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      canvas.getContext("2d").drawImage(video, 0, 0);
      const score = sharpness(canvas);
      stop();
      canvas.toBlob(
        (taken) => {
          blob = taken;
          preview.src = URL.createObjectURL(taken);
          preview.hidden = false;
          if (options.onPhoto) options.onPhoto(taken);
        },
        "image/jpeg",
        0.92,
      );
      hint.hidden = false;
      const sharp = score >= SHARP_ENOUGH;
      hint.className = sharp ? "camera-hint ok" : "camera-hint error";
      hint.textContent = sharp ? texts.sharp : texts.blurred;
      hint.dataset.sharpness = String(Math.round(score));
      open.textContent = texts.again;
    });

    return {
      photo: () => blob,
      reset: () => {
        stop();
        blob = null;
        preview.hidden = true;
        hint.hidden = true;
        open.textContent = texts.open;
      },
    };
  }

  window.RemoteBankCardCamera = { attach, sharpness, SHARP_ENOUGH };
})();
