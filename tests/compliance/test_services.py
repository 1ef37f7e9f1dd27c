"""Service search, the evidence page and its snapshots: filters, who sees what, masking, audit."""

from __future__ import annotations

import io
import re
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


def test_a_finished_service_is_not_listed_as_ready_to_queue(
    client: Client, compliance_officer: User, world: dict[str, Any]
) -> None:
    """Issue #19: completed services showed Gate 1's step "可以排队" as their state."""
    force_login_verified(client, compliance_officer)
    html = client.get(SERVICES, {"outcome": "completed"}, headers={"accept-language": "zh-hans"}).content.decode()
    row = html.split('class="service-row"', 1)[1].split("</tr>", 1)[0]
    assert "已通过" in row and "可以排队" not in row
    still_open = client.get(SERVICES, {"outcome": "open"}, headers={"accept-language": "zh-hans"}).content.decode()
    assert "可以排队" in still_open.split('class="service-row"', 1)[1].split("</tr>", 1)[0]


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


def _face_attempt_with_three_images(world: dict[str, Any]) -> tuple[Any, dict[str, bytes]]:
    """Service face_b's failed Gate 3 attempt, stored as the gates store it: live frame, sealed portrait, registry photo."""
    from apps.gates.models import GateAttempt, GateProgress

    seeded = world["services"]["face_b"]
    assert seeded.call is not None
    images = {
        kind: _jpeg_of(colour)
        for kind, colour in (("live", (200, 0, 0)), ("id_portrait", (0, 200, 0)), ("registry", (0, 0, 200)))
    }
    snapshot = Snapshot(
        public_id=uuid.uuid4(),
        call=seeded.call,
        participant=seeded.call.participants.get(role="customer"),
        taken_by=world["agent_b"],
        sha256="1" * 64,
        width=32,
        height=24,
        taken_at=at(3, 11),
        chosen_for_face=True,
    )
    snapshot.image.save("live.jpg", ContentFile(images["live"]), save=False)
    snapshot.save()
    verification = seeded.visit.verification
    verification.id_card_portrait.save("portrait.jpg", ContentFile(images["id_portrait"]), save=False)
    verification.id_card_portrait_sha256 = "2" * 64
    verification.save()
    progress = GateProgress.objects.get(visit=seeded.visit)
    progress.registry_photo.save("registry.jpg", ContentFile(images["registry"]), save=True)
    attempt = GateAttempt.objects.create(
        progress=progress,
        call=seeded.call,
        gate="face",
        number=1,
        status="failed",
        result_code="below_threshold",
        snapshot=snapshot,
        started_at=at(3, 11),
        finished_at=at(3, 11),
        scores={
            "live_vs_id": 0.7123,
            "live_vs_registry": 0.6811,
            "id_vs_registry": 0.3012,
            "threshold": 0.5,
            "thresholds": {"live_vs_id": 0.5, "live_vs_registry": 0.5, "id_vs_registry": 0.45},
            "liveness": {"passed": True, "reasons": []},
        },
    )
    return attempt, images


