"""Issue #19, acceptance: what a customer, an agent and a supervisor see, in headless Chromium.

Each walk runs against Django's live test server (HTTP only: the queue's
WebSocket and the video call are walked in test_browser_call.py) at a phone
and a 1440×900 viewport, in zh-CN, and saves a screenshot of every screen
under the test's own output folder. On every page: no English word or raw
code among the visible texts, and no Content-Security-Policy violation.

Under CI=true Chromium and playwright are required (the test fails without
them); elsewhere it skips.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable, Iterator
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from apps.audit.actions import AuditAction
from apps.audit.models import AuditRecord
from apps.customers.models import Customer
from apps.queueing.models import AgentPresence, AgentState
from apps.visits.authentication import SESSION_KEY
from apps.visits.models import Visit, VisitOutcome
from apps.visits.services import visit_close
from tests.compliance.test_services import world  # noqa: F401 (the compliance tests' services, a fixture)
from tests.conftest import SYSTEM
from tests.factories import visit_with_gate1
from tests.security.helpers import force_login_verified

# Playwright's sync API keeps an event loop in this thread; the ORM calls between its steps are plain sync code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM = Path("/usr/bin/chromium")
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
]
VIEWPORTS = {
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
    "desk": {"viewport": {"width": 1440, "height": 900}},
}
# Latin words a Chinese page may show: the language switch's own name, and initialisms.
ALLOWED_WORDS = {
    "English",
    "Control",
    "Command",
    "Mac",
    "ID",
    "PIN",
    "SHA",
    "PDF",
    "XLSX",
    "CSV",
    "TOTP",
    "IP",
    "UTC",
    "SVG",
}
CSP_WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));
"""
# The visible text nodes of the page (not inside <select>, <script>, <style>, hidden elements).
VISIBLE_TEXTS = """
(selector) => {
  const out = [];
  for (const root of document.querySelectorAll(selector || "body")) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const parent = node.parentElement;
    if (!parent || !node.textContent.trim()) continue;
    // The user's own name in the header is data, not a label.
    // translate="no" marks data (names, employee numbers, hashes), not labels.
    if (parent.closest("select, script, style, noscript, [hidden], #user-tools strong, [translate=no]")) continue;
    if (!parent.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true })) continue;
    out.push(node.textContent.trim());
  }
  }
  return out;
}
"""


def _require_browser() -> None:
    problem = None
    if not CHROMIUM.exists():
        problem = "Debian's chromium is not installed"
    elif importlib.util.find_spec("playwright") is None:
        problem = "the playwright package is not installed"
    if problem:
        if CI:
            pytest.fail(f"CI=true requires the screens' browser walk, but {problem}", pytrace=False)
        pytest.skip(problem)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Path:
    """The test's output folder for screenshots (kept after the run for people to look at)."""
    folder = Path(settings.BASE_DIR) / "var" / "test-output" / "screens" / request.node.originalname
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Screen:
    """One browser page with its CSP and console watch."""

    def __init__(self, browser: Any, base_url: str, viewport: str, shots: Path) -> None:
        self.context = browser.new_context(
            base_url=base_url, locale="zh-CN", timezone_id="Asia/Shanghai", **VIEWPORTS[viewport]
        )
        self.context.grant_permissions(["camera", "microphone"], origin=base_url)
        self.context.add_init_script(CSP_WATCH)
        self.page = self.context.new_page()
        self.page.set_default_timeout(10000)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        self.page.on(
            "console",
            lambda message: (
                self.errors.append(message.text)
                if "Content Security Policy" in message.text or "Refused to" in message.text
                else None
            ),
        )
        self.viewport = viewport
        self.shots = shots
        self.base_url = base_url

    def login(self, user: User) -> None:
        """The browser carries the session of a user logged in (and second-factor verified) by Django's client."""
        client = Client()
        force_login_verified(client, user)
        self._cookie(client.cookies[settings.SESSION_COOKIE_NAME].value)

    def bind_visit(self, visit: Visit) -> None:
        """The browser's session is the one the customer's visit is bound to."""
        store = import_module(settings.SESSION_ENGINE).SessionStore()
        store[SESSION_KEY] = visit.pk
        store.save()
        self._cookie(str(store.session_key))

    def _cookie(self, value: str) -> None:
        self.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": value, "url": self.base_url}])

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.shots / f"{name}-{self.viewport}.png"), full_page=True)

    def check_language(self, selector: str = "body") -> None:
        """No English word or snake_case code among the visible texts (of ``selector``); no CSP violation so far."""
        # Service numbers are UUIDs: data, not words.
        uuid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
        texts = [uuid.sub("", text) for text in self.page.evaluate(VISIBLE_TEXTS, selector)]
        english = [
            text
            for text in texts
            if any(word not in ALLOWED_WORDS for word in re.findall(r"[A-Za-z]{2,}", text))
            or re.search(r"\b[a-z]+_[a-z_]+\b", text)
        ]
        assert english == [], english
        assert self.page.evaluate("window.__csp") == []
        assert self.errors == []

    def close(self) -> None:
        if self.context is not None:
            self.context.close()
            self.context = None


