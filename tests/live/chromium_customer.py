"""The customer's own page in headless Chromium, its camera a .y4m clip (runs INSIDE the namespace).

``ip netns exec NS python tests/live/chromium_customer.py STEP.json`` reads one JSON object:

    {"url": the customer's page, "cookie": {"name", "value"}, "camera": a .y4m file,
     "ready": PATH, "seconds": the longest it stays, "shot": a PNG path}

launches Debian's Chromium with Chromium's own fake camera playing the clip
(``--use-file-for-fake-video-capture``), opens the customer's page with the
visit's session cookie (the page rejoins its connected call by itself, as
after a reload, and publishes the camera into the Janus room), writes
``{"local_video": [w, h]}`` to ``ready`` once the page shows its own camera
playing, stays until ``ready + ".stop"`` appears (or ``seconds`` pass),
takes a screenshot and prints a JSON report (what the page said, its
console). Exit status 0 when the page published, 1 otherwise.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
# As tests/e2e/browser_call.py, with the clip as the camera.
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--allow-loopback-in-peer-connection",
]
LOCAL_VIDEO_PLAYING_JS = """
() => {
  const video = document.getElementById("local-video");
  const call = document.getElementById("step-call");
  return Boolean(call && !call.hidden && video && video.videoWidth > 0 && video.currentTime > 0);
}
"""

# Where the page is, for the report when it did not publish.
PAGE_STATE_JS = """
() => ({
  shown: [...document.querySelectorAll("section[id^=step-]")].filter((s) => !s.hidden).map((s) => s.id),
  message: (document.getElementById("message") || {}).textContent,
  call_status: (document.getElementById("call-status") || {}).textContent,
})
"""


def main() -> int:
    step: dict[str, Any] = json.loads(Path(sys.argv[1]).read_text())
    ready = Path(step["ready"])
    stop = Path(str(ready) + ".stop")
    report: dict[str, Any] = {"ok": False, "console": []}
    page_state: Any = None
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=[*FLAGS, f"--use-file-for-fake-video-capture={step['camera']}"],
                headless=True,
            )
            try:
                context = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844})
                context.add_cookies([{**step["cookie"], "url": step["url"]}])
                page = context.new_page()
                page.on("console", lambda message: report["console"].append(f"{message.type}: {message.text}"[:300]))
                page.goto(step["url"])
                page_state = page.evaluate(PAGE_STATE_JS)
                try:
                    page.wait_for_function(LOCAL_VIDEO_PLAYING_JS, timeout=30000)
                finally:
                    page_state = page.evaluate(PAGE_STATE_JS)
                report["local_video"] = page.evaluate(
                    "() => { const v = document.getElementById('local-video'); return [v.videoWidth, v.videoHeight]; }"
                )
                ready.write_text(json.dumps({"local_video": report["local_video"]}))
                deadline = time.monotonic() + float(step["seconds"])
                while not stop.exists() and time.monotonic() < deadline:
                    page.wait_for_timeout(200)
                report["call_status"] = page.text_content("#call-status")
                report["message"] = page.text_content("#message")
                page.screenshot(path=step["shot"], full_page=True)
                report["ok"] = True
            finally:
                browser.close()
    except Exception as exc:
        report["page"] = page_state
        report["error"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        report["traceback"] = traceback.format_exc()[-3000:]
    print(json.dumps(report, ensure_ascii=False))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
