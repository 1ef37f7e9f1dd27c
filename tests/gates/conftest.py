"""A service in a connected video call, ready for gates 2–4.

The call is real: answered through queueing, its room opened on the real
Janus of tests/calls (control plane), connected by the Janus events the
browsers' publishing would send. The customer's ID-card portrait and the live
snapshots are photos of the shared face set, so Gate 3 runs the real model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse
from PIL import Image

from apps.audit.models import AuditRecord
from apps.calls.integrations.janus import JanusServer
from apps.calls.integrations.media_capture import CapturedFrame
from apps.calls.models import Call, CallEndReason, CallState
from apps.calls.services import call_participant_event
from apps.customers.models import Account, AccountKind, AccountStatus, Customer
from apps.customers.services import account_upsert
from apps.gates.integrations import identity_registry
from apps.gates.integrations.face import missing_weights
from apps.gates.integrations.identity_registry import SandboxPbocRegistry, face_people
from apps.gates.models import GateProgress, GateState
from apps.gates.selectors import citizen_on_file
from apps.queueing.models import AgentState, ServiceQueue
from apps.queueing.services.agents import agent_state_set
from apps.queueing.services.configuration import service_queue_upsert
from apps.queueing.services.entries import queue_entry_enqueue
from apps.queueing.services.offers import offer_accept
from apps.recordings.models import Snapshot
from apps.recordings.services.snapshots import snapshot_store_frame
from apps.staff.models import StaffProfile
from apps.staff.roles import Role
from apps.staff.services import agent_skill_set, staff_member_upsert
from apps.visits.authentication import SESSION_KEY
from apps.visits.models import Visit, VisitOutcome
from tests.calls.conftest import janus_control, janus_settings  # noqa: F401 - fixtures re-exported
from tests.conftest import CI, SYSTEM
from tests.factories import visit_with_gate1


def faces_dir() -> Path:
    return Path(django_settings.FACES_DATASET_DIR)


def require_face_weights() -> Path:
    """The installed face weights' folder; without them the calling test skips locally and FAILS under CI=true."""
    home = Path(django_settings.DEEPFACE_HOME)
    missing = missing_weights(home)
    if missing:
        message = f"face weights missing in {home}: {missing} (run manage.py face_weights_install)"
        if CI:
            pytest.fail(message)
        pytest.skip(message)
    return home


def person_photos(index: int) -> list[Path]:
    """The photos of person ``index`` (0-based, name order) of the shared face set."""
    person = face_people(faces_dir())[index]
    return sorted(path for path in person.iterdir() if path.suffix.lower() in (".jpg", ".jpeg", ".png"))


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Callable[..., SandboxPbocRegistry]:
    """Install the sandbox registry with chosen failure rates (no latency unless asked)."""

    def install(**options: Any) -> SandboxPbocRegistry:
        defaults = {"latency_min_ms": 0, "latency_max_ms": 0, "error_rate": 0.0, "timeout_rate": 0.0, "seed": 7}
        sandbox = SandboxPbocRegistry(faces_dir=faces_dir(), lookup=citizen_on_file, **{**defaults, **options})  # type: ignore[arg-type]
        monkeypatch.setattr(identity_registry, "_registry_singleton", sandbox)
        return sandbox

    install()
    return install