@pytest.fixture
def screen(browser: Any, live_server: Any, shots: Path) -> Iterator[Callable[[str], Screen]]:
    opened: list[Screen] = []

    def make(viewport: str) -> Screen:
        opened.append(Screen(browser, live_server.url, viewport, shots))
        return opened[-1]

    yield make
    for item in opened:
        item.close()


@pytest.fixture
def ready_visit(make_customer: Callable[..., Customer]) -> Visit:
    customer = make_customer()
    # Gate 1 passed, the recording notice not yet agreed to: the page asks for it before the queue.
    return visit_with_gate1(
        business_code="activation", mobile=customer.mobile, customer=customer, recording_consent=False
    )


pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.parametrize("viewport", ["phone", "desk"])]


def test_the_customer_start_page_is_chinese(screen: Callable[[str], Screen], viewport: str) -> None:
    s = screen(viewport)
    s.page.goto("/")
    s.page.wait_for_selector("#step-start", state="visible")
    assert s.page.title() == "远程银行视频柜台"
    s.shot("customer-start")
    s.check_language()


def test_before_the_call_the_customer_checks_the_devices_and_agrees_to_the_recording(
    screen: Callable[[str], Screen], viewport: str, ready_visit: Visit
) -> None:
    s = screen(viewport)
    s.bind_visit(ready_visit)
    s.page.goto("/")
    s.page.wait_for_selector("#step-done", state="visible")
    page = s.page
    assert "请稍候，坐席即将为您服务" not in page.inner_text("main")
    assert page.is_disabled("#join")
    page.check("#consent")
    assert page.is_disabled("#join"), "the devices are not checked yet"
    page.click("#check-start")
    page.wait_for_selector("#check-result.ok")
    assert page.is_enabled("#join")
    s.shot("customer-precheck")
    s.check_language()
    # Agreeing is recorded by the server when the customer calls. The queue itself (its join and
    # WebSocket) is walked in test_browser_call.py: here its API answers nothing, so the test ends clean.
    page.route("**/api/queueing/**", lambda route: route.fulfill(status=200, json={}))
    with page.expect_response(lambda r: "/api/mobile/consent/" in r.url) as answer:
        page.click("#join")
    assert answer.value.status == 201
    consent = AuditRecord.objects.get(action=AuditAction.VISIT_RECORDING_CONSENTED, target_id=str(ready_visit.pk))
    assert consent.data["camera"] is True and consent.data["microphone"] is True
    s.close()


def test_no_wait_estimate_when_no_agent_for_the_business_is_online(
    screen: Callable[[str], Screen], viewport: str, ready_visit: Visit
) -> None:
    assert not AgentPresence.objects.exclude(state=AgentState.OFFLINE).exists()
    s = screen(viewport)
    s.bind_visit(ready_visit)
    s.page.goto("/")
    s.page.wait_for_selector("#step-done", state="visible")
    # What the page does on a queue position message, without the socket: the wait check.
    s.page.evaluate(
        "() => { document.getElementById('step-done').hidden = true; document.getElementById('step-queue').hidden = false; }"
    )
    s.page.wait_for_selector("#q-no-agent", state="visible", timeout=15000)
    assert "分钟" not in s.page.inner_text("#q-wait")
    assert "暂无" in s.page.inner_text("#q-wait")


