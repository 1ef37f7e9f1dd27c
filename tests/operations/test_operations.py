"""The five businesses end to end through the API and the customer's session (R7), with core banking's failures."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from django.contrib.auth.hashers import check_password
from django.urls import reverse
from django.utils import timezone
from pypdf import PdfReader

from apps.audit.models import AuditRecord
from apps.audit.selectors import audit_chain_verify
from apps.customers.models import Account, AccountKind, AccountStatus, Customer
from apps.operations.models import Operation, OperationState
from apps.operations.services import STUCK_AFTER_SECONDS, operations_stuck_release
from apps.visits.models import VisitOutcome
from tests.operations.conftest import KIT, InCall, capture, pass_gates, person_photos

pytestmark = pytest.mark.django_db

GOOD_PIN = "739215"


def _start(in_call: InCall, key: str = "key-00000001", **body: Any) -> Any:
    return in_call.staff_client.post(
        reverse("operations:call-operation-start", args=[in_call.call.public_id]),
        body,
        content_type="application/json",
        headers={"idempotency-key": key},
    )


def _pin(in_call: InCall, operation_id: str, pin: str, repeat: str | None = None) -> Any:
    return in_call.customer_client.post(
        reverse("operations:visit-operation-pin", args=[operation_id]),
        {"pin": pin, "pin_repeat": pin if repeat is None else repeat},
        content_type="application/json",
    )


def _everything_recorded(in_call: InCall) -> str:
    """Every audit record's data and every staff-side response, as one text to search."""
    records = AuditRecord.objects.values_list("data", flat=True)
    staff_side = [
        in_call.staff_client.get(reverse("operations:call-operations", args=[in_call.call.public_id])).content,
        in_call.staff_client.get(reverse("gates:call-gates", args=[in_call.call.public_id])).content,
        in_call.staff_client.get(reverse("console:agent")).content,
    ]
    return json.dumps(list(records), ensure_ascii=False) + "".join(part.decode() for part in staff_side)


@pytest.fixture
def activation(make_in_call: Callable[..., InCall], on_commit: Callable[..., Any], core: Any) -> InCall:
    in_call = make_in_call(person=KIT, business="activation")
    pass_gates(in_call, on_commit)
    return in_call


