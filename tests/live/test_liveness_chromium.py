"""Issue 14's required test: a still image played as the customer's fake camera by Chromium fails liveness.

The real thing end to end, with liveness REQUIRED (the test settings switch
it off for the tests that need a chosen face):

- a .y4m clip made with ffmpeg from a photo of the shared face set (the
  customer's own person, not the registry's photo: only liveness can stop it);
- Debian's headless Chromium, driven by Playwright inside the live Janus'
  namespace (tests/live/chromium_customer.py), plays it with
  ``--use-file-for-fake-video-capture``; it opens the customer's own page
  with the visit's session, and the page rejoins its connected call and
  publishes the camera into the room on the real Janus;
- the page is served by Django's live server from this test process: its
  listening socket is opened inside the namespace (``setns`` around the
  bind only), its request threads stay outside with PostgreSQL and Redis.
  It is WSGI: the page's socket (/ws/visit/, the challenge's prompts) is not
  served here; the prompts are tested in tests/mobile, and a still picture
  cannot act on them anyway;
- the agent starts Gate 3 (``POST …/face/`` without a body): the server draws
  the challenge, captures a burst from the customer's feed (the feed id Janus
  reported for the page's publisher), and the 68-point landmarks decide.

A still picture is a static feed: the attempt is an error the agent may
retry (``liveness:static_feed``), nothing passes, the gate stays at face.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.test.testcases import LiveServerThread
from django.urls import reverse

from apps.audit.models import AuditRecord
from apps.gates.models import AttemptStatus, GateAttempt, GateProgress, GateState
from tests.calls.conftest import JanusHarness
from tests.gates.conftest import KIT, InCall, _pass_identity, _post, person_photos
from tests.live.conftest import CI, ROOT, _open_room_on_live_janus, _replay_janus_events, _use_live_janus
from tests.live.test_liveness_janus import _y4m_from_photo

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM = Path("/usr/bin/chromium")
CUSTOMER_SCRIPT = ROOT / "tests" / "live" / "chromium_customer.py"
# Inside the namespace: only Janus (8188, 7088) and the event collector (18080) listen there.
PAGE_PORT = 8000
_CLONE_NEWNET = 0x40000000


def _require_browser() -> None:
    missing = None
    if not CHROMIUM.exists():
        missing = "Debian's chromium is not installed (apt-get install --no-install-recommends chromium)"
    elif importlib.util.find_spec("playwright") is None:
        missing = "playwright is not installed (requirements/browser.txt)"
    if missing:
        if CI:
            pytest.fail(f"CI=true requires the Chromium liveness test, but {missing}", pytrace=False)
        pytest.skip(missing)


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


class NamespacedLiveServerThread(LiveServerThread):
    """Django's live server listening inside network namespace ``netns``.

    Only the listening socket is made there (a socket keeps the namespace it
    was created in); the thread then returns to the host's namespace, so the
    request threads it starts reach PostgreSQL and Redis on the host's
    127.0.0.1 while the browser in the namespace reaches the page.
    """

    def __init__(self, *args: Any, netns: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.netns = netns

    def _create_server(self, connections_override: Any = None) -> Any:
        host = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{self.netns}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                return super()._create_server(connections_override)
            finally:
                _setns(host)
        finally:
            os.close(target)
            os.close(host)


@contextlib.contextmanager
def page_server_in(netns: str, settings: Any) -> Iterator[str]:
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "127.0.0.1"]
    thread = NamespacedLiveServerThread(
        "127.0.0.1", static_handler=StaticFilesHandler, connections_override={}, port=PAGE_PORT, netns=netns
    )
    thread.daemon = True
    thread.start()
    thread.is_ready.wait(timeout=20)
    if thread.error:
        raise thread.error
    try:
        yield f"http://127.0.0.1:{PAGE_PORT}"
    finally:
        thread.terminate()
        thread.join(timeout=10)


@contextlib.contextmanager
def chromium_customer(
    janus: JanusHarness, in_call: InCall, *, url: str, camera: Path, tmp_path: Path, settings: Any
) -> Iterator[dict[str, Any]]:
    """Chromium as the customer, publishing ``camera`` from the page; yields what it reported so far."""
    ready = tmp_path / "chromium-ready.json"
    cookie = in_call.customer_client.cookies[django_settings.SESSION_COOKIE_NAME].value
    step = {
        "url": url + reverse("mobile:visit"),
        "cookie": {"name": django_settings.SESSION_COOKIE_NAME, "value": cookie},
        "camera": str(camera),
        "ready": str(ready),
        "seconds": 120,
        "shot": str(tmp_path / "customer-page.png"),
    }
    step_file = tmp_path / "chromium-step.json"
    step_file.write_text(json.dumps(step))
    browser = subprocess.Popen(
        ["ip", "netns", "exec", janus.netns, sys.executable, str(CUSTOMER_SCRIPT), str(step_file)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    report: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if browser.poll() is not None or time.monotonic() > deadline:
                browser.kill()
                out, err = browser.communicate(timeout=10)
                raise AssertionError(f"Chromium did not publish the customer's camera: {out}\n{err[-2000:]}")
            time.sleep(0.2)
        report.update(json.loads(ready.read_text()))
        yield report
    finally:
        Path(str(ready) + ".stop").touch()
        try:
            out, err = browser.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            browser.kill()
            out, err = browser.communicate(timeout=10)
        with contextlib.suppress(json.JSONDecodeError):
            report.update(json.loads(out.strip().splitlines()[-1]) if out.strip() else {})
        report["exit"] = browser.returncode
        report["stderr"] = err[-2000:]


def _published_feed(janus: JanusHarness, *, room_id: int, display: str) -> int | None:
    """The feed id Janus reported when the participant with this display published, if it did."""
    for event in janus.events():
        body = event.get("event")
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or data.get("room") != room_id:
            continue
        if data.get("event") == "published" and data.get("display") == display:
            return int(data["id"])
    return None


@pytest.fixture
def liveness_required(settings: Any) -> None:
    settings.GATE_FACE_LIVENESS_REQUIRED = True
    settings.LIVENESS_STEPS = 1
    settings.LIVENESS_STEP_SECONDS = 3.0
    # Fewer frames to measure while the capture decodes: Chromium, Janus and the model share 2 cores.
    settings.LIVENESS_CAPTURE_FPS = 4
    settings.LIVENESS_FIRST_DELAY_SECONDS = (2.5, 3.0)


def test_a_still_photo_played_by_chromium_as_the_customers_camera_fails_liveness(
    live_janus: JanusHarness,
    make_in_call: Any,
    on_commit: Any,
    liveness_required: None,
    settings: Any,
    tmp_path: Path,
) -> None:
    _require_browser()
    assert settings.GATE_FACE_LIVENESS_REQUIRED is True
    # The customer's own face (person KIT, not the registry's photo): the face would match, liveness must stop it.
    camera = _y4m_from_photo(person_photos(KIT)[2], tmp_path / "still.y4m")
    _use_live_janus(live_janus, settings)
    in_call = make_in_call(person=KIT)
    call = in_call.call
    _open_room_on_live_janus(live_janus, call, tmp_path)
    # The page joins only a room the platform calls open (/api/calls/current/ gives credentials then).
    # The service does not end in this test, so the platform never tries to close it from outside.
    type(call).objects.filter(pk=call.pk).update(room_open=True)
    customer = call.participants.get(role="customer")
    fake_feed = customer.janus_feed_id  # what make_in_call's simulated events said

    with (
        page_server_in(live_janus.netns, settings) as url,
        chromium_customer(live_janus, in_call, url=url, camera=camera, tmp_path=tmp_path, settings=settings) as page,
    ):
        # Janus' events about the page's publisher reach the platform as its event handler posts them.
        deadline = time.monotonic() + 15
        feed = None
        while feed is None and time.monotonic() < deadline:
            feed = _published_feed(live_janus, room_id=call.room_id, display=customer.handle)
            time.sleep(0.2)
        assert feed is not None, f"Janus never reported the page publishing: {live_janus.log_tail()}"
        _replay_janus_events(live_janus, room_id=call.room_id, settings=settings)
        customer.refresh_from_db()
        assert customer.janus_feed_id == feed != fake_feed
        _pass_identity(in_call, on_commit)

        response = _post(in_call, "face", on_commit)  # liveness: no snapshot in the body

        assert response.status_code == 202, response.content
    assert page.get("exit") == 0, page
    assert page["local_video"][0] > 0, page

    attempt = GateAttempt.objects.get(progress__visit=in_call.visit, gate="face")
    liveness = attempt.scores["liveness"]
    # Never a pass, and the reason is the still picture: after the encoder's first frames nothing changes.
    assert attempt.status == AttemptStatus.ERROR, (attempt.result_code, attempt.scores)
    assert liveness["passed"] is False and liveness["frames"] >= 5, liveness
    assert "static_feed" in liveness["reasons"], liveness
    assert liveness["sustained_change"] < settings.LIVENESS_STATIC_MAX_DIFFERENCE, liveness
    assert attempt.result_code == f"liveness:{liveness['reasons'][0]}"
    # The burst was the page's feed on the real Janus, and its challenge is in the audit trail.
    challenged = AuditRecord.objects.get(action="gates.liveness.challenged", target_id=str(in_call.visit.pk))
    assert challenged.data["feed"] == feed and challenged.data["challenge"]["steps"]
    # A retry is allowed: the gate waits at face, the service goes on.
    assert GateProgress.objects.get(visit=in_call.visit).state == GateState.FACE