@pytest.mark.parametrize(
    ("outcome", "reason", "title", "words"),
    [
        (VisitOutcome.GATE_FAILED, "face:mismatch", "未能完成", "人脸识别不通过"),
        (VisitOutcome.ABANDONED, "customer_left", "通话已结束", "重新开始"),
        (VisitOutcome.COMPLETED, "pin_reset", "办理完成", "已办理完成"),
    ],
)
def test_a_reload_after_the_end_shows_how_it_ended_with_the_service_number(
    screen: Callable[[str], Screen],
    viewport: str,
    ready_visit: Visit,
    outcome: VisitOutcome,
    reason: str,
    title: str,
    words: str,
) -> None:
    visit_close(visit_id=ready_visit.pk, actor=SYSTEM, outcome=outcome, reason=reason)
    s = screen(viewport)
    s.bind_visit(ready_visit)
    s.page.goto("/")
    s.page.wait_for_selector("#ended-summary", state="visible")
    assert title in s.page.inner_text("#ended-title")
    assert words in s.page.inner_text("#ended-message")
    assert s.page.inner_text("#summary-number") == str(ready_visit.public_id)
    assert s.page.is_hidden("#step-done"), "a closed visit must not offer to call an agent"
    assert "通话已结束，谢谢" not in s.page.inner_text("main")
    s.shot(f"customer-ended-{outcome}")
    s.check_language()


def test_the_card_camera_shows_an_outline_and_rates_sharpness(
    screen: Callable[[str], Screen], viewport: str, make_customer: Callable[..., Customer]
) -> None:
    visit = visit_with_gate1(state="business_chosen", business_code="activation", mobile="13800000000")
    s = screen(viewport)
    s.bind_visit(visit)
    s.page.goto("/")
    s.page.wait_for_selector("#step-id", state="visible")
    s.page.click("#id-camera .camera-open")
    s.page.wait_for_selector("#id-camera .card-outline", state="visible")
    s.page.wait_for_function("() => document.querySelector('#id-camera video').videoWidth > 0")
    s.shot("customer-card-camera")
    s.page.click("#id-camera .camera-shoot")
    s.page.wait_for_selector("#id-camera .camera-preview", state="visible")
    assert s.page.is_visible("#id-camera .camera-hint")
    s.check_language()
    # The measure: printed text is sharp, the same text blurred is not.
    sharp, blurred = s.page.evaluate(
        """() => {
          const draw = (blur) => {
            const c = document.createElement("canvas"); c.width = 640; c.height = 400;
            const g = c.getContext("2d"); g.fillStyle = "#fff"; g.fillRect(0, 0, 640, 400);
            g.filter = blur ? "blur(6px)" : "none"; g.fillStyle = "#000"; g.font = "28px sans-serif";
            for (let y = 40; y < 400; y += 40) g.fillText("居民身份证 110101199001011237", 20, y);
            return RemoteBankCardCamera.sharpness(c);
          };
          return [draw(false), draw(true)];
        }"""
    )
    threshold = s.page.evaluate("RemoteBankCardCamera.SHARP_ENOUGH")
    assert sharp > threshold > blurred, (sharp, blurred)


def test_the_back_office_switches_language_without_inline_handlers(
    screen: Callable[[str], Screen], viewport: str, administrator: User
) -> None:
    s = screen(viewport)
    s.login(administrator)
    s.page.goto("/console/")
    assert "远程银行视频柜台" in s.page.inner_text("#site-name")
    s.shot("back-office-zh")
    s.check_language()
    # The audit trail's cells are its data (actors, targets); its column titles and filters are labels.
    s.page.goto("/console/audit/auditrecord/")
    s.check_language("thead, #changelist-filter h2, #changelist-filter h3, .paginator")
    s.page.goto(f"/console/auth/user/{administrator.pk}/change/")
    s.page.wait_for_load_state("load")
    s.check_language("#content-main form > div > fieldset:not(:first-child), .selector, .submit-row")
    s.shot("back-office-user")
    with s.page.expect_navigation():
        s.page.select_option("select[name=language]", "en")
    assert "RemoteBank video counter" in s.page.inner_text("#site-name")
    s.shot("back-office-en")
    assert s.page.evaluate("window.__csp") == [] and s.errors == []