def test_activation_with_the_customers_own_pin_pad_never_shows_or_keeps_the_pin(
    activation: InCall, on_commit: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    started = _start(activation)
    assert started.status_code == 201, started.content
    operation_id = started.json()["id"]
    waiting = activation.customer_client.get(reverse("operations:visit-operation")).json()["operation"]
    assert (waiting["id"], waiting["confirm_by"]) == (operation_id, "customer_pin")
    with on_commit():
        done = _pin(activation, operation_id, GOOD_PIN)
    assert done.status_code == 200, done.content
    assert done.json()["operation"]["state"] == "succeeded"
    account = Account.objects.get(pk=activation.account.pk)
    assert account.status == AccountStatus.NORMAL
    assert check_password(GOOD_PIN, account.pin_hash) and GOOD_PIN not in account.pin_hash
    activation.refresh()
    assert activation.visit.outcome == VisitOutcome.COMPLETED
    # The PIN is nowhere: not in the audit trail, not on the agent's side, not in the logs.
    assert GOOD_PIN not in _everything_recorded(activation)
    assert GOOD_PIN not in caplog.text
    assert audit_chain_verify().intact


@pytest.mark.parametrize(
    ("pin", "repeat", "code"),
    [
        ("123456", None, "pin_weak"),
        ("000000", None, "pin_weak"),
        ("987654", None, "pin_weak"),
        ("12345", None, "pin_format"),
        ("12a456", None, "pin_format"),
        ("739215", "739216", "pin_mismatch"),
    ],
)
def test_weak_malformed_or_mistyped_pins_are_refused_without_echoing_them(
    activation: InCall, pin: str, repeat: str | None, code: str
) -> None:
    operation_id = _start(activation).json()["id"]
    response = _pin(activation, operation_id, pin, repeat)
    assert response.status_code == 400 and response.json()["code"] == code
    assert pin not in response.content.decode()
    assert Operation.objects.get(public_id=operation_id).state == OperationState.AWAITING_CONFIRMATION
    assert Account.objects.get(pk=activation.account.pk).status == AccountStatus.INACTIVE


def test_a_pin_made_of_the_customers_birth_date_is_refused(activation: InCall) -> None:
    id_number = Customer.objects.get(pk=activation.customer.pk).id_number
    birth = date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
    operation_id = _start(activation).json()["id"]
    response = _pin(activation, operation_id, f"{birth:%y%m%d}")
    assert response.status_code == 400 and response.json()["code"] == "pin_weak"


def test_double_submissions_return_the_same_operation_and_apply_once(
    activation: InCall, on_commit: Callable[..., Any]
) -> None:
    first = _start(activation, key="double-0001").json()
    assert _start(activation, key="double-0001").json()["id"] == first["id"]
    other = _start(activation, key="double-0002")
    assert other.status_code == 409 and other.json()["code"] == "operation_already_open"
    assert _start(activation, key="short").json()["code"] == "idempotency_key"
    with on_commit():
        _pin(activation, first["id"], GOOD_PIN)
    with on_commit():
        again = _pin(activation, first["id"], GOOD_PIN)
    assert again.status_code == 200 and again.json()["operation"]["state"] == "succeeded"
    assert Operation.objects.filter(visit=activation.visit).count() == 1
    succeeded = AuditRecord.objects.filter(action="operations.operation.succeeded", target_id=str(activation.visit.pk))
    assert succeeded.count() == 1
    applied = AuditRecord.objects.filter(action="customers.account.updated", target_id=str(activation.account.pk))
    assert applied.count() == 1


def test_core_banking_down_keeps_the_operation_for_a_retry_then_fails_it(
    activation: InCall, core: Callable[..., Any]
) -> None:
    core(error_rate=1.0)
    operation_id = _start(activation).json()["id"]
    for attempt in (1, 2):
        response = _pin(activation, operation_id, GOOD_PIN)
        assert response.json()["operation"] == {
            "id": operation_id, "state": "awaiting_confirmation", "result": "core_banking_unavailable",
        }, attempt  # fmt: skip
    third = _pin(activation, operation_id, GOOD_PIN)
    assert third.json()["operation"]["state"] == "failed"
    assert Account.objects.get(pk=activation.account.pk).status == AccountStatus.INACTIVE
    activation.refresh()
    assert activation.visit.outcome == ""  # not completed: the agent may end or transfer the service


def test_a_timeout_after_core_banking_applied_is_retried_under_the_same_reference_and_applies_once(
    activation: InCall, core: Callable[..., Any]
) -> None:
    core(timeout_rate=1.0, timeout_after_apply_share=1.0, timeout_seconds=0.05)
    operation_id = _start(activation).json()["id"]
    unanswered = _pin(activation, operation_id, GOOD_PIN).json()["operation"]
    assert unanswered["result"] == "core_banking_timeout"
    # Core banking had applied it although its answer was lost.
    assert Account.objects.get(pk=activation.account.pk).status == AccountStatus.NORMAL
    core()
    retried = _pin(activation, operation_id, GOOD_PIN).json()["operation"]
    assert retried["state"] == "succeeded"
    applied = AuditRecord.objects.filter(action="customers.account.updated", target_id=str(activation.account.pk))
    assert applied.count() == 1


def test_password_reset_replaces_the_pin_hash(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any], core: Any
) -> None:
    in_call = make_in_call(person=KIT, business="password_reset")
    pass_gates(in_call, on_commit)
    operation_id = _start(in_call).json()["id"]
    assert _pin(in_call, operation_id, "602817").json()["operation"]["state"] == "succeeded"
    account = Account.objects.get(pk=in_call.account.pk)
    assert check_password("602817", account.pin_hash) and account.status == AccountStatus.NORMAL


def test_lost_report_release_shows_the_report_date_and_the_agent_confirms(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any], core: Any
) -> None:
    in_call = make_in_call(
        person=KIT,
        business="lost_report_release",
        account_status=AccountStatus.REPORTED_LOST,
        status_since=date(2026, 10, 3),
    )
    pass_gates(in_call, on_commit)
    started = _start(in_call).json()
    assert started["details"]["reported_lost_on"] == "2026-10-03"
    assert in_call.customer_client.get(reverse("operations:visit-operation")).json()["operation"] is None
    confirmed = in_call.staff_client.post(reverse("operations:operation-confirm", args=[started["id"]]))
    assert confirmed.status_code == 200 and confirmed.json()["state"] == "succeeded"
    assert Account.objects.get(pk=in_call.account.pk).status == AccountStatus.NORMAL


