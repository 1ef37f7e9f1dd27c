"""A real video call in headless Chromium: customer, agent and expert (issue 5, acceptance (b)).

Runs INSIDE the network namespace made by tests/e2e/conftest.py (docs/janus.md:
Janus gathers no ICE candidates on a loopback interface, so everything that
talks WebRTC — Janus, Daphne, the browsers — runs where 127.0.0.1 sits on the
veth interface v0). Started by tests/e2e/test_browser_call.py as

    ip netns exec NS .venv/bin/python tests/e2e/browser_call.py --work-dir DIR --json-out FILE --shots-dir DIR

with the environment pointing Django (remotebank.settings.local) at a fresh
PostgreSQL database through its Unix socket and at the Janus this script starts.

What it does:

1. ``migrate``, ``seed_demo``, ``collectstatic``, ``janus_config`` (into the
   work folder, ``ice_enforce_list = "v0"``, events posted to the Daphne below);
2. starts one Daphne (in-memory channel layer, eager Celery: matching and the
   room creation happen inside it) and Janus;
3. drives three browser contexts through Playwright (Debian's chromium, fake
   camera and microphone): the agent logs in and goes available; the
   customer (mobile viewport, zh-CN) runs Gate 1 through the page's own form
   with a generated ID card of a seeded customer, joins the queue; the agent
   accepts; both pages must decode the other's video; the agent captures the
   customer's image with the console's button and sees it come back; the agent invites
   expert01, whose console picks the call up and joins; the customer hangs up;
   the agent finds the recording in the back office's list once processed and
   plays it, seeking to the middle (range requests);
4. checks what the server recorded: call ended, room destroyed in Janus, one
   audio and one video recording per participant, headers read by
   ``janus-pp-rec -j``; the snapshot's row, its stored file's hash and the
   decoded image.

Prints one JSON object (also written to --json-out): what was observed, with
timings. Exit status 0 when every step passed, 1 otherwise (the JSON then
says where it stopped). The customer's camera is a looping clip made from the
ID card's portrait (ffmpeg), so the agent sees the card holder's face; agent
and expert use Chromium's default fake camera.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
# VERIFIED-STACK.md, "Real browser".
CHROMIUM_FLAGS = [
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
DEMO_PASSWORD = "remotebank-demo"
BUSINESS = "password_reset"
EXPERT_USERNAME = "expert01"
CARD_ADDRESS = "山东省滨海市市南区香港中路36号"

# Each remote <video> of a page: size, playback position and decoded frame
# count now and a moment later, and when its first frame arrived (stamped by
# FIRST_FRAME_SCRIPT). Decoding = width > 0 and both counters advancing.
VIDEO_STATUS_JS = """
async ([selector, waitMs]) => {
  const read = (v) => ({
    handle: v.dataset.handle || "",
    width: v.videoWidth,
    height: v.videoHeight,
    time: v.currentTime,
    frames: v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality().totalVideoFrames : 0,
    paused: v.paused,
    readyState: v.readyState,
  });
  const videos = [...document.querySelectorAll(selector + " video")];
  const before = videos.map(read);
  await new Promise((resolve) => setTimeout(resolve, waitMs));
  const stamps = window.__rbFirstFrame || (window.__rbFirstFrame = {});
  return videos.map((v, i) => {
    const after = read(v);
    const advancing = after.width > 0 && after.time > before[i].time && after.frames > before[i].frames;
    if (advancing && after.handle && !(after.handle in stamps)) stamps[after.handle] = Date.now();
    return { ...after, advancing, first_frame_at: stamps[after.handle] || null };
  });
}
"""
# The first frame of each remote video: the first of loadeddata/resize/playing with a picture.
# Under load a page was seen decoding a feed whose stamp was missing; VIDEO_STATUS_JS then
# stamps it when it first sees it decode, a later time than the true one, so a limit on
# "first frame within N s" stays a fair check.
FIRST_FRAME_SCRIPT = """
window.__rbFirstFrame = {};
for (const name of ["loadeddata", "resize", "playing"]) {
  document.addEventListener(name, (event) => {
    const v = event.target;
    if (v && v.tagName === "VIDEO" && v.dataset.handle && v.videoWidth > 0 && !(v.dataset.handle in window.__rbFirstFrame)) {
      window.__rbFirstFrame[v.dataset.handle] = Date.now();
    }
  }, true);
}
"""
# The pages poll these before there is a visit or a call; 404 is their "nothing yet".
EXPECTED_404_PATHS = {"/api/visits/current/", "/api/calls/mine/", "/api/queueing/visit/"}
FETCH_JSON_JS = """
async (url) => {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  return { status: response.status, body: await response.json().catch(() => null) };
}
"""

# The agent console during the snapshot step: the customer is the only remote video then.
REMOTE_VIDEO_SIZE_JS = """
() => {
  const video = document.querySelector("#call-remote video");
  return video ? [video.videoWidth, video.videoHeight] : null;
}
"""
SNAPSHOT_SHOWN_JS = """
() => {
  const image = document.querySelector("#call-snapshots img");
  return Boolean(image && image.complete && image.naturalWidth > 0);
}
"""
SNAPSHOT_IN_CONSOLE_JS = """
() => {
  const images = [...document.querySelectorAll("#call-snapshots img")];
  return {
    shown: images.map((image) => ({
      id: image.dataset.snapshot,
      sha256: image.dataset.sha256,
      natural_size: [image.naturalWidth, image.naturalHeight],
    })),
    notice: document.getElementById("console-notice").textContent,
    button_done_text: document.getElementById("call-snapshot").dataset.done,
  };
}
"""

# The recordings list and the player page.
RECORDING_ROWS_JS = """
() => [...document.querySelectorAll("#recordings-table tbody tr[data-recording]")].map((row) => ({
  id: row.dataset.recording,
  state: row.dataset.state,
  service: row.cells[1].textContent.trim(),
}))
"""
VIDEO_READY_JS = """
() => {
  const video = document.getElementById("recording-video");
  return Boolean(video && video.readyState >= 1 && video.duration > 0);
}
"""
SEEK_AND_PLAY_JS = """
async () => {
  const video = document.getElementById("recording-video");
  const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  video.muted = true;
  const duration = video.duration;
  const target = Math.round(duration / 2);
  const seeked = new Promise((resolve) => video.addEventListener("seeked", () => resolve(true), { once: true }));
  video.currentTime = target;
  const didSeek = await Promise.race([seeked, wait(10000).then(() => false)]);
  const afterSeek = video.currentTime;
  await video.play().catch(() => {});
  await wait(1500);
  return {
    duration, target, seeked: didSeek, after_seek: afterSeek, after_play: video.currentTime,
    width: video.videoWidth, height: video.videoHeight, error: video.error ? video.error.code : null,
  };
}
"""


class StepFailed(Exception):
    """A step of the scenario did not happen; the message says what was seen instead."""


@dataclass
class Scenario:
    business: str
    agent_username: str
    agent_name: str
    expert_username: str
    expert_id: int
    customer_number: str
    customer_name: str
    id_number: str
    mobile: str
    account_number: str
    account_status: str
    # The agent's team supervisor (the supervisor scenario).
    supervisor_username: str


class Report:
    """The JSON handed back to pytest, filled in as the scenario goes."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.data: dict[str, Any] = {"ok": False, "step": "start", "timings": {}, "console": {}}

    def step(self, name: str) -> None:
        self.data["step"] = name

    def mark(self, name: str) -> None:
        self.data["timings"][name] = round(time.monotonic() - self.started, 3)

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value


