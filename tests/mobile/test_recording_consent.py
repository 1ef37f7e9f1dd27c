"""The recording notice (R5): the server, not only the page, refuses a queue without the customer's agreement."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from apps.audit.actions import AuditAction
from apps.audit.models import AuditRecord
from apps.customers.models import Customer
from apps.queueing.models import QueueEntry
from apps.queueing.services.configuration import service_queue_upsert
from apps.visits.authentication import SESSION_KEY
from apps.visits.models import Visit
from tests.conftest import SYSTEM
from tests.factories import visit_with_gate1

pytestmark = pytest.mark.django_db


@pytest.fixture
def unconsented(client: Client, make_customer: Callable[..., Customer]) -> Visit:
    service_queue_upsert(actor=SYSTEM, code="activation", name="激活", businesses=["activation"])
    customer = make_customer()
    visit = visit_with_gate1(
        business_code="activation", mobile=customer.mobile, customer=customer, recording_consent=False
    )
    session = client.session
    session[SESSION_KEY] = visit.pk
    session.save()
    return visit


def _join(client: Client, language: str) -> dict[str, object]:
    response = client.post(
        reverse("queueing:visit-queue-join"), content_type="application/json", headers={"accept-language": language}
    )
    assert response.status_code == 409
    body: dict[str, object] = response.json()
    return body


def test_joining_the_queue_without_agreeing_to_the_recording_is_refused_in_chinese_and_english(
    client: Client, unconsented: Visit
) -> None:
    chinese = _join(client, "zh-hans")
    english = _join(client, "en")
    assert chinese["code"] == english["code"] == "recording_consent_missing"
    assert "录音录像" in str(chinese["message"]) and "recorded" in str(english["message"])
    assert not QueueEntry.objects.filter(visit=unconsented).exists()  # nothing half-written


def test_once_the_customer_agrees_the_queue_takes_them_and_the_audit_trail_holds_the_agreement(
    client: Client, unconsented: Visit
) -> None:
    _join(client, "zh-hans")
    agreed = client.post(
        reverse("mobile:visit-consent"), {"camera": True, "microphone": True}, content_type="application/json"
    )
    assert agreed.status_code == 201
    joined = client.post(reverse("queueing:visit-queue-join"), content_type="application/json")
    assert joined.status_code == 201
    assert QueueEntry.objects.filter(visit=unconsented).count() == 1
    record = AuditRecord.objects.get(action=AuditAction.VISIT_RECORDING_CONSENTED, target_id=str(unconsented.pk))
    assert record.data["notice"] == agreed.json()["notice"]
    unconsented.refresh_from_db()
    assert unconsented.recording_consented_at is not None


def test_a_closed_visit_cannot_record_a_consent(client: Client, unconsented: Visit) -> None:
    Visit.objects.filter(pk=unconsented.pk).update(outcome="abandoned")
    refused = client.post(
        reverse("mobile:visit-consent"), {"camera": True, "microphone": True}, content_type="application/json"
    )
    assert refused.status_code == 400
    unconsented.refresh_from_db()
    assert unconsented.recording_consented_at is None