def test_information_maintenance_is_confirmed_on_the_phone_and_keeps_the_old_values(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any], core: Any
) -> None:
    in_call = make_in_call(person=KIT, business="info_maintenance")
    pass_gates(in_call, on_commit)
    old_mobile = in_call.customer.mobile
    started = _start(in_call, changes={"mobile": "13912345678", "occupation": "教师", "address": "滨海市港湾路 8 号"})
    assert started.status_code == 201, started.content
    body = started.json()
    assert body["before"]["mobile"] != old_mobile  # masked for the agent
    shown = in_call.customer_client.get(reverse("operations:visit-operation")).json()["operation"]
    assert shown["before"]["mobile"] == old_mobile and shown["after"]["mobile"] == "13912345678"
    confirmed = in_call.customer_client.post(
        reverse("operations:visit-operation-confirm", args=[body["id"]]),
        {"accept": True},
        content_type="application/json",
    )
    assert confirmed.json()["operation"]["state"] == "succeeded"
    customer = Customer.objects.get(pk=in_call.customer.pk)
    assert (customer.mobile, customer.occupation, customer.address) == ("13912345678", "教师", "滨海市港湾路 8 号")
    operation = Operation.objects.get(public_id=body["id"])
    assert operation.before == {"mobile": old_mobile, "occupation": "", "address": ""}


def test_a_declined_change_changes_nothing(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any], core: Any
) -> None:
    in_call = make_in_call(person=KIT, business="info_maintenance")
    pass_gates(in_call, on_commit)
    body = _start(in_call, changes={"occupation": "工程师"}).json()
    declined = in_call.customer_client.post(
        reverse("operations:visit-operation-confirm", args=[body["id"]]),
        {"accept": False},
        content_type="application/json",
    )
    assert declined.json()["operation"]["state"] == "cancelled"
    assert Customer.objects.get(pk=in_call.customer.pk).occupation == ""


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"mobile": "12345"}, "invalid_mobile"),
        ({"id_valid_until": "2001-01-01"}, "invalid_date"),
        ({"name": "王五"}, "invalid_changes"),
        ({}, "invalid_changes"),
    ],
)
def test_invalid_changes_are_refused_with_a_clear_error(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any], core: Any, changes: dict[str, str], code: str
) -> None:
    in_call = make_in_call(person=KIT, business="info_maintenance")
    pass_gates(in_call, on_commit)
    response = _start(in_call, changes=changes)
    assert response.status_code == 400 and response.json()["code"] == code and response.json()["message"]
    assert not Operation.objects.filter(visit=in_call.visit).exists()


def test_corporate_intent_verification_produces_a_certificate_with_its_evidence(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any], core: Any
) -> None:
    in_call = make_in_call(
        person=KIT,
        business="corporate_intent",
        account_kind=AccountKind.CORPORATE,
        account_status=AccountStatus.INACTIVE,
        company_name="滨海远帆贸易有限公司",
    )
    pass_gates(in_call, on_commit)
    started = _start(in_call).json()
    assert [line["key"] for line in started["script"]] == ["company_confirmed", "purpose", "intent"]
    assert "滨海远帆贸易有限公司" in started["script"][0]["text"]
    capture(in_call, person_photos(KIT)[0])
    answers = {"company_confirmed": True, "purpose": "日常经营结算", "intent": True}
    done = in_call.staff_client.post(
        reverse("operations:operation-confirm", args=[started["id"]]),
        {"answers": answers},
        content_type="application/json",
    ).json()
    assert done["state"] == "succeeded" and done["result"] == "intent_confirmed" and done["has_certificate"]
    pdf = in_call.staff_client.get(reverse("operations:operation-certificate", args=[started["id"]]))
    content = b"".join(pdf.streaming_content)
    assert hashlib.sha256(content).hexdigest() == done["certificate_sha256"]
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
    for expected in ("滨海远帆贸易有限公司", "日常经营结算", "Intent confirmed", str(in_call.visit.public_id)):
        assert expected in text
    snapshots = list(in_call.visit.calls.get().snapshots.values_list("sha256", flat=True))
    assert len(snapshots) == 2 and all(f"SHA-256 {sha256}" in text for sha256 in snapshots)
    assert AuditRecord.objects.filter(action="operations.certificate.downloaded").count() == 1


def test_incomplete_script_answers_are_refused(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any], core: Any
) -> None:
    in_call = make_in_call(
        person=KIT,
        business="corporate_intent",
        account_kind=AccountKind.CORPORATE,
        account_status=AccountStatus.INACTIVE,
        company_name="甲公司",
    )
    pass_gates(in_call, on_commit)
    started = _start(in_call).json()
    response = in_call.staff_client.post(
        reverse("operations:operation-confirm", args=[started["id"]]),
        {"answers": {"company_confirmed": True}},
        content_type="application/json",
    )
    assert response.status_code == 400 and response.json()["code"] == "invalid_answers"
    assert Operation.objects.get(public_id=started["id"]).state == OperationState.AWAITING_CONFIRMATION


# --- R6.5: every operation endpoint refuses a service whose gates have not all passed -------------