# --- processes ---------------------------------------------------------------------------


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_for_port(port: int, *, timeout: float, process: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StepFailed(f"{what} exited with status {process.returncode}:\n{_tail(log)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            time.sleep(0.05)
        else:
            return
    raise StepFailed(f"{what} did not open port {port} within {timeout} s:\n{_tail(log)}")


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def start_daphne(port: int, log: Path) -> subprocess.Popen[bytes]:
    daphne = Path(sys.executable).parent / "daphne"
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(daphne), "-b", "127.0.0.1", "-p", str(port), "remotebank.asgi:application"],
            cwd=ROOT,
            env=os.environ | {"REMOTEBANK_DB_POOL_SIZE": "20"},  # as scripts/run.sh starts Daphne
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def start_janus(conf: Path, log: Path) -> subprocess.Popen[bytes]:
    # Not `janus -b` (umask 0, world-writable recordings): docs/janus.md.
    return subprocess.Popen(
        ["janus", "-F", str(conf), "-C", str(conf / "janus.jcfg"), "-o", "-N", "-L", str(log)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        umask=0o027,
    )


# --- server-side data (Django ORM; never while Playwright's event loop runs) -------------


def prepare_database(janus_conf: Path) -> None:
    from django.core.management import call_command

    out = io.StringIO()
    call_command("migrate", interactive=False, verbosity=0, stdout=out)
    call_command("seed_demo", password=DEMO_PASSWORD, stdout=out)
    call_command("collectstatic", interactive=False, verbosity=0, stdout=out)
    call_command("janus_config", out=janus_conf, ice_enforce_list="v0", verbosity=0, stdout=out)


def pick_scenario() -> Scenario:
    """A seeded customer with an account this business serves, on no blacklist; an agent with the skill."""
    from apps.businesses.registry import business_get
    from apps.customers.models import Customer
    from apps.customers.selectors import blacklist_hits
    from apps.staff.models import StaffProfile
    from apps.staff.roles import Role

    business = business_get(BUSINESS)
    agent = (
        StaffProfile.objects.filter(role=Role.AGENT, skills__business_code=BUSINESS, supervisor__isnull=False)
        .select_related("user", "supervisor__user")
        .order_by("user__username")
        .first()
    )
    if agent is None:
        raise StepFailed(f"seed_demo made no agent skilled for {BUSINESS}")
    expert = StaffProfile.objects.select_related("user").get(user__username=EXPERT_USERNAME)
    for customer in Customer.objects.order_by("customer_number").prefetch_related("accounts"):
        accounts = list(customer.accounts.all())
        served = [a for a in accounts if a.kind in business.account_kinds and a.status in business.allowed_statuses]
        if not served or len(customer.name) < 2:
            continue
        if list(blacklist_hits(id_number=customer.id_number, account_numbers=[a.number for a in accounts])):
            continue
        return Scenario(
            business=BUSINESS,
            agent_username=agent.user.username,
            agent_name=agent.display_name,
            expert_username=expert.user.username,
            expert_id=expert.pk,
            customer_number=customer.customer_number,
            customer_name=customer.name,
            id_number=customer.id_number,
            mobile=customer.mobile,
            account_number=served[0].number,
            account_status=served[0].status,
            supervisor_username=agent.supervisor.user.username if agent.supervisor else "",
        )
    raise StepFailed(f"no seeded customer has an account {BUSINESS} accepts")


def make_id_card(scenario: Scenario, work: Path) -> tuple[bytes, Path]:
    """The customer's ID card front (real name and number from the seed) and the portrait used on it."""
    from tests.fixtures.cardgen import CardPerson, face_photos, generate_id_card_front

    number = scenario.id_number
    person = CardPerson(
        name=scenario.customer_name,
        sex="M" if int(number[16]) % 2 else "F",
        ethnicity="汉",
        birth_date=date(int(number[6:10]), int(number[10:12]), int(number[12:14])),
        address=CARD_ADDRESS,
        id_number=number,
    )
    portrait = face_photos()[0]
    card = generate_id_card_front(person, portrait)
    (work / "id-card.jpg").write_bytes(card)
    return card, portrait


def make_fake_camera(portrait: Path, work: Path) -> Path | None:
    """A 4 s looping 360×480 clip of the portrait, slowly zooming (Chromium's fake camera reads .y4m)."""
    out = work / "customer-camera.y4m"
    zoom = "zoompan=z='1.05+0.05*sin(2*PI*on/60)':x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)':d=1:s=360x480:fps=15"
    made = subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y", "-loop", "1", "-i", str(portrait), "-t", "4",
            "-vf", f"scale=360:480:force_original_aspect_ratio=increase,crop=360:480,{zoom}",
            "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", str(out),
        ],
        capture_output=True,
        check=False,
        timeout=60,
    )  # fmt: skip
    return out if made.returncode == 0 and out.exists() else None


