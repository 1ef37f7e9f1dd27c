"""Service search, the evidence page and its snapshots: filters, who sees what, masking, audit."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from apps.audit.models import AuditRecord
from apps.customers.models import Customer
from apps.queueing.services.configuration import service_queue_upsert
from apps.recordings.models import Snapshot
from apps.staff.models import StaffProfile
from apps.staff.roles import Role
from apps.staff.services import staff_member_upsert
from tests.compliance.servicegen import Seeded, seed_service
from tests.conftest import SYSTEM
from tests.security.helpers import force_login_verified

pytestmark = pytest.mark.django_db

SERVICES = "/console/live/compliance/services/"
SEARCH_API = "/api/compliance/services/"


def at(day: int, hour: int = 10) -> datetime:
    return timezone.make_aware(datetime(2026, 3, day, hour, 0))


@pytest.fixture
def world(make_customer: Callable[..., Customer], make_staff: Callable[..., User], branch: Any) -> dict[str, Any]:
    """Two agents (A in supervisor S's team, B in nobody's) and five services of different shapes."""
    supervisor = make_staff(Role.SUPERVISOR, "sup")
    supervisor_profile = StaffProfile.objects.get(user=supervisor)
    agent_a = staff_member_upsert(
        actor=SYSTEM,
        username="agent_a",
        employee_number="E-A",
        display_name="甲",
        role=Role.AGENT,
        branch=branch,
        supervisor=supervisor_profile,
        initial_password="correct horse battery",
    )
    agent_b = staff_member_upsert(
        actor=SYSTEM,
        username="agent_b",
        employee_number="E-B",
        display_name="乙",
        role=Role.AGENT,
        branch=branch,
        initial_password="correct horse battery",
    )
    queue = service_queue_upsert(actor=SYSTEM, code="q1", name="队列", businesses=["activation", "password_reset"])
    alice = make_customer(name="王小明")
    bob = make_customer(name="李四")
    services = {
        # Completed by A on the 2nd, all gates passed.
        "done_a": seed_service(
            customer=alice,
            started=at(2),
            outcome="completed",
            queue=queue,
            agent=agent_a,
            wait_seconds=10,
            handling_seconds=300,
            gates={
                "state": "passed",
                "identity_passed_at": at(2),
                "face_passed_at": at(2),
                "questions_passed_at": at(2),
            },
            attempts=[
                {"gate": "identity", "number": 1, "status": "passed", "result_code": "match"},
                {
                    "gate": "face",
                    "number": 1,
                    "status": "passed",
                    "result_code": "match",
                    "scores": {"distance": 0.31, "threshold": 0.55},
                },
            ],
            read_name="王小明",
        ),
        # Face gate failed with B on the 3rd, password reset.
        "face_b": seed_service(
            customer=bob,
            started=at(3),
            business="password_reset",
            outcome="gate_failed",
            outcome_reason="face_mismatch",
            queue=queue,
            agent=agent_b,
            wait_seconds=40,
            handling_seconds=120,
            gates={"state": "failed", "identity_passed_at": at(3), "failed_gate": "face", "failure_reason": "mismatch"},
        ),
        # Refused at Gate 1 by blacklist screening on the 3rd.
        "blacklisted": seed_service(
            customer=bob, started=at(3, 11), state="refused", refusal_code="blacklisted", outcome="refused"
        ),
        # Refused at Gate 1 for another reason on the 4th.
        "no_match": seed_service(
            customer=None, started=at(4), state="refused", refusal_code="no_matching_customer", outcome="refused"
        ),
        # Still open, A, on the 4th.
        "open_a": seed_service(customer=alice, started=at(4, 12), queue=queue, agent=agent_a, wait_seconds=5),
    }
    return {
        "services": services,
        "supervisor": supervisor,
        "agent_a": agent_a.user,
        "agent_b": agent_b.user,
        "alice": alice,
        "bob": bob,
    }


def names(world: dict[str, Any], visits: list[Any]) -> set[str]:
    by_pk = {seeded.visit.pk: name for name, seeded in world["services"].items()}
    return {by_pk[visit["id"] if isinstance(visit, dict) else visit.pk] for visit in visits}


def api_search(client: Client, world: dict[str, Any], **query: Any) -> set[str]:
    response = client.get(SEARCH_API, query)
    assert response.status_code == 200, response.content
    by_public = {str(seeded.visit.public_id): name for name, seeded in world["services"].items()}
    body = response.json()
    assert body["count"] == len(body["results"])
    return {by_public[item["id"]] for item in body["results"]}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, {"done_a", "face_b", "blacklisted", "no_match", "open_a"}),
        ({"from": "2026-03-03", "to": "2026-03-03"}, {"face_b", "blacklisted"}),
        ({"from": "2026-03-04"}, {"no_match", "open_a"}),
        ({"agent": "E-A"}, {"done_a", "open_a"}),
        ({"agent": "E-B"}, {"face_b"}),
        ({"business": "password_reset"}, {"face_b"}),
        ({"customer": "T0000001"}, {"done_a", "open_a"}),
        ({"outcome": "completed"}, {"done_a"}),
        ({"outcome": "refused"}, {"blacklisted", "no_match"}),
        ({"outcome": "open"}, {"open_a"}),
        ({"gate_failed": "gate1"}, {"blacklisted", "no_match"}),
        ({"gate_failed": "face"}, {"face_b"}),
        ({"gate_failed": "identity"}, set()),
        ({"gate_failed": "any"}, {"blacklisted", "no_match", "face_b"}),
        ({"blacklist_hits": "1"}, {"blacklisted"}),
        ({"agent": "E-A", "from": "2026-03-04"}, {"open_a"}),
    ],
)
def test_each_service_filter_selects_the_right_services(
    client: Client, compliance_officer: User, world: dict[str, Any], query: dict[str, str], expected: set[str]
) -> None:
    force_login_verified(client, compliance_officer)
    assert api_search(client, world, **query) == expected
    html = client.get(SERVICES, query).content.decode()
    assert html.count('class="service-row"') == len(expected)


def test_a_wrong_filter_is_explained(client: Client, compliance_officer: User, world: dict[str, Any]) -> None:
    force_login_verified(client, compliance_officer)
    response = client.get(SEARCH_API, {"gate_failed": "gate9"}, headers={"accept-language": "en"})
    assert response.status_code == 400
    assert response.json()["message"] == "Unknown gate: gate9."
    html = client.get(SERVICES, {"outcome": "nope"}, headers={"accept-language": "en"}).content.decode()
    assert "Unknown outcome: nope." in html


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("agent_a", {"done_a", "open_a"}),
        ("agent_b", {"face_b"}),
        ("supervisor", {"done_a", "open_a"}),  # A is in the supervisor's team, B is not
        ("compliance", {"done_a", "face_b", "blacklisted", "no_match", "open_a"}),
        ("administrator", set()),
    ],
)
def test_each_role_finds_only_the_services_it_may_see(
    client: Client,
    world: dict[str, Any],
    compliance_officer: User,
    administrator: User,
    who: str,
    expected: set[str],
) -> None:
    user = {"compliance": compliance_officer, "administrator": administrator}.get(who) or world[who]
    force_login_verified(client, user)
    assert api_search(client, world) == expected


def evidence_url(seeded: Seeded, **query: str) -> str:
    url = reverse("compliance-workspace:service-evidence", args=[seeded.visit.public_id])
    return url + ("?" + "&".join(f"{key}={value}" for key, value in query.items()) if query else "")


@pytest.mark.parametrize(
    ("who", "service", "status"),
    [
        ("agent_a", "done_a", 200),
        ("agent_a", "face_b", 403),
        ("agent_b", "done_a", 403),
        ("supervisor", "done_a", 200),
        ("supervisor", "face_b", 403),
        ("compliance", "face_b", 200),
        ("compliance", "no_match", 200),
        ("administrator", "done_a", 403),
    ],
)
def test_the_evidence_page_is_open_only_to_who_may_see_the_service(
    client: Client,
    world: dict[str, Any],
    compliance_officer: User,
    administrator: User,
    who: str,
    service: str,
    status: int,
) -> None:
    user = {"compliance": compliance_officer, "administrator": administrator}.get(who) or world[who]
    force_login_verified(client, user)
    response = client.get(evidence_url(world["services"][service]))
    assert response.status_code == status
    viewed = AuditRecord.objects.filter(action="compliance.evidence.viewed", actor_label=user.username)
    assert viewed.count() == (1 if status == 200 else 0)


def test_an_unknown_service_is_404(client: Client, compliance_officer: User) -> None:
    force_login_verified(client, compliance_officer)
    url = reverse("compliance-workspace:service-evidence", args=[uuid.uuid4()])
    assert client.get(url).status_code == 404


def test_the_evidence_page_shows_the_record_gates_and_an_empty_operations_section_masked(
    client: Client, world: dict[str, Any], compliance_officer: User
) -> None:
    force_login_verified(client, compliance_officer)
    seeded = world["services"]["done_a"]
    html = client.get(evidence_url(seeded), headers={"accept-language": "en"}).content.decode()

    assert "王**" in html
    assert "王小明" not in html
    assert world["alice"].customer_number in html
    assert "E-A" in html  # the agent in the call
    assert html.count('class="gate-attempt"') == 2
    assert "Distance: 0.31" in html and "Threshold: 0.55" in html  # labelled, not raw keys
    assert 'id="operations"' in html and "No business operation recorded for this service." in html
    assert 'id="unmask-link"' in html
    record = AuditRecord.objects.get(action="compliance.evidence.viewed")
    assert record.data == {"service": str(seeded.visit.public_id), "unmasked": False}
    assert not AuditRecord.objects.filter(action="compliance.personal_data.unmasked").exists()


def test_unmasking_on_the_evidence_page_needs_the_permission_and_is_audited(
    client: Client, world: dict[str, Any], compliance_officer: User
) -> None:
    seeded = world["services"]["done_a"]
    force_login_verified(client, compliance_officer)
    html = client.get(evidence_url(seeded, unmask="1")).content.decode()
    assert "王小明" in html
    assert world["alice"].mobile in html
    unmasked = AuditRecord.objects.get(action="compliance.personal_data.unmasked")
    assert unmasked.actor_label == compliance_officer.username
    assert unmasked.data["purpose"] == "service_evidence"

    # A supervisor sees the service but may not unmask it.
    supervisor_client = force_login_verified(Client(), world["supervisor"])
    assert supervisor_client.get(evidence_url(seeded, unmask="1")).status_code == 403
    page = supervisor_client.get(evidence_url(seeded)).content.decode()
    assert "王**" in page and 'id="unmask-link"' not in page
    assert AuditRecord.objects.filter(action="compliance.personal_data.unmasked").count() == 1


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 10, 10)).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_snapshot_thumbnails_are_served_only_to_who_may_see_the_service_and_audited(
    client: Client, world: dict[str, Any], compliance_officer: User, settings: Any, tmp_path: Any
) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    seeded = world["services"]["done_a"]
    assert seeded.call is not None
    image = _jpeg()
    snapshot = Snapshot(
        public_id=uuid.uuid4(),
        call=seeded.call,
        participant=seeded.call.participants.get(role="customer"),
        taken_by=world["agent_a"],
        sha256="0" * 64,
        width=32,
        height=24,
        taken_at=at(2, 11),
    )
    snapshot.image.save("snap.jpg", ContentFile(image), save=False)
    snapshot.save()
    url = reverse("compliance-workspace:snapshot-image", args=[snapshot.public_id])

    force_login_verified(client, compliance_officer)
    html = client.get(evidence_url(seeded)).content.decode()
    assert url in html
    response = client.get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == image
    assert AuditRecord.objects.filter(action="compliance.snapshot.viewed", target_id=str(snapshot.pk)).count() == 1

    force_login_verified(client, world["agent_b"])
    assert client.get(url).status_code == 403
    assert AuditRecord.objects.filter(action="compliance.snapshot.viewed").count() == 1


def test_the_service_pages_need_a_staff_login(client: Client, world: dict[str, Any]) -> None:
    response = client.get(SERVICES)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert client.get(SEARCH_API).status_code == 403
