"""Gate 1's OCR has a deadline: a read lost with its worker is queued again once, then given back to the customer."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from apps.audit.models import AuditRecord
from apps.queueing.services.housekeeping import dispatcher_tick
from apps.verification.models import Verification, VerificationState
from apps.verification.services import verifications_ocr_expire
from tests.fixtures.cardgen import generate_non_id_image

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _deadlines(settings: Any) -> None:
    settings.GATE1_UPLOAD_COOLDOWN_SECONDS = 0
    settings.GATE1_OCR_DEADLINE_SECONDS = 30


def _upload_whose_read_is_lost(client: Client, capture: Callable[..., Any]) -> Verification:
    """Upload a photo whose OCR task never runs (the worker died with it)."""
    with capture(execute=False):
        response = client.post(reverse("verification:visit-id-card"), {"photo": _file(generate_non_id_image())})
    assert response.status_code == 202, response.content
    verification = Verification.objects.get()
    assert verification.state == VerificationState.ID_CARD_PROCESSING
    return verification


def _file(data: bytes) -> io.BytesIO:
    handle = io.BytesIO(data)
    handle.name = "card.jpg"
    return handle


def _start(client: Client) -> None:
    response = client.post(
        reverse("verification:visit-start"), {"business": "activation", "mobile": "13912345678"}, "application/json"
    )
    assert response.status_code == 201, response.content


def test_a_read_lost_with_its_worker_is_queued_again_once_then_handed_back_to_the_customer(
    client: Client, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    _start(client)
    verification = _upload_whose_read_is_lost(client, django_capture_on_commit_callbacks)
    uploaded_at = verification.id_card_last_upload_at
    assert uploaded_at is not None

    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert verifications_ocr_expire(now=uploaded_at + timedelta(seconds=10)) == 0
    assert queued == []

    # Past the deadline: the read is queued again (and lost again: not run here).
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert verifications_ocr_expire(now=uploaded_at + timedelta(seconds=31)) == 1
    assert len(queued) == 1
    assert Verification.objects.get().state == VerificationState.ID_CARD_PROCESSING
    assert AuditRecord.objects.filter(action="verification.visit.id_card_ocr_requeued").count() == 1

    # Only once.
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert verifications_ocr_expire(now=uploaded_at + timedelta(seconds=50)) == 0
    assert queued == []

    # Past the second deadline: the customer may upload again, with a reason.
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert verifications_ocr_expire(now=uploaded_at + timedelta(seconds=62)) == 1
    assert queued == []
    verification = Verification.objects.get()
    assert verification.state == VerificationState.BUSINESS_CHOSEN
    assert verification.id_card_failure_code == "ocr_timeout"
    record = AuditRecord.objects.get(action="verification.visit.id_card_ocr_timed_out")
    assert record.data == {"attempt": 1}

    with translation.override("zh-hans"):
        page = client.get(reverse("verification:visit-current"), HTTP_ACCEPT_LANGUAGE="zh-hans").json()
    assert page["state"] == "business_chosen"
    assert page["id_card_problem"]["code"] == "ocr_timeout"
    assert "重新" in page["id_card_problem"]["message"]


def test_an_upload_whose_read_timed_out_is_not_counted_against_the_customer(
    client: Client, settings: Any, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    settings.GATE1_MAX_ID_CARD_UPLOADS = 1
    _start(client)
    uploaded_at = _upload_whose_read_is_lost(client, django_capture_on_commit_callbacks).id_card_last_upload_at
    assert uploaded_at is not None
    with django_capture_on_commit_callbacks(execute=False):
        verifications_ocr_expire(now=uploaded_at + timedelta(seconds=31))
        verifications_ocr_expire(now=uploaded_at + timedelta(seconds=62))

    # The one upload allowed was lost by the platform: the customer still has it.
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("verification:visit-id-card"), {"photo": _file(generate_non_id_image())})
    assert response.status_code == 202, response.content
    assert Verification.objects.get().state == VerificationState.ID_CARD_PROCESSING


def test_the_dispatcher_clock_drives_the_ocr_deadline(
    client: Client, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    _start(client)
    uploaded_at = _upload_whose_read_is_lost(client, django_capture_on_commit_callbacks).id_card_last_upload_at
    assert uploaded_at is not None
    with django_capture_on_commit_callbacks(execute=False):
        dispatcher_tick(now=uploaded_at + timedelta(seconds=31))
        dispatcher_tick(now=uploaded_at + timedelta(seconds=62))
    assert Verification.objects.get().id_card_failure_code == "ocr_timeout"