def server_side_checks(call_public_id: str, report: Report) -> None:
    """After hang-up: the call's record, the room in Janus, the recordings on disk."""
    from apps.calls.integrations.janus import JanusVideoRoom, janus_server
    from apps.calls.models import Call
    from tests.calls.recording_files import closed_recordings

    call = Call.objects.get(public_id=call_public_id)
    participants = list(call.participants.select_related("staff__user").order_by("invited_at"))
    report["call"] = {
        "public_id": call_public_id,
        "state": call.state,
        "end_reason": call.end_reason,
        "janus_server": call.janus_server,
        "room_id": call.room_id,
        "room_open": call.room_open,
        "record_dir": call.record_dir,
        "connected_after_created_s": (
            round((call.connected_at - call.created_at).total_seconds(), 3) if call.connected_at else None
        ),
        "participants": [
            {
                "role": p.role,
                "staff": p.staff.user.username if p.staff else None,
                "feed_id": p.janus_feed_id,
                "joined": p.joined_at is not None,
                "published": p.publishing_since is not None,
                "left": p.left_at is not None,
            }
            for p in participants
        ],
    }
    report["room_exists_after_hangup"] = JanusVideoRoom(janus_server(call.janus_server)).exists(room_id=call.room_id)

    # Janus renames foo.mjr.tmp to foo.mjr when a recording is closed.
    record_dir = Path(call.record_dir)
    files = closed_recordings(record_dir, timeout=15)
    report.mark("recordings_closed")
    role_of_feed = {p.janus_feed_id: p.role for p in participants if p.janus_feed_id}
    recordings = []
    for path in files:
        header: Any = None
        if path.suffix == ".mjr":
            parsed = subprocess.run(["janus-pp-rec", "-j", str(path)], capture_output=True, text=True, check=False)
            try:
                header = json.loads(parsed.stdout)
            except json.JSONDecodeError:
                header = {"error": (parsed.stderr or parsed.stdout)[-300:]}
        # videoroom-<room>-user-<feed>-<µs>-{audio-0,video-1}.mjr
        parts = path.name.split("-")
        feed = int(parts[3]) if len(parts) > 4 and parts[2] == "user" and parts[3].isdigit() else None
        recordings.append(
            {
                "file": path.name,
                "bytes": path.stat().st_size,
                "role": role_of_feed.get(feed),
                "kind": "audio" if "-audio-" in path.name else "video" if "-video-" in path.name else "?",
                "header": header,
            }
        )
    report["recordings"] = recordings
    report["snapshots"] = stored_snapshots(call)

    from apps.audit.models import AuditRecord
    from apps.audit.services import audit_pending_sweep
    from apps.recordings.models import Recording

    # No audit sequencer (nor dispatcher) runs in this one-process setup on
    # PostgreSQL: chain what services queued, as the housekeeping round would.
    audit_pending_sweep()

    recording = Recording.objects.filter(call=call).first()
    report["recording"] = (
        {
            "id": str(recording.pk),
            "state": recording.state,
            "duration": recording.duration_seconds,
            # Each converted track's length: which one set the evidence file's, if that is ever off.
            "tracks": sorted(
                (item.kind, item.participant.role if item.participant else None, item.duration_seconds)
                for item in recording.files.select_related("participant").exclude(duration_seconds=None)
            ),
        }
        if recording
        else None
    )
    report["playback_audit"] = [
        {"action": record.action, "actor": record.actor_label, "kind": record.data.get("kind")}
        for record in AuditRecord.objects.filter(
            action__in=("recordings.file.played", "recordings.file.downloaded")
        ).order_by("sequence")
    ]


def stored_snapshots(call: Any) -> list[dict[str, Any]]:
    """Each snapshot row of the call, and what its stored file really is (hash, decoded image)."""
    import hashlib

    from django.core.files.storage import default_storage
    from PIL import Image

    from apps.recordings.models import Snapshot

    found = []
    for snapshot in Snapshot.objects.filter(call=call).select_related("participant", "taken_by").order_by("taken_at"):
        with default_storage.open(str(snapshot.image.name), "rb") as handle:
            data = handle.read()
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.load()  # decodes every pixel: a truncated or corrupt JPEG raises here
                decoded: dict[str, Any] = {"format": image.format, "size": list(image.size)}
        except Exception as exc:  # reported, and the test says what was wrong
            decoded = {"error": f"{type(exc).__name__}: {exc}"}
        found.append(
            {
                "id": str(snapshot.public_id),
                "sha256_recorded": snapshot.sha256,
                "sha256_of_file": hashlib.sha256(data).hexdigest(),
                "size_recorded": [snapshot.width, snapshot.height],
                "decoded": decoded,
                "participant_role": snapshot.participant.role,
                "taken_by": snapshot.taken_by.username,
            }
        )
    return found


# --- the browsers ----------------------------------------------------------------------


def _videos(page: Any, selector: str) -> list[dict[str, Any]]:
    return list(page.evaluate(VIDEO_STATUS_JS, [selector, 300]))


