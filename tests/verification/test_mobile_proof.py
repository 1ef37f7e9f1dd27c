"""Proof of the mobile number: a 6-digit SMS code to the number on the bank's record (issue #15 item 5)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditRecord
from apps.customers.models import Customer
from apps.verification.integrations.sms import SandboxSmsGateway, SmsRateLimited, SmsSendFailed, sms_gateway_reset
from apps.verification.models import Verification, VerificationState
from apps.visits.models import Visit
from tests.verification.test_gate1_flow import Visitor, sms_code_sent_to

pytestmark = pytest.mark.django_db

MOBILE = "13912345678"


@pytest.fixture
def matched(client: Client, make_customer: Callable[..., Customer], django_capture_on_commit_callbacks: Any) -> Visitor:
    """A visitor whose ID card matched a customer (the OCR path is tested in test_gate1_flow)."""
    customer = make_customer(name="李晓明", mobile=MOBILE)
    visitor = Visitor(client, django_capture_on_commit_callbacks)
    started = visitor.start(mobile=MOBILE)
    visit = Visit.objects.get(public_id=started["id"])
    Visit.objects.filter(pk=visit.pk).update(customer=customer)
    Verification.objects.filter(visit=visit).update(state=VerificationState.IDENTITY_MATCHED)
    return visitor


def _send(visitor: Visitor, expect: int = 200) -> dict[str, Any]:
    return visitor.post("verification:visit-sms-send", expect=expect)


def _verify(visitor: Visitor, code: str, expect: int = 200) -> dict[str, Any]:
    return visitor.post("verification:visit-sms-verify", {"code": code}, expect=expect)


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_the_right_code_proves_the_mobile_number_and_only_a_keyed_hash_is_stored(matched: Visitor) -> None:
    sent = _send(matched)
    assert sent["mobile_proof"]["code_sent"] is True
    assert sent["mobile_proof"]["mobile"] == "139****5678"
    code = sms_code_sent_to("139****5678")
    assert len(code) == 6 and code.isdigit()
    verification = Verification.objects.get()
    assert code not in verification.sms_code_hash and len(verification.sms_code_hash) == 64
    proven = _verify(matched, code)
    assert proven["mobile_proof"]["proven"] is True
    assert Verification.objects.get().mobile_proven_at is not None
    actions = list(
        AuditRecord.objects.filter(action__startswith="verification.visit.").values_list("action", flat=True)
    )
    assert actions[-2:] == ["verification.visit.sms_sent", "verification.visit.mobile_proven"]
    assert all(code not in str(record.data) for record in AuditRecord.objects.all())


def test_a_wrong_code_counts_and_the_fifth_wrong_one_refuses_the_visit(matched: Visitor) -> None:
    _send(matched)
    code = sms_code_sent_to("139****5678")
    for left in (4, 3, 2, 1):
        wrong = _verify(matched, _wrong(code), expect=400)
        assert (wrong["code"], wrong["details"]["tries_left"]) == ("sms_wrong", left)
    refused = _verify(matched, _wrong(code))
    assert refused["state"] == "refused"
    assert refused["refusal"]["code"] == "mobile_not_proven"
    # Even the right code does nothing now.
    _verify(matched, code, expect=409)
    assert AuditRecord.objects.filter(action="verification.visit.sms_wrong").count() == 5


def test_an_expired_code_is_refused_and_a_new_one_can_be_sent(matched: Visitor, settings: Any) -> None:
    settings.GATE1_SMS_RESEND_SECONDS = 0
    _send(matched)
    code = sms_code_sent_to("139****5678")
    Verification.objects.update(sms_expires_at=timezone.now() - timedelta(seconds=1))
    expired = _verify(matched, code, expect=400)
    assert expired["code"] == "sms_expired"
    assert AuditRecord.objects.filter(action="verification.visit.sms_expired").count() == 1
    _send(matched)
    fresh = sms_code_sent_to("139****5678")
    assert _verify(matched, fresh)["mobile_proof"]["proven"] is True


def test_a_resend_waits_for_the_cooldown_and_replaces_the_previous_code(matched: Visitor, settings: Any) -> None:
    _send(matched)
    first = sms_code_sent_to("139****5678")
    too_soon = _send(matched, expect=429)
    assert too_soon["code"] == "sms_wait"
    assert 0 < too_soon["details"]["retry_after"] <= settings.GATE1_SMS_RESEND_SECONDS
    Verification.objects.update(sms_last_sent_at=timezone.now() - timedelta(seconds=settings.GATE1_SMS_RESEND_SECONDS))
    _send(matched)
    second = sms_code_sent_to("139****5678")
    if second != first:  # one chance in a million that the new code equals the old one
        assert _verify(matched, first, expect=400)["code"] == "sms_wrong"
    assert _verify(matched, second)["mobile_proof"]["proven"] is True


def test_sends_are_limited_per_visit(matched: Visitor, settings: Any) -> None:
    settings.GATE1_SMS_RESEND_SECONDS = 0
    for _ in range(settings.GATE1_SMS_MAX_SENDS):
        _send(matched)
    assert _send(matched, expect=409)["code"] == "sms_too_many_sends"


def test_a_gateway_failure_tells_the_customer_and_does_not_use_up_a_send(matched: Visitor, settings: Any) -> None:
    settings.SMS_SANDBOX = {**settings.SMS_SANDBOX, "error_rate": 1.0}
    sms_gateway_reset()
    failed = _send(matched, expect=503)
    assert failed["code"] == "sms_failed"
    verification = Verification.objects.get()
    assert (verification.sms_sent_count, verification.sms_code_hash, verification.sms_last_sent_at) == (0, "", None)
    assert AuditRecord.objects.filter(action="verification.visit.sms_failed").count() == 1
    settings.SMS_SANDBOX = {**settings.SMS_SANDBOX, "error_rate": 0.0}
    sms_gateway_reset()
    _send(matched)  # no cooldown after a failed send


def test_gate1_cannot_pass_without_the_code(matched: Visitor) -> None:
    answer = matched.post("verification:visit-account", {"number": "6217860000000000011"}, expect=409)
    assert answer["code"] == "mobile_not_proven"
    assert Verification.objects.get().state == VerificationState.IDENTITY_MATCHED
    photo = matched.client.post(reverse("verification:visit-account-photo"), {})
    assert photo.status_code in {400, 409}


def test_the_sandbox_behaves_like_a_gateway_latency_failures_and_rate_limit(settings: Any) -> None:
    gateway = SandboxSmsGateway(
        {"latency_min_ms": 20, "latency_max_ms": 30, "error_rate": 0.0, "rate_limit_per_window": 2, "seed": 1}
    )
    mobile = f"137{secrets.randbelow(10**8):08d}"  # the rate window outlives a test run in Redis
    started = timezone.now()
    gateway.send(mobile=mobile, text="a")
    assert (timezone.now() - started).total_seconds() >= 0.02
    gateway.send(mobile=mobile, text="b")
    with pytest.raises(SmsRateLimited):
        gateway.send(mobile=mobile, text="c")
    assert [message.text for message in gateway.outbox()[:2]] == ["b", "a"]
    failing = SandboxSmsGateway({"latency_min_ms": 0, "latency_max_ms": 1, "error_rate": 1.0})
    with pytest.raises(SmsSendFailed):
        failing.send(mobile="13700000002", text="x")


def test_the_development_page_lists_the_sandbox_messages_and_is_gone_when_disabled(
    matched: Visitor, settings: Any
) -> None:
    _send(matched)
    code = sms_code_sent_to("139****5678")
    page = Client().get(reverse("verification:sms-sandbox"))
    assert page.status_code == 200
    assert code in page.content.decode()
    settings.SMS_SANDBOX_PAGE = False
    assert Client().get(reverse("verification:sms-sandbox")).status_code == 404
