"""Issue 14, item 4: retakes are bounded, and a customer who failed Gate 2 or 3 cannot start a new remote visit.

The block is keyed by the mobile number's blind index (all visit_start
knows) and by the customer; it lasts VISIT_BLOCK_HOURS; supervisors see the
blocks in force and lift one with a reason, audited.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from apps.audit.models import AuditRecord
from apps.common.errors import NotAllowed
from apps.gates.models import AttemptStatus, GateAttempt
from apps.visits.models import Visit, VisitBlock, VisitOutcome
from apps.visits.services import visit_block_lift, visit_close, visit_start
from tests.conftest import SYSTEM
from tests.factories import visit_with_gate1
from tests.gates.conftest import (  # noqa: F401 - fixtures re-exported
    KIT,
    InCall,
    _assert_service_ended,
    _pass_identity,
    _post,
    capture,
    janus_control,
    janus_settings,
    make_in_call,
    on_commit,
    registry,
)
from tests.security.helpers import force_login_verified

pytestmark = pytest.mark.django_db


def _start(mobile: str) -> Any:
    return Client().post(
        reverse("verification:visit-start"),
        {"business": "activation", "mobile": mobile},
        content_type="application/json",
    )


def test_face_retakes_are_bounded_and_the_failed_customer_is_blocked(
    make_in_call: Callable[..., InCall],  # noqa: F811
    on_commit: Callable[..., Any],  # noqa: F811
    supervisor: User,
    agent: User,
    settings: Any,
) -> None:
    settings.GATE_FACE_MAX_ATTEMPTS = 3
    in_call = make_in_call(person=KIT)
    _pass_identity(in_call, on_commit)
    wall = Image.new("RGB", (640, 480), (90, 120, 150))

    # An unusable frame (no face) may be retried: twice the gate stays open...
    for number in (1, 2, 3):
        snapshot = capture(in_call, wall)
        response = _post(in_call, "face", on_commit, snapshot=str(snapshot.public_id))
        assert response.status_code == 202, response.content
        attempt = GateAttempt.objects.get(progress__visit=in_call.visit, gate="face", number=number)
        assert (attempt.status, attempt.result_code) == (AttemptStatus.ERROR, "live:FaceNotFound")
    # ...the third was the last one allowed: the gate fails and the service ends.
    _assert_service_ended(in_call, "face", "attempts_exhausted")
    started = AuditRecord.objects.filter(action="gates.attempt.started", target_id=str(in_call.visit.pk))
    assert [record.data["attempt"] for record in started if record.data["gate"] == "face"] == [1, 2, 3]
    refused = _post(in_call, "face", on_commit, snapshot=str(snapshot.public_id))
    assert refused.status_code in (403, 409)  # the call is over: no fourth try

    block = VisitBlock.objects.get(visit=in_call.visit)
    assert block.customer == in_call.customer and block.reason == "face:attempts_exhausted"
    assert block.blocked_until - block.created_at == timedelta(hours=24)
    assert AuditRecord.objects.filter(action="visits.block.created", target_id=str(in_call.visit.pk)).count() == 1

    # A new remote visit with the same mobile number is refused, with the reason in plain words.
    mobile = in_call.visit.mobile
    response = _start(mobile)
    assert response.status_code == 409, response.content
    body = response.json()
    assert body["code"] == "remote_service_blocked" and "请到柜面办理业务" in body["message"]  # zh-hans first
    assert _start("13900000000").status_code == 201  # anyone else starts as usual

    # Supervisors see the block and lift it with a reason; agents may not.
    staff = Client()
    force_login_verified(staff, agent)
    assert staff.get(reverse("visits:blocks")).status_code == 403
    assert staff.post(reverse("visits:block-lift", args=[block.pk]), {"reason": "x"}).status_code == 403
    force_login_verified(staff, supervisor)
    listed = staff.get(reverse("visits:blocks")).json()["blocks"]
    assert [item["id"] for item in listed] == [block.pk] and "*" in listed[0]["mobile"]
    missing_reason = staff.post(reverse("visits:block-lift", args=[block.pk]), {}, content_type="application/json")
    assert missing_reason.status_code == 400
    lifted = staff.post(
        reverse("visits:block-lift", args=[block.pk]),
        {"reason": "ID checked at the Xidan counter"},
        content_type="application/json",
    )
    assert lifted.status_code == 200, lifted.content
    record = AuditRecord.objects.get(action="visits.block.lifted")
    assert record.actor_id == str(supervisor.pk) and record.data["reason"] == "ID checked at the Xidan counter"
    assert staff.get(reverse("visits:blocks")).json()["blocks"] == []
    assert _start(mobile).status_code == 201


@pytest.mark.parametrize(
    ("reason", "blocked"),
    [("identity:mismatch", True), ("face:below_threshold", True), ("face:replayed_known_image", True),
     ("questions:wrong_answers", False)],
)  # fmt: skip
def test_only_gate_2_and_3_failures_block(reason: str, blocked: bool) -> None:
    visit = visit_with_gate1(business_code="activation", mobile="13811112222", state="queue_ready")

    visit_close(visit_id=visit.pk, actor=SYSTEM, outcome=VisitOutcome.GATE_FAILED, reason=reason)

    assert VisitBlock.objects.filter(visit=visit).exists() is blocked
    if blocked:
        with pytest.raises(NotAllowed) as refused:
            visit_start(business_code="activation", mobile="138 1111 2222")
        assert refused.value.code == "remote_service_blocked"
    else:
        assert visit_start(business_code="activation", mobile="13811112222").pk


def test_a_block_ends_by_itself_and_can_be_switched_off(settings: Any) -> None:
    visit = visit_with_gate1(business_code="activation", mobile="13811113333", state="queue_ready")
    visit_close(visit_id=visit.pk, actor=SYSTEM, outcome=VisitOutcome.GATE_FAILED, reason="face:below_threshold")
    VisitBlock.objects.filter(visit=visit).update(blocked_until=timezone.now() - timedelta(seconds=1))
    assert visit_start(business_code="activation", mobile="13811113333").pk

    settings.VISIT_BLOCK_HOURS = 0
    other = visit_with_gate1(business_code="activation", mobile="13811114444", state="queue_ready")
    visit_close(visit_id=other.pk, actor=SYSTEM, outcome=VisitOutcome.GATE_FAILED, reason="identity:mismatch")
    assert not VisitBlock.objects.filter(visit=other).exists()


def test_a_blocked_customer_trying_to_start_is_refused_in_plain_words_and_the_refusal_is_audited(
    supervisor: User,
) -> None:
    visit = visit_with_gate1(business_code="activation", mobile="13811115555", state="queue_ready")
    visit_close(visit_id=visit.pk, actor=SYSTEM, outcome=VisitOutcome.GATE_FAILED, reason="identity:mismatch")
    block = VisitBlock.objects.get(visit=visit)
    visits_before = set(Visit.objects.values_list("pk", flat=True))

    response = _start("138-1111-5555")

    assert response.status_code == 409, response.content
    body = response.json()
    assert body["code"] == "remote_service_blocked"
    until = timezone.localtime(block.blocked_until).strftime("%Y-%m-%d %H:%M")
    assert until in body["message"] and "请到柜面办理业务" in body["message"]
    # Nothing half-written: no visit was opened...
    assert set(Visit.objects.values_list("pk", flat=True)) == visits_before
    # ...but the refusal survived the request's rollback, masked, against the visit that caused the block.
    record = AuditRecord.objects.get(action="visits.block.refused")
    assert record.target_id == str(visit.pk)
    assert record.data["block"] == block.pk and record.data["reason"] == "identity:mismatch"
    assert record.data["business"] == "activation" and record.data["mobile"] != "13811115555"
    assert "13811115555" not in str(record.data) and "13811115555" not in record.actor_label

    # Once lifted, the same number starts a visit, and nothing more is refused.
    visit_block_lift(actor=supervisor, block_id=block.pk, reason="ID checked at a counter")
    assert _start("13811115555").status_code == 201
    assert AuditRecord.objects.filter(action="visits.block.refused").count() == 1