def wait_decoding(page: Any, selector: str, count: int, *, timeout: float, what: str) -> list[dict[str, Any]]:
    """Until ``count`` remote videos of the page decode (frames and time advancing)."""
    deadline = time.monotonic() + timeout
    videos: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        videos = _videos(page, selector)
        if sum(v["advancing"] for v in videos) >= count:
            return videos
        time.sleep(0.1)
    raise StepFailed(f"{what}: expected {count} decoding remote video(s) within {timeout} s, saw {videos}")


def fetch_json(page: Any, url: str) -> dict[str, Any]:
    return dict(page.evaluate(FETCH_JSON_JS, url))


def visible_section(page: Any) -> str:
    return str(
        page.evaluate(
            "() => [...document.querySelectorAll('main > section')].filter((s) => !s.hidden).map((s) => s.id).join(',')"
        )
    )


def customer_wait(page: Any, selector: str, *, timeout: float, what: str) -> None:
    """Wait for a step of the customer's page; on failure say which step shows and what the page said."""
    try:
        page.wait_for_selector(selector, state="visible", timeout=timeout * 1000)
    except Exception as exc:
        message = page.evaluate("() => document.getElementById('message').textContent")
        refused = page.evaluate("() => document.getElementById('refused-text').textContent")
        raise StepFailed(
            f"customer page, {what}: {selector} not shown within {timeout} s; showing {visible_section(page)!r}, "
            f"message {message!r}, refusal {refused!r}"
        ) from exc


def staff_login(page: Any, username: str) -> None:
    page.goto("/console/login/?next=/console/live/agent/")
    page.fill("#id_username", username)
    page.fill("#id_password", DEMO_PASSWORD)
    page.click("form#login-form [type=submit]")
    page.wait_for_url("**/console/live/agent/", timeout=15000)
    page.wait_for_selector("#live-status[data-status=live]", timeout=15000)


def go_available(page: Any) -> None:
    page.click("button[data-set-state=available]", timeout=10000)
    page.wait_for_selector("#my-state[data-state=available]", timeout=10000)


def watch_console(page: Any, name: str, report: Report) -> None:
    """Keep the page's console errors and warnings, uncaught exceptions and failed requests.

    404 from the endpoints the pages poll before there is anything to show
    ("no visit yet", "not in a call") are the API's normal answers and left out.
    """
    lines: list[str] = report.data["console"].setdefault(name, [])

    def expected(url: str, status: int | None) -> bool:
        return status in (404, None) and urlsplit(url).path in EXPECTED_404_PATHS

    def on_console(message: Any) -> None:
        location = (message.location or {}).get("url", "")
        if message.type not in ("error", "warning") or len(lines) >= 30:
            return
        if message.text.startswith("Failed to load resource") and expected(location, None):
            return
        lines.append(f"{message.type}: {message.text[:300]} ({location})")

    def on_error(error: Any) -> None:
        if len(lines) < 30:
            lines.append(f"pageerror: {str(error)[:300]}")

    def on_response(response: Any) -> None:
        if response.status >= 400 and len(lines) < 30 and not expected(response.url, response.status):
            lines.append(f"http {response.status}: {response.request.method} {response.url}")

    page.on("console", on_console)
    page.on("pageerror", on_error)
    page.on("response", on_response)


def _summary(videos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: v[key] for key in ("width", "height", "frames", "advancing", "paused", "readyState")} for v in videos]


def _first_frame_seconds(videos: list[dict[str, Any]], since_epoch: float) -> float | None:
    stamps = [v["first_frame_at"] for v in videos if v.get("first_frame_at")]
    return round(min(stamps) / 1000 - since_epoch, 3) if stamps else None


def customer_gate1_and_queue(customer: Any, scenario: Scenario, card: bytes, report: Report) -> None:
    """The customer's page: Gate 1 through its own form, the camera check and consents, then the queue."""
    # 2. The customer: Gate 1 through the page's own form, then the queue.
    report.step("gate 1")
    customer.goto("/")
    report["customer_page_lang"] = customer.evaluate("() => document.documentElement.lang")
    customer.select_option("#business", scenario.business)
    customer.fill("#mobile", scenario.mobile)
    customer.click("#start")
    customer_wait(customer, "#step-id", timeout=10, what="after choosing the business")
    customer.set_input_files("#id-photo", files=[{"name": "id-card.jpg", "mimeType": "image/jpeg", "buffer": card}])
    uploaded = time.monotonic()
    customer.click("#id-upload")
    customer_wait(customer, "#step-confirm", timeout=60, what="reading the ID card")
    report["id_card_read_s"] = round(time.monotonic() - uploaded, 3)
    report["id_card_read"] = {
        "name_ok": customer.text_content("#f-name") == scenario.customer_name,
        "number_ok": customer.text_content("#f-number") == scenario.id_number,
    }
    customer.click("#confirm")
    customer_wait(customer, "#step-sms", timeout=10, what="matching the identity")
    # The SMS proof of the mobile number: the code the sandbox gateway
    # "sent" is read off its development page, as a tester would.
    customer.click("#sms-send")
    customer.wait_for_selector("#sms-hint", state="visible", timeout=10000)
    outbox = customer.evaluate("async () => (await fetch('/api/visits/dev/sms/')).text()")
    sms_code = re.search(rf"{scenario.mobile}</td><td>[^<]*?(\d{{6}})", outbox)
    if sms_code is None:
        raise StepFailed("no SMS code for the customer's mobile on the sandbox page")
    customer.fill("#sms-code", sms_code.group(1))
    customer.click("#sms-verify")
    customer_wait(customer, "#step-account", timeout=10, what="proving the mobile number")
    customer.fill("#account-number", scenario.account_number)
    customer.click("#account-submit")
    customer_wait(customer, "#step-done", timeout=10, what="checking the account")
    report.mark("gate1_passed")

    report.step("queue")
    # Before calling: the page's camera and microphone check, then the recording notice agreed to.
    customer.click("#check-start")
    customer.wait_for_selector("#check-result.ok", timeout=10000)
    customer.check("#consent")
    customer.click("#join")
    # Then the location notice: the customer agrees, the browser answers.
    customer.click("#location-allow")
    customer_wait(customer, "#step-queue", timeout=10, what="joining the queue")


