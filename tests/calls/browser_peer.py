"""The customer's side of a call in headless Chromium: runs INSIDE the customer's namespace.

    ip netns exec NS python tests/calls/browser_peer.py --seconds 40 --stop-file F < credentials.json

Opens tests/calls/browser_customer.html (the shared call library,
static/js/remotebank-call.js, on Debian's janus.js) with the join credentials
read from stdin (the same fields as the call API's ``join``) and Chromium's
fake camera and microphone; stays until ``--seconds`` pass or ``--stop-file``
exists; prints one JSON object: the library's states and errors
(``callLog``), and per second the frames the page decoded of its remote
video (``framesDecoded`` of its subscriber's inbound-rtp).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from urllib.parse import quote

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "tests" / "calls" / "browser_customer.html"
CHROMIUM = "/usr/bin/chromium"
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
    "--allow-file-access-from-files",
]

FRAMES_DECODED = """async () => {
  const feeds = Object.values(window.call.feeds);
  let frames = 0;
  for (const feed of feeds) {
    const pc = feed.plugin && feed.plugin.webrtcStuff && feed.plugin.webrtcStuff.pc;
    if (!pc) continue;
    (await pc.getStats()).forEach((entry) => {
      if (entry.type === "inbound-rtp" && entry.kind === "video") frames += entry.framesDecoded || 0;
    });
  }
  return frames;
}"""


# What a page's subscribers received of the remote video: frames received and
# dropped, freezes, the NACKs and picture-loss requests it sent (a weak-link
# test's summary tells a sender that sent less from a link or decoder that lost it).
RECEIVED_VIDEO = """
async function receivedVideo() {
  const totals = { received: 0, dropped: 0, freezes: 0, frozen_s: 0, nacks: 0, plis: 0 };
  for (const feed of Object.values(window.call.feeds)) {
    const pc = feed.plugin && feed.plugin.webrtcStuff && feed.plugin.webrtcStuff.pc;
    if (!pc) continue;
    (await pc.getStats()).forEach((entry) => {
      if (entry.type !== "inbound-rtp" || entry.kind !== "video") return;
      totals.received += entry.framesReceived || 0;
      totals.dropped += entry.framesDropped || 0;
      totals.freezes += entry.freezeCount || 0;
      totals.frozen_s += entry.totalFreezesDuration || 0;
      totals.nacks += entry.nackCount || 0;
      totals.plis += entry.pliCount || 0;
    });
  }
  return totals;
}
"""


# The width of the remote video being decoded (a simulcast subscriber's layer)
# and, for a publisher, how many simulcast encodings its camera sends.
VIDEO_SHAPE = (
    """async () => {"""
    + RECEIVED_VIDEO
    + """
  let width = 0;
  for (const feed of Object.values(window.call.feeds)) {
    const pc = feed.plugin && feed.plugin.webrtcStuff && feed.plugin.webrtcStuff.pc;
    if (!pc) continue;
    (await pc.getStats()).forEach((entry) => {
      if (entry.type === "inbound-rtp" && entry.kind === "video") width = Math.max(width, entry.frameWidth || 0);
    });
  }
  const layers = [];
  const publisher = window.call.publisher && window.call.publisher.webrtcStuff && window.call.publisher.webrtcStuff.pc;
  if (publisher) {
    (await publisher.getStats()).forEach((entry) => {
      if (entry.type === "outbound-rtp" && entry.kind === "video" && (entry.bytesSent || 0) > 0) {
        layers.push({ rid: entry.rid || null, width: entry.frameWidth || 0, active: entry.active !== false,
                      sent: entry.framesSent || 0, limited: entry.qualityLimitationReason || null,
                      nacks: entry.nackCount || 0, plis: entry.pliCount || 0,
                      mode: entry.scalabilityMode || null });
      }
    });
  }
  return { width: width, layers: layers, received: await receivedVideo() };
}"""
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--stop-file", type=Path, default=None)
    options = parser.parse_args()
    credentials = json.load(sys.stdin)
    report: dict[str, object] = {"frames": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page()
            console: list[str] = []
            page.on("console", lambda message: console.append(f"{message.type}: {message.text}"[:300]))
            started = time.monotonic()
            report["started_at"] = time.time()
            page.goto(f"{PAGE.as_uri()}#{quote(json.dumps(credentials))}")
            frames: list[list[float]] = []
            shapes: list[list[object]] = []
            while time.monotonic() - started < options.seconds:
                if options.stop_file is not None and options.stop_file.exists():
                    break
                try:
                    frames.append([round(time.monotonic() - started, 2), page.evaluate(FRAMES_DECODED)])
                    shapes.append([round(time.monotonic() - started, 2), page.evaluate(VIDEO_SHAPE)])
                except Exception as exc:  # the page may be mid-renegotiation
                    frames.append([round(time.monotonic() - started, 2), -1, str(exc)[:100]])
                page.wait_for_timeout(1000)
            report["frames"] = frames
            report["shapes"] = shapes
            report["log"] = page.evaluate("window.callLog")
            report["console_errors"] = [line for line in console if line.startswith("error")][-20:]
        finally:
            browser.close()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