@pytest.mark.parametrize("upto", ["none", "identity", "face"])
def test_every_operation_endpoint_refuses_before_all_gates_passed(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any], core: Any, upto: str
) -> None:
    in_call = make_in_call(person=KIT, business="activation")
    if upto != "none":
        pass_gates(in_call, on_commit, upto=upto)
    refused = _start(in_call)
    assert refused.status_code == 409 and refused.json()["code"] == "gates_not_passed"
    # An operation forged straight into the database (no service would create it).
    forged = Operation.objects.create(
        visit=in_call.visit,
        call=in_call.call,
        business_code="activation",
        idempotency_key="forged-0001",
        requested_by=in_call.agent.user,
        confirm_by="customer_pin",
    )
    forged_id = str(forged.public_id)
    calls = [
        lambda: _pin(in_call, forged_id, GOOD_PIN),
        lambda: in_call.customer_client.post(
            reverse("operations:visit-operation-confirm", args=[forged_id]),
            {"accept": True},
            content_type="application/json",
        ),
        lambda: in_call.staff_client.post(reverse("operations:operation-confirm", args=[forged_id])),
        lambda: in_call.staff_client.post(reverse("operations:operation-cancel", args=[forged_id])),
        lambda: in_call.staff_client.get(reverse("operations:operation-certificate", args=[forged_id])),
    ]
    for call in calls:
        response = call()
        assert response.status_code == 409 and response.json()["code"] == "gates_not_passed"
    assert Operation.objects.get(pk=forged.pk).state == OperationState.AWAITING_CONFIRMATION
    assert Account.objects.get(pk=in_call.account.pk).status == AccountStatus.INACTIVE
    refusals = AuditRecord.objects.filter(action="gates.request.out_of_order", target_id=str(in_call.visit.pk))
    assert refusals.count() == 1 + len(calls)


def test_the_compliance_evidence_page_lists_the_operation_without_personal_values(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any], core: Any, compliance_officer: Any
) -> None:
    from django.test import Client

    from tests.security.helpers import force_login_verified

    in_call = make_in_call(person=KIT, business="info_maintenance")
    pass_gates(in_call, on_commit)
    body = _start(in_call, changes={"mobile": "13912345678"}).json()
    in_call.customer_client.post(
        reverse("operations:visit-operation-confirm", args=[body["id"]]),
        {"accept": True},
        content_type="application/json",
    )
    officer = force_login_verified(Client(), compliance_officer)
    html = officer.get(f"/console/live/compliance/services/{in_call.visit.public_id}/").content.decode()
    section = html[html.index('id="operations"') :]
    # The field that changed and the result code; not the values.
    assert "mobile" in section and "updated" in section
    assert "13912345678" not in html


def test_an_operation_left_processing_by_a_dead_request_goes_back_to_confirmation(
    activation: InCall, on_commit: Callable[..., Any]
) -> None:
    operation_id = _start(activation).json()["id"]
    # The request that confirmed it died before core banking answered.
    Operation.objects.filter(public_id=operation_id).update(
        state=OperationState.PROCESSING, confirmed_at=timezone.now(), core_attempts=1
    )
    assert operations_stuck_release(now=timezone.now()) == 0  # still within its time
    later = timezone.now() + timedelta(seconds=STUCK_AFTER_SECONDS + 1)
    assert operations_stuck_release(now=later) == 1
    assert Operation.objects.get(public_id=operation_id).state == OperationState.AWAITING_CONFIRMATION
    # The customer enters the PIN again; the same reference is applied once.
    with on_commit():
        done = _pin(activation, operation_id, GOOD_PIN)
    assert done.json()["operation"]["state"] == "succeeded"


def test_a_visit_not_yet_identified_gets_a_clear_refusal_from_the_customer_endpoints(client: Any) -> None:
    """Found by the API fuzzer: a visit still at Gate 1 (no customer yet) posting a PIN or a confirmation."""
    from apps.verification.services import verification_start
    from apps.visits.authentication import SESSION_KEY

    visit = verification_start(business_code="activation", mobile="13912340009").visit
    session = client.session
    session[SESSION_KEY] = visit.pk
    session.save()
    forged = "e3e70682-c209-1cac-a29f-6fbed82c07cd"
    for url, body in (
        (reverse("operations:visit-operation-pin", args=[forged]), {"pin": GOOD_PIN, "pin_repeat": GOOD_PIN}),
        (reverse("operations:visit-operation-confirm", args=[forged]), {"accept": True}),
    ):
        response = client.post(url, body, content_type="application/json")
        assert response.status_code == 409 and response.json()["code"] == "gates_not_passed"