def run_browsers(
    scenario: Scenario, card: bytes, camera: Path | None, base_url: str, shots: Path, report: Report
) -> str:
    """The call through three browser contexts; returns the call's public id."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launch = {"executable_path": CHROMIUM, "headless": True, "timeout": 30000}
        staff_browser = pw.chromium.launch(args=CHROMIUM_FLAGS, **launch)
        customer_browser = (
            pw.chromium.launch(args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-video-capture={camera}"], **launch)
            if camera
            else staff_browser
        )
        report.mark("browsers_launched")
        report["chromium"] = staff_browser.version

        def context(browser: Any, name: str, **options: Any) -> Any:
            # The phone is in Qingdao: the customer shares the location when the page asks.
            ctx = browser.new_context(
                base_url=base_url, geolocation={"latitude": 36.0671, "longitude": 120.3826}, **options
            )
            ctx.grant_permissions(["camera", "microphone", "geolocation"], origin=base_url)
            ctx.add_init_script(FIRST_FRAME_SCRIPT)
            ctx.set_default_timeout(20000)
            page = ctx.new_page()
            watch_console(page, name, report)
            return page

        desk = {"viewport": {"width": 1280, "height": 1000}, "locale": "zh-CN", "timezone_id": "Asia/Shanghai"}
        agent = context(staff_browser, "agent", **desk)
        expert = context(staff_browser, "expert", **desk)
        customer = context(
            customer_browser,
            "customer",
            viewport={"width": 390, "height": 844},
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
            locale="zh-CN",
            timezone_id="Asia/Shanghai",
        )

        # 1. Agent and expert log in; only the agent goes available (an
        # available expert could be offered the customer: experts have skills too).
        report.step("agent login")
        staff_login(agent, scenario.agent_username)
        go_available(agent)
        report.step("expert login")
        staff_login(expert, scenario.expert_username)
        report.mark("staff_ready")

        customer_gate1_and_queue(customer, scenario, card, report)
        joined = time.monotonic()
        agent.wait_for_selector("#offer-panel", state="visible", timeout=15000)
        report["offer_rang_after_join_s"] = round(time.monotonic() - joined, 3)
        # What the ringing offer tells the agent (issue #19: only business and level).
        report["offer_texts"] = {
            name: agent.text_content(f"#offer-{name}") for name in ("business", "level", "waited", "countdown")
        }

        # 3. Accept: both sides must decode the other's video.
        report.step("accept")
        accepted_epoch = time.time()
        agent.click("#offer-accept")
        customer_wait(customer, "#step-call", timeout=20, what="entering the call")
        agent.wait_for_selector("#call-panel", state="visible", timeout=20000)
        report.step("two-way video")
        customer_videos = wait_decoding(customer, "#remote-videos", 1, timeout=30, what="customer page")
        agent_videos = wait_decoding(agent, "#call-remote", 1, timeout=30, what="agent page")
        report.mark("two_way_video")
        report["first_frame_s"] = {
            "customer": _first_frame_seconds(customer_videos, accepted_epoch),
            "agent": _first_frame_seconds(agent_videos, accepted_epoch),
        }
        report["two_way"] = {"customer": _summary(customer_videos), "agent": _summary(agent_videos)}
        customer.screenshot(path=str(shots / "customer-call.png"), full_page=True)
        agent.screenshot(path=str(shots / "agent-call.png"), full_page=True)

        # 3b. The agent captures the customer's image (R5) with the console's button; the
        # stored snapshot comes back into the console (an <img> from the snapshot endpoint).
        report.step("snapshot")
        before = agent.evaluate(REMOTE_VIDEO_SIZE_JS)
        agent.click("#call-snapshot")
        agent.wait_for_function(SNAPSHOT_SHOWN_JS, timeout=15000)
        report["snapshot"] = {
            "video_size_before": before,
            "video_size_after": agent.evaluate(REMOTE_VIDEO_SIZE_JS),
            **agent.evaluate(SNAPSHOT_IN_CONSOLE_JS),
        }
        report.mark("snapshot_shown")
        agent.screenshot(path=str(shots / "agent-snapshot.png"), full_page=True)

        # The server learns "connected" from Janus' event feed only.
        current: dict[str, Any] = {}
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            current = fetch_json(customer, "/api/calls/current/")
            if (current.get("body") or {}).get("state") == "connected":
                break
            time.sleep(0.2)
        report["state_during_call"] = (current.get("body") or {}).get("state")
        report["state_connected_after_accept_s"] = round(time.time() - accepted_epoch, 3)
        call_id = str((current.get("body") or {}).get("call"))
        report["page_texts"] = {
            "customer_status": customer.text_content("#call-status"),
            "agent_status": agent.text_content("#call-status"),
        }

        # 4. The expert: available, invited by name, picks the call up (call.js polls /api/calls/mine/).
        report.step("invite expert")
        go_available(expert)
        # The list is refreshed when the agent opens it (only colleagues available now).
        agent.focus("#call-invitee")
        agent.wait_for_selector(f'#call-invitee option[value="{scenario.expert_id}"]', state="attached", timeout=10000)
        agent.select_option("#call-invitee", str(scenario.expert_id))
        invited_epoch = time.time()
        agent.click("#call-invite")
        expert.wait_for_selector("#call-panel", state="visible", timeout=20000)
        report.step("three-way video")
        expert_videos = wait_decoding(expert, "#call-remote", 2, timeout=30, what="expert page")
        agent_videos = wait_decoding(agent, "#call-remote", 2, timeout=30, what="agent page with the expert")
        customer_videos = wait_decoding(customer, "#remote-videos", 2, timeout=30, what="customer page with the expert")
        report.mark("three_way_video")
        report["expert_first_frame_after_invite_s"] = _first_frame_seconds(expert_videos, invited_epoch)
        report["three_way"] = {
            "customer": _summary(customer_videos),
            "agent": _summary(agent_videos),
            "expert": _summary(expert_videos),
        }
        report["agent_notice"] = agent.text_content("#console-notice")
        customer.screenshot(path=str(shots / "customer-three-way.png"), full_page=True)
        agent.screenshot(path=str(shots / "agent-three-way.png"), full_page=True)
        expert.screenshot(path=str(shots / "expert-three-way.png"), full_page=True)
        # A few more seconds of three-way media; the pages' quality line needs two
        # bitrate samples of every feed (janus.js) before it shows a figure.
        pages = {"customer": customer, "agent": agent, "expert": expert}
        texts: dict[str, dict[str, Any]] = {}
        settle_until, give_up = time.monotonic() + 2, time.monotonic() + 8
        while time.monotonic() < give_up:
            texts = {
                name: {"status": page.text_content("#call-status"), "quality": page.text_content("#call-quality")}
                for name, page in pages.items()
            }
            for entry in texts.values():
                found = re.search(r"\((\d+) kbit/s\)", entry["quality"] or "")
                entry["kbit_s"] = int(found.group(1)) if found else None
            if time.monotonic() > settle_until and all(entry["kbit_s"] for entry in texts.values()):
                break
            time.sleep(0.5)
        report["page_texts_before_hangup"] = texts

        # 5. The customer hangs up.
        report.step("hang up")
        hung_up = time.monotonic()
        customer.click("#hangup")
        customer_wait(customer, "#step-ended", timeout=10, what="after hanging up")
        ended = fetch_json(customer, "/api/calls/current/")
        report["after_hangup"] = {
            "status": ended["status"],
            "state": (ended.get("body") or {}).get("state"),
            "end_reason": (ended.get("body") or {}).get("end_reason"),
            "customer_text": customer.text_content("#step-ended"),
        }
        for name, page in (("agent", agent), ("expert", expert)):
            try:
                page.wait_for_selector("#call-panel", state="hidden", timeout=10000)
                report[f"{name}_panel_closed_s"] = round(time.monotonic() - hung_up, 3)
            except Exception:
                report[f"{name}_panel_closed_s"] = None
        report["agent_state_after_call"] = agent.get_attribute("#my-state", "data-state")
        report.mark("hung_up")
        customer.screenshot(path=str(shots / "customer-ended.png"), full_page=True)
        agent.screenshot(path=str(shots / "agent-ended.png"), full_page=True)

        # 6. The agent finds the call's recording in the back office (own services only), waits
        # for its post-processing (the page polls the API) and plays it, seeking to the middle.
        report.step("recordings page")
        file_responses: list[dict[str, Any]] = []

        def on_file_response(response: Any) -> None:
            if "/api/recordings/files/" in response.url:
                headers = response.headers
                file_responses.append(
                    {
                        "status": response.status,
                        "range": response.request.headers.get("range"),
                        "content_range": headers.get("content-range"),
                    }
                )

        agent.on("response", on_file_response)
        agent.goto("/console/live/recordings/")
        # Eager Celery (no broker here): the task that ran at hang-up may have found Janus still
        # closing the files and left the recording pending; the operator's cron job
        # (`manage.py recordings_process_pending`, docs/recordings.md) is what picks it up then.
        # The page polls the API meanwhile and reloads once when the recording is processed.
        done_row = '#recordings-table tr[data-state="done"] a.button'
        give_up = time.monotonic() + 75
        while True:
            pending = subprocess.run(
                [sys.executable, "manage.py", "recordings_process_pending"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            try:
                agent.wait_for_selector(done_row, timeout=5000)
                break
            except Exception as exc:
                if time.monotonic() > give_up:
                    rows = agent.evaluate(RECORDING_ROWS_JS)
                    raise StepFailed(
                        f"recording not processed; rows {rows}; last recordings_process_pending: "
                        f"{pending.returncode} {pending.stdout[-300:]} {pending.stderr[-600:]}"
                    ) from exc
        recordings_page: dict[str, Any] = {"rows": agent.evaluate(RECORDING_ROWS_JS)}
        report["recordings_page"] = recordings_page
        report.mark("recording_listed")
        agent.click('#recordings-table tr[data-state="done"] a.button')
        agent.wait_for_function(VIDEO_READY_JS, timeout=20000)
        recordings_page["playback"] = agent.evaluate(SEEK_AND_PLAY_JS)
        recordings_page["file_responses"] = file_responses
        report.mark("recording_played")
        agent.screenshot(path=str(shots / "agent-player.png"), full_page=True)

        customer_browser.close()
        if customer_browser is not staff_browser:
            staff_browser.close()
    return call_id


# --- the supervisor scenario (issue 21, item 4) -------------------------------------------------

# Every figcaption of a page's remote tiles, in order.
CAPTIONS_JS = "(selector) => [...document.querySelectorAll(selector + ' figcaption')].map((c) => c.textContent)"
# The supervisor page's own camera: a listener must have none.
LOCAL_TRACKS_JS = """
() => {
  const video = document.getElementById("call-local");
  return video && video.srcObject ? video.srcObject.getTracks().map((t) => t.kind) : [];
}
"""


def _in_worker(function: Any, *args: Any) -> Any:
    """Run Django ORM / Janus control calls off Playwright's thread (its event loop makes them refuse)."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    def run() -> Any:
        try:
            return function(*args)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result(timeout=60)