def _jpeg_of(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_a_failed_face_attempt_shows_its_three_images_and_readable_scores_to_compliance_audited(
    client: Client, world: dict[str, Any], compliance_officer: User, settings: Any, tmp_path: Any
) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    attempt, images = _face_attempt_with_three_images(world)
    seeded = world["services"]["face_b"]
    force_login_verified(client, compliance_officer)

    html = client.get(evidence_url(seeded), headers={"accept-language": "en"}).content.decode()
    urls = {
        kind: reverse("compliance-workspace:face-image", args=[seeded.visit.public_id, attempt.pk, kind])
        for kind in images
    }
    assert html.count('class="face-images"') == 1
    for url in urls.values():
        assert f'src="{url}"' in html
    assert "Live image vs ID card photo" in html
    assert "distance 0.712 (threshold 0.500): not the same person" in html
    assert "distance 0.301 (threshold 0.450): same person" in html
    assert "live_vs_id" not in html and "thresholds" not in html  # no raw key reaches the page
    zh = client.get(evidence_url(seeded), headers={"accept-language": "zh-hans"}).content.decode()
    assert "身份证人像" in zh and "不是同一人" in zh

    for kind, url in urls.items():
        response = client.get(url)
        assert response.status_code == 200
        assert response["Cache-Control"] == "private, no-store"
        assert b"".join(response.streaming_content) == images[kind]  # the sealed portrait comes back decrypted
    viewed = AuditRecord.objects.filter(
        action="compliance.personal_data.unmasked", data__purpose="gate3_face_image"
    ).order_by("sequence")
    assert [record.data["image"] for record in viewed] == ["live", "id_portrait", "registry"]
    assert all(record.actor_label == compliance_officer.username for record in viewed)
    assert [record.data["sha256"] for record in viewed][:2] == ["1" * 64, "2" * 64]


@pytest.mark.parametrize("who", ["agent_b", "supervisor", "agent_a", "administrator"])
def test_only_the_compliance_role_receives_the_faces_of_a_gate_3_attempt(
    client: Client,
    world: dict[str, Any],
    administrator: User,
    settings: Any,
    tmp_path: Any,
    who: str,
) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    attempt, images = _face_attempt_with_three_images(world)
    seeded = world["services"]["face_b"]
    user = administrator if who == "administrator" else world[who]
    force_login_verified(client, user)
    for kind in images:
        url = reverse("compliance-workspace:face-image", args=[seeded.visit.public_id, attempt.pk, kind])
        assert client.get(url).status_code == 403
    if who == "agent_b":  # the agent who served it sees the scores on the evidence page, not the faces
        html = client.get(evidence_url(seeded), headers={"accept-language": "en"}).content.decode()
        assert "not the same person" in html and 'class="face-images"' not in html
    assert not AuditRecord.objects.filter(data__purpose="gate3_face_image").exists()


def test_a_face_image_of_another_service_or_an_unknown_kind_is_404(
    client: Client, world: dict[str, Any], compliance_officer: User, settings: Any, tmp_path: Any
) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    attempt, _images = _face_attempt_with_three_images(world)
    force_login_verified(client, compliance_officer)
    other = world["services"]["done_a"].visit.public_id
    face_b = world["services"]["face_b"].visit.public_id
    assert client.get(reverse("compliance-workspace:face-image", args=[other, attempt.pk, "live"])).status_code == 404
    assert (
        client.get(reverse("compliance-workspace:face-image", args=[face_b, attempt.pk, "selfie"])).status_code == 404
    )
    assert not AuditRecord.objects.filter(data__purpose="gate3_face_image").exists()


@pytest.mark.parametrize(
    "code",
    [
        "face:below_threshold",
        "face:replayed_known_image",
        "face:liveness:no_face",
        "capture_failed:no_feed",
        "pin_reset",
    ],
)
def test_the_codes_a_face_failure_records_are_shown_in_words(code: str) -> None:
    """Issue #19: results appeared as raw codes; a face failure's reason read "other reason"."""
    from django.utils import translation

    from apps.compliance.labels import reason_label

    with translation.override("zh-hans"):
        label = reason_label(code)
    assert label and "其他原因" not in label
    assert not re.search(r"[a-z]+_[a-z_]+", label), label


def test_the_evidence_pages_gate_1_rows_name_their_action_and_the_service_number_is_so_labelled(
    client: Client, world: dict[str, Any], compliance_officer: User
) -> None:
    """Issue #19: the Action column was empty on every Gate-1 row and the service number was labelled "business"."""
    from apps.audit.actions import AuditAction
    from apps.audit.services import audit_record
    from apps.visits.services import visit_actor

    seeded = world["services"]["face_b"]
    audit_record(actor=visit_actor(seeded.visit), action=AuditAction.VISIT_ID_CARD_READ, target=seeded.visit, data={})
    force_login_verified(client, compliance_officer)
    html = client.get(evidence_url(seeded), headers={"accept-language": "zh-hans"}).content.decode()
    gate1 = html.split('id="gate1-records"', 1)[1].split("</table>", 1)[0]
    with translation_zh():
        label = str(AuditAction.VISIT_ID_CARD_READ.label)
    assert f"<td>{label}</td>" in gate1
    assert f'<th scope="row">服务编号</th><td>{seeded.visit.public_id}</td>' in html


def translation_zh() -> Any:
    from django.utils import translation

    return translation.override("zh-hans")


def test_the_service_search_offers_choices_and_date_pickers_not_free_text_codes(
    client: Client, compliance_officer: User
) -> None:
    """Issue #19: filters were free-text code prefixes. Business, outcome and failed gate are chosen, dates picked."""
    force_login_verified(client, compliance_officer)
    html = client.get(SERVICES, headers={"accept-language": "zh-hans"}).content.decode()
    for name in ("business", "outcome", "gate_failed"):
        assert f'<select name="{name}"' in html, name
    for name in ("from", "to"):
        assert re.search(rf'<input type="date" name="{name}"', html), name
    business = html.split('<select name="business"', 1)[1].split("</select>", 1)[0]
    assert "激活" in business and ">activation<" not in business  # options read as words, values stay codes


def test_the_evidence_pages_recording_files_show_readable_sizes(
    client: Client, world: dict[str, Any], compliance_officer: User
) -> None:
    """Issue #19: file sizes were raw byte counts."""
    from apps.recordings.models import Recording, RecordingFile

    seeded = world["services"]["done_a"]
    recording = Recording.objects.create(call=seeded.call)
    RecordingFile.objects.create(
        recording=recording, kind="composite", path="x/composite.mp4", size_bytes=52_428_800, sha256="3" * 64
    )
    force_login_verified(client, compliance_officer)
    html = client.get(evidence_url(seeded), headers={"accept-language": "en"}).content.decode()
    files = html.split('class="recording-files"', 1)[1].split("</table>", 1)[0]
    assert ">50.0\xa0MB<" in files
    assert ">52428800<" not in files and "Evidence file (all participants)" in files