@pytest.fixture
def wallboard_day(make_staff: Callable[..., User], make_customer: Callable[..., Customer]) -> dict[str, Any]:
    """A queue, five agents in every kind of state (two never logged in), two services answered today."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.queueing.models import EntryState, QueueEntry, QueueSnapshot
    from apps.queueing.services.configuration import service_queue_upsert
    from apps.staff.roles import Role

    now = timezone.now()
    queue = service_queue_upsert(
        actor=SYSTEM, code="activation", name="激活队列", businesses=["activation"], target_waiting=3
    )
    users = [make_staff(Role.AGENT, f"100{n}") for n in range(5)]
    busy = AgentPresence.objects.create(
        staff=users[0].staff_profile, state=AgentState.BUSY, state_since=now - timedelta(minutes=3)
    )
    AgentPresence.objects.create(staff=users[1].staff_profile, state=AgentState.AVAILABLE, state_since=now)
    AgentPresence.objects.create(staff=users[2].staff_profile, state=AgentState.OFFLINE, state_since=now)
    customer = make_customer()
    start = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    for minutes in (30, 10):
        # Answered 30 and 10 minutes ago, or proportionally less just after
        # local midnight, so both are today's (CI once ran at 00:20 in
        # Shanghai and the wallboard rightly counted one).
        answered = now - min(timedelta(minutes=minutes), (now - start) * minutes / 40)
        visit = visit_with_gate1(business_code="activation", mobile=customer.mobile, customer=customer)
        QueueEntry.objects.create(
            visit=visit,
            customer=customer,
            queue=queue,
            business_code="activation",
            level=customer.level,
            state=EntryState.SERVED,
            enqueued_at=answered - timedelta(minutes=1),
            priority_key=0,
            agent=busy,
            answered_at=answered,
            ended_at=min(now, answered + timedelta(minutes=5)),
        )
    for step in range(0, 60, 5):
        QueueSnapshot.objects.create(
            queue=queue,
            taken_at=min(now, start + timedelta(minutes=step * 10)),
            waiting=step % 7,
            longest_wait_seconds=step * 3.0,
            agents_available=1,
            agents_busy=1,
        ) if not QueueSnapshot.objects.filter(
            queue=queue, taken_at=min(now, start + timedelta(minutes=step * 10))
        ).exists() else None
    return {"queue": queue, "busy": busy}


def test_the_wallboard_counts_what_the_database_holds(
    screen: Callable[[str], Screen], viewport: str, supervisor: User, wallboard_day: dict[str, Any]
) -> None:
    from apps.staff.models import StaffProfile
    from apps.staff.roles import Role

    s = screen(viewport)
    s.login(supervisor)
    s.page.goto("/console/live/supervisor/")
    s.page.wait_for_selector("#kpi-tiles .kpi-row[data-queue=activation] .kpi")
    staff = StaffProfile.objects.filter(role__in=(Role.AGENT, Role.EXPERT), user__is_active=True)
    offline = staff.count() - AgentPresence.objects.exclude(state=AgentState.OFFLINE).count()
    assert offline == 3
    assert s.page.inner_text("#agent-counts li[data-state=offline] strong") == str(offline)
    busy_row = s.page.locator(f"#agents-body tr[data-staff='{wallboard_day['busy'].staff_id}']")
    assert busy_row.locator("td.services-today").inner_text() == "2"  # services answered today
    timer = busy_row.locator(".agent-timer")
    first = timer.inner_text()
    assert re.fullmatch(r"3:\d\d", first), first
    # The call timer ticks (every second; a loaded machine may be late by a tick or two).
    timer.page.wait_for_function(
        "([row, first]) => document.querySelector(`#agents-body tr[data-staff='${row}'] .agent-timer`).textContent !== first",
        arg=[wallboard_day["busy"].staff_id, first],
        timeout=5000,
    )
    tiles = s.page.locator("#kpi-tiles .kpi-row[data-queue=activation] .kpi")
    assert tiles.count() == 4
    assert all(tiles.nth(i).get_attribute("data-level") in ("ok", "warn", "bad", "none") for i in range(4))
    s.page.wait_for_selector("#charts.drawn canvas.waiting-canvas")
    s.shot("wallboard")
    s.check_language()


def test_the_agent_workspace_fits_one_screen_with_a_thumbnail_registry_photo(
    screen: Callable[[str], Screen], viewport: str, make_staff: Callable[..., User]
) -> None:
    from apps.staff.roles import Role

    if viewport == "phone":
        pytest.skip("the agent works at a desk: 1440×900 only")
    agent = make_staff(Role.AGENT, "0042")  # its employee number T-0042 shows in the header
    s = screen(viewport)
    s.login(agent)
    s.page.goto("/console/live/agent/")
    s.page.wait_for_selector("#state-panel")
    # The in-call panels, shown as a call shows them, with a registry photo as large as the registry sends.
    boxes = s.page.evaluate(
        """() => {
          for (const id of ["call-panel", "service-panel", "gates-panel", "operation-panel"]) document.getElementById(id).hidden = false;
          const c = document.createElement("canvas"); c.width = 1024; c.height = 1280;
          const photo = document.getElementById("gates-registry-photo");
          photo.src = c.toDataURL("image/png"); photo.hidden = false;
          document.getElementById("call-remote").innerHTML = '<figure><video width="640" height="480"></video></figure>';
          return new Promise((resolve) => requestAnimationFrame(() => resolve(
            Object.fromEntries(["call-panel", "gates-panel", "operation-panel", "service-end", "gates-registry-photo"].map(
              (id) => [id, document.getElementById(id).getBoundingClientRect().toJSON()]))
          )));
        }"""
    )
    s.shot("agent-in-call-layout")
    for name in ("call-panel", "gates-panel", "operation-panel", "service-end"):
        assert boxes[name]["bottom"] <= 900 and boxes[name]["right"] <= 1440, (name, boxes[name])
    photo = boxes["gates-registry-photo"]
    assert photo["width"] <= 128 and photo["height"] <= 160, photo
    assert s.page.is_hidden("#call-hangup") or s.page.is_hidden("#service-end"), "one way to end, not two"
    s.check_language()
    # After the call the photo's address answers no more: the page hides it rather than show a broken image.
    s.page.evaluate(
        """() => { const photo = document.getElementById("gates-registry-photo");
                   photo.src = "/api/gates/calls/00000000-0000-0000-0000-000000000000/registry-photo/"; }"""
    )
    s.page.wait_for_selector("#gates-registry-photo", state="hidden")
    assert s.page.get_attribute("#gates-registry-photo", "data-failed") == "1"


def test_the_compliance_officer_finds_a_failed_service_and_compares_its_faces(
    screen: Callable[[str], Screen],
    viewport: str,
    compliance_officer: User,
    world: dict[str, Any],  # noqa: F811 (the fixture imported above)
    settings: Any,
    tmp_path: Path,
) -> None:
    """Workspace → service search by selects → the evidence of a failed face check, its three faces shown."""
    from django.urls import reverse

    from tests.compliance.test_services import _face_attempt_with_three_images

    settings.MEDIA_ROOT = str(tmp_path)
    _face_attempt_with_three_images(world)
    failed = world["services"]["face_b"].visit

    s = screen(viewport)
    s.login(compliance_officer)
    s.page.goto(reverse("compliance-workspace:workspace"))
    s.shot("workspace")
    s.check_language()

    s.page.goto(reverse("compliance-workspace:services"))
    s.page.select_option("select[name=outcome]", "gate_failed")
    s.page.select_option("select[name=gate_failed]", "face")
    s.page.locator("form input[type=submit]").click()
    s.page.wait_for_selector("#service-results")
    rows = s.page.locator("#service-results tr.service-row")
    expected = Visit.objects.filter(outcome=VisitOutcome.GATE_FAILED, gate_progress__failed_gate="face").count()
    assert expected == 1 and rows.count() == expected
    s.shot("services")
    s.check_language()

    rows.first.locator("a").click()
    s.page.wait_for_url(f"**{reverse('compliance-workspace:service-evidence', args=[failed.public_id])}*")
    faces = s.page.locator("tr.face-images img")
    assert faces.count() == 3
    faces.last.scroll_into_view_if_needed()
    # Polled on a timer, not on animation frames (Playwright's default): with the machine's
    # cores busy, headless Chromium drew no further frame once the page was still, and the
    # check never ran again although all three images had loaded (CI at 4041504).
    s.page.wait_for_function(
        "() => [...document.querySelectorAll('tr.face-images img')].every((img) => img.complete && img.naturalWidth > 0)",
        polling=100,
    )
    assert "不是同一人" in s.page.inner_text("body")
    s.shot("evidence")
    s.check_language()