def _session_cookie_for(username: str) -> tuple[str, str]:
    """A session of ``username`` logged in with the second factor verified (as a real OTP login leaves it)."""
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client

    from tests.security.helpers import force_login_verified

    client = Client()
    force_login_verified(client, User.objects.get(username=username))
    return settings.SESSION_COOKIE_NAME, str(client.cookies[settings.SESSION_COOKIE_NAME].value)


def _room_publishers(call_public_id: str) -> dict[str, Any]:
    """Who is in the call's Janus room and whether they publish, by our participant roles."""
    from apps.calls.integrations.janus import JanusVideoRoom, janus_server
    from apps.calls.models import Call

    call = Call.objects.get(public_id=call_public_id)
    role_of = {
        p.handle: f"{p.role}:{p.supervisor_mode}" if p.supervisor_mode else p.role for p in call.participants.all()
    }
    room = JanusVideoRoom(janus_server(call.janus_server)).participants(room_id=call.room_id)
    return {role_of.get(item.display, item.display): item.publisher for item in room}


def _supervisor_records(call_public_id: str) -> dict[str, Any]:
    from apps.audit.models import AuditRecord
    from apps.audit.services import audit_pending_sweep
    from apps.calls.models import Call

    audit_pending_sweep()
    call = Call.objects.get(public_id=call_public_id)
    return {
        "call": {"state": call.state, "end_reason": call.end_reason},
        "seats": [
            {
                "mode": seat.supervisor_mode,
                "staff": seat.staff.user.username if seat.staff else None,
                "joined": seat.joined_at is not None,
                "published": seat.publishing_since is not None,
                "left": seat.left_at is not None,
            }
            for seat in call.participants.filter(role="supervisor").select_related("staff__user").order_by("invited_at")
        ],
        "audit": [
            {"action": record.action, "actor": record.actor_label, "mode": record.data.get("mode")}
            for record in AuditRecord.objects.filter(
                action__startswith="calls.supervisor.", target_id=str(call.pk)
            ).order_by("sequence")
        ],
    }