@dataclass
class InCall:
    call: Call
    visit: Visit
    agent: StaffProfile
    customer: Customer
    account: Account
    staff_client: Client
    customer_client: Client

    def refresh(self) -> None:
        self.call.refresh_from_db()
        self.visit.refresh_from_db()


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks: Callable[..., Any]) -> Callable[..., Any]:
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def make_in_call(
    janus_settings: JanusServer,  # noqa: F811 - the fixture re-exported above
    question_bank: int,
    make_customer: Callable[..., Customer],
    branch: Any,
    on_commit: Callable[..., Any],
    registry: Callable[..., SandboxPbocRegistry],
) -> Iterator[Callable[..., InCall]]:
    """Build a connected call whose customer is person ``person`` of the face set (registry photo = their 1st photo)."""
    from tests.security.helpers import force_login_verified

    counter = iter(range(1, 100))
    queue: ServiceQueue = service_queue_upsert(
        actor=SYSTEM,
        code="remote",
        name="远程",
        businesses=["activation", "password_reset", "lost_report_release", "info_maintenance", "corporate_intent"],
    )

    def make(
        *,
        person: int = 0,
        portrait_photo: int = 1,
        business: str = "activation",
        account_status: AccountStatus | None = None,
        account_kind: AccountKind = AccountKind.DEBIT_CARD,
        company_name: str = "",
        status_since: date = date(2019, 5, 20),
    ) -> InCall:
        number = next(counter)
        # The sandbox registry gives customer T000000n person n-1 of the face set.
        customers = [make_customer() for _ in range(person + 1)]
        customer = customers[person]
        account = account_upsert(
            actor=SYSTEM,
            number=f"62220200000{number:05d}{person:02d}",
            kind=account_kind,
            status=account_status or (AccountStatus.INACTIVE if business == "activation" else AccountStatus.NORMAL),
            owner=customer,
            opening_branch=branch,
            opened_on=date(2019, 5, 20),
            status_since=status_since,
            company_name=company_name,
        )
        visit = visit_with_gate1(
            business_code=business, mobile=customer.mobile, customer=customer, account=account, state="queue_ready"
        )
        portrait = person_photos(person)[portrait_photo]
        visit.verification.id_card_portrait.save(
            f"portrait-{visit.pk}{portrait.suffix}", ContentFile(portrait.read_bytes())
        )
        agent = staff_member_upsert(
            actor=SYSTEM,
            username=f"gate_agent{number}",
            employee_number=f"GA{number:03d}",
            display_name=f"坐席{number}",
            role=Role.AGENT,
            branch=branch,
        )
        agent_skill_set(actor=SYSTEM, staff=agent, business_code=business, proficiency=4)
        with on_commit():
            agent_state_set(actor=SYSTEM, staff=agent, state=AgentState.AVAILABLE)
        with on_commit():
            entry = queue_entry_enqueue(visit_id=visit.pk, queue=queue)
        with on_commit():
            offer_accept(actor=agent.user, staff=agent, entry_id=entry.pk)
        call = Call.objects.get(entry=entry)
        for feed, participant in enumerate(call.participants.all(), start=1):
            for event in ("joined", "published"):
                with on_commit():
                    call_participant_event(event=event, handle=participant.handle, room_id=call.room_id, feed_id=feed)
        call.refresh_from_db()
        assert call.state == CallState.CONNECTED
        staff_client = Client()
        force_login_verified(staff_client, agent.user)
        customer_client = Client()
        session = customer_client.session
        session[SESSION_KEY] = visit.pk
        session.save()
        return InCall(call, visit, agent, customer, account, staff_client, customer_client)

    yield make


def capture(in_call: InCall, photo: Path | Image.Image) -> Snapshot:
    """The server's capture of 'the customer's frame', here a photo of the face set, stored as the capture stores it.

    The media path itself (Janus, the subscription, decoding) is tested with a
    real publishing peer in tests/live; these tests need a chosen face.
    """
    customer = in_call.call.participants.get(role="customer")
    assert customer.janus_feed_id is not None
    image = photo if isinstance(photo, Image.Image) else Image.open(photo).convert("RGB")
    frame = CapturedFrame(image=image, feed_id=customer.janus_feed_id, captured_at=datetime.now(tz=UTC), index=0)
    return snapshot_store_frame(actor=in_call.agent.user, call_id=in_call.call.pk, frame=frame)


# --- Shared by the gate tests -----------------------------------------------------------

KIT = 2  # the face set's third person, in name order: three photos, all well within the threshold
OBAMA = 4


def _gates(in_call: InCall) -> dict[str, Any]:
    response = in_call.staff_client.get(reverse("gates:call-gates", args=[in_call.call.public_id]))
    assert response.status_code == 200, response.content
    return response.json()


def _post(in_call: InCall, name: str, on_commit: Callable[..., Any], **body: Any) -> Any:
    with on_commit():
        return in_call.staff_client.post(
            reverse(f"gates:call-gate-{name}", args=[in_call.call.public_id]), body, content_type="application/json"
        )


def _pass_identity(in_call: InCall, on_commit: Callable[..., Any]) -> None:
    assert _post(in_call, "identity", on_commit).status_code == 202
    assert GateProgress.objects.get(visit=in_call.visit).state == GateState.FACE


def _pass_face(in_call: InCall, on_commit: Callable[..., Any]) -> None:
    snapshot = capture(in_call, person_photos(KIT)[2])
    assert _post(in_call, "face", on_commit, snapshot=str(snapshot.public_id)).status_code == 202
    assert GateProgress.objects.get(visit=in_call.visit).state == GateState.QUESTIONS


def _answer(in_call: InCall, answers: list[int]) -> Any:
    return in_call.customer_client.post(
        reverse("gates:visit-gate-answers"), {"answers": answers}, content_type="application/json"
    )


def _assert_service_ended(in_call: InCall, gate: str, reason: str) -> None:
    in_call.refresh()
    progress = GateProgress.objects.get(visit=in_call.visit)
    assert progress.state == GateState.FAILED
    assert (progress.failed_gate, progress.failure_reason) == (gate, reason)
    assert in_call.visit.outcome == VisitOutcome.GATE_FAILED
    assert in_call.visit.outcome_reason == f"{gate}:{reason}"
    assert in_call.call.state == CallState.ENDED and in_call.call.end_reason == CallEndReason.GATE_FAILED
    assert AuditRecord.objects.filter(action="gates.gate.failed", target_id=str(in_call.visit.pk)).count() == 1