def run_supervisor_browsers(
    scenario: Scenario, card: bytes, camera: Path | None, base_url: str, shots: Path, report: Report
) -> str:
    """Customer and agent in a call; the team's supervisor listens in, leaves, then joins from the wallboard."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launch = {"executable_path": CHROMIUM, "headless": True, "timeout": 30000}
        staff_browser = pw.chromium.launch(args=CHROMIUM_FLAGS, **launch)
        customer_browser = (
            pw.chromium.launch(args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-video-capture={camera}"], **launch)
            if camera
            else staff_browser
        )

        def context(browser: Any, name: str, **options: Any) -> Any:
            ctx = browser.new_context(
                base_url=base_url, geolocation={"latitude": 36.0671, "longitude": 120.3826}, **options
            )
            ctx.grant_permissions(["camera", "microphone", "geolocation"], origin=base_url)
            ctx.add_init_script(FIRST_FRAME_SCRIPT)
            ctx.set_default_timeout(20000)
            page = ctx.new_page()
            watch_console(page, name, report)
            return page

        desk = {"viewport": {"width": 1280, "height": 1000}, "locale": "zh-CN", "timezone_id": "Asia/Shanghai"}
        agent = context(staff_browser, "agent", **desk)
        supervisor = context(staff_browser, "supervisor", **desk)
        customer = context(
            customer_browser,
            "customer",
            viewport={"width": 390, "height": 844},
            is_mobile=True,
            has_touch=True,
            locale="zh-CN",
            timezone_id="Asia/Shanghai",
        )

        report.step("agent login")
        staff_login(agent, scenario.agent_username)
        go_available(agent)
        # The supervisor's login needs the second factor: the browser carries a verified session.
        report.step("supervisor login")
        cookie_name, cookie = _in_worker(_session_cookie_for, scenario.supervisor_username)
        supervisor.context.add_cookies([{"name": cookie_name, "value": cookie, "url": base_url}])

        customer_gate1_and_queue(customer, scenario, card, report)
        agent.wait_for_selector("#offer-panel", state="visible", timeout=15000)
        report.step("accept")
        agent.click("#offer-accept")
        customer_wait(customer, "#step-call", timeout=20, what="entering the call")
        wait_decoding(customer, "#remote-videos", 1, timeout=30, what="customer page")
        wait_decoding(agent, "#call-remote", 1, timeout=30, what="agent page")
        current: dict[str, Any] = {}
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            current = fetch_json(customer, "/api/calls/current/")
            if (current.get("body") or {}).get("state") == "connected":
                break
            time.sleep(0.2)
        call_id = str((current.get("body") or {}).get("call"))
        report.mark("two_way_video")

        # 1. Listen: from the wallboard's 旁听; the supervisor decodes both, publishes nothing, is shown to nobody.
        report.step("supervisor listens")
        supervisor.goto("/console/live/supervisor/")
        row = f'#live-calls-table tr[data-call="{call_id}"]'
        supervisor.wait_for_selector(row, timeout=10000)
        report["wallboard_row"] = supervisor.text_content(row)
        report["wallboard_buttons"] = [
            supervisor.text_content(f"{row} a.live-call-listen"),
            supervisor.text_content(f"{row} a.live-call-join"),
        ]
        supervisor.click(f"{row} a.live-call-listen")
        supervisor.wait_for_selector("#supervise-mode[data-mode=listen]", timeout=15000)
        listening = wait_decoding(supervisor, "#call-remote", 2, timeout=30, what="supervisor listening")
        time.sleep(2)  # long enough for a (wrongly) published feed to reach the others
        report["listen"] = {
            "supervisor_videos": _summary(listening),
            "supervisor_local_tracks": supervisor.evaluate(LOCAL_TRACKS_JS),
            "supervisor_captions": supervisor.evaluate(CAPTIONS_JS, "#call-remote"),
            "customer_videos": len(_videos(customer, "#remote-videos")),
            "agent_videos": len(_videos(agent, "#call-remote")),
            "customer_roles": sorted(
                p["role"] for p in fetch_json(customer, "/api/calls/current/")["body"]["participants"]
            ),
            "agent_roles": sorted(
                p["role"] for p in fetch_json(agent, f"/api/calls/{call_id}/")["body"]["participants"]
            ),
            "customer_notice_hidden": customer.evaluate("() => document.getElementById('call-supervisor').hidden"),
            "janus": _in_worker(_room_publishers, call_id),
            "mode_text": supervisor.text_content("#supervise-mode"),
        }
        supervisor.screenshot(path=str(shots / "supervisor-listening.png"), full_page=True)

        # 2. Leave, back to the wallboard, and join with 加入: shown to and seen by everyone.
        report.step("supervisor joins")
        supervisor.click("#supervise-leave")
        supervisor.wait_for_url("**/console/live/supervisor/", timeout=10000)
        supervisor.wait_for_selector(row, timeout=10000)
        supervisor.click(f"{row} a.live-call-join")
        supervisor.wait_for_selector("#supervise-mode[data-mode=join]", timeout=15000)
        joined_videos = wait_decoding(supervisor, "#call-remote", 2, timeout=30, what="supervisor joined")
        agent_videos = wait_decoding(agent, "#call-remote", 2, timeout=30, what="agent page with the supervisor")
        customer_videos = wait_decoding(customer, "#remote-videos", 2, timeout=30, what="customer with the supervisor")
        customer.wait_for_selector("#call-supervisor", state="visible", timeout=10000)
        report["join"] = {
            "supervisor_videos": _summary(joined_videos),
            "agent_videos": _summary(agent_videos),
            "customer_videos": _summary(customer_videos),
            "supervisor_local_tracks": supervisor.evaluate(LOCAL_TRACKS_JS),
            "agent_captions": agent.evaluate(CAPTIONS_JS, "#call-remote"),
            "customer_captions": customer.evaluate(CAPTIONS_JS, "#remote-videos"),
            "customer_notice": customer.text_content("#call-supervisor"),
            "agent_notice": agent.text_content("#console-notice"),
            "janus": _in_worker(_room_publishers, call_id),
        }
        supervisor.screenshot(path=str(shots / "supervisor-joined.png"), full_page=True)
        agent.screenshot(path=str(shots / "agent-with-supervisor.png"), full_page=True)
        customer.screenshot(path=str(shots / "customer-with-supervisor.png"), full_page=True)

        # 3. The customer hangs up: the supervisor's page learns the call is over.
        report.step("hang up")
        customer.click("#hangup")
        customer_wait(customer, "#step-ended", timeout=10, what="after hanging up")
        supervisor.wait_for_selector("#live-status[data-status=closed]", timeout=15000)
        report["supervisor_after_hangup"] = supervisor.text_content("#live-status")
        report["records"] = _in_worker(_supervisor_records, call_id)

        customer_browser.close()
        if customer_browser is not staff_browser:
            staff_browser.close()
    return call_id


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--json-out", type=Path, required=True)
    parser.add_argument("--shots-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=8000, help="Daphne's port (events URL must match)")
    parser.add_argument("--janus-port", type=int, default=8188)
    parser.add_argument(
        "--scenario", choices=("call", "supervisor"), default="call", help="supervisor: issue 21's listen and join"
    )
    args = parser.parse_args()

    # pytest stops us with SIGTERM on timeout: unwind so the finally block stops Daphne and Janus.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "remotebank.settings.local")
    report = Report()
    work: Path = args.work_dir
    args.shots_dir.mkdir(parents=True, exist_ok=True)
    daphne = janus = None
    daphne_log, janus_log = work / "daphne.log", work / "janus.log"
    try:
        import django

        django.setup()
        from django.db import connections

        report.step("database")
        prepare_database(work / "janus-conf")
        report.mark("database_ready")
        scenario = pick_scenario()
        report["scenario"] = {
            **asdict(scenario),
            "id_number": scenario.id_number[:6] + "…",
            "mobile": scenario.mobile[:3] + "…",
            "account_number": "…" + scenario.account_number[-4:],
        }
        card, portrait = make_id_card(scenario, work)
        camera = make_fake_camera(portrait, work)
        report["customer_camera"] = "portrait clip" if camera else "chromium default"
        report.mark("inputs_ready")
        connections.close_all()

        report.step("servers")
        daphne = start_daphne(args.port, daphne_log)
        janus = start_janus(work / "janus-conf", janus_log)
        _wait_for_port(args.port, timeout=20, process=daphne, log=daphne_log, what="Daphne")
        _wait_for_port(args.janus_port, timeout=10, process=janus, log=janus_log, what="Janus")
        report.mark("servers_ready")

        base_url = f"http://127.0.0.1:{args.port}"
        if args.scenario == "supervisor":
            run_supervisor_browsers(scenario, card, camera, base_url, args.shots_dir, report)
            report.mark("browsers_closed")
        else:
            call_id = run_browsers(scenario, card, camera, base_url, args.shots_dir, report)
            report.mark("browsers_closed")
            report.step("server-side checks")
            server_side_checks(call_id, report)
        connections.close_all()
        report.step("done")
        report["ok"] = True
    except BaseException as exc:  # report whatever stopped us, SystemExit from SIGTERM included
        report["error"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        report["traceback"] = traceback.format_exc()[-4000:]
    finally:
        _stop(daphne)
        _stop(janus)
        report.mark("total")
        report["logs"] = {"daphne": str(daphne_log), "janus": str(janus_log)}
        if not report.data["ok"]:
            report["log_tails"] = {"daphne": _tail(daphne_log, 40), "janus": _tail(janus_log, 25)}
        text = json.dumps(report.data, ensure_ascii=False, indent=1)
        args.json_out.write_text(text, encoding="utf-8")
        print(text)
    return 0 if report.data["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
