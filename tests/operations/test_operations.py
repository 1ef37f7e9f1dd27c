"""The five businesses end to end through the API and the customer's session (R7)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from django.urls import reverse
from pypdf import PdfReader

from apps.audit.models import AuditRecord
from apps.audit.selectors import audit_chain_verify
from apps.common.checksums import uscc_is_valid
from apps.customers.integrations.core_banking import SandboxCoreBanking, get_core_banking
from apps.customers.integrations.pin_block import pin_verification_matches
from apps.customers.models import Account, AccountKind, AccountStatus, Customer
from apps.operations.models import Operation, OperationState
from apps.visits.models import VisitOutcome
from tests.conftest import make_id_number
from tests.operations.conftest import GOOD_PIN, KIT, InCall, _pin, _start, capture, pass_gates, person_photos

pytestmark = pytest.mark.django_db


def _everything_recorded(in_call: InCall) -> str:
    """Every audit record's data and every staff-side response, as one text to search."""
    records = AuditRecord.objects.values_list("data", flat=True)
    staff_side = [
        in_call.staff_client.get(reverse("operations:call-operations", args=[in_call.call.public_id])).content,
        in_call.staff_client.get(reverse("gates:call-gates", args=[in_call.call.public_id])).content,
        in_call.staff_client.get(reverse("console:agent")).content,
    ]
    return json.dumps(list(records), ensure_ascii=False) + "".join(part.decode() for part in staff_side)


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
    assert pin_verification_matches(account.pin_hash, GOOD_PIN, account_number=account.number)
    assert GOOD_PIN not in account.pin_hash
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


def test_password_reset_replaces_the_pin_hash(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any], core: Any
) -> None:
    in_call = make_in_call(person=KIT, business="password_reset")
    pass_gates(in_call, on_commit)
    operation_id = _start(in_call).json()["id"]
    assert _pin(in_call, operation_id, "602817").json()["operation"]["state"] == "succeeded"
    account = Account.objects.get(pk=in_call.account.pk)
    assert pin_verification_matches(account.pin_hash, "602817", account_number=account.number)
    assert not pin_verification_matches(account.pin_hash, "602818", account_number=account.number)
    assert account.status == AccountStatus.NORMAL


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


def _corporate(make_in_call: Callable[..., InCall], company: str = "滨海远帆贸易有限公司") -> InCall:
    return make_in_call(
        person=KIT,
        business="corporate_intent",
        account_kind=AccountKind.CORPORATE,
        account_status=AccountStatus.INACTIVE,
        company_name=company,
    )


def _intent(in_call: InCall, operation_id: str, answers: dict[str, Any]) -> Any:
    return in_call.customer_client.post(
        reverse("operations:visit-operation-intent", args=[operation_id]),
        {"answers": answers},
        content_type="application/json",
    )


def test_corporate_intent_is_checked_against_core_banking_and_answered_on_the_phone(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any], core: Any
) -> None:
    in_call = _corporate(make_in_call)
    pass_gates(in_call, on_commit)
    started = _start(in_call).json()
    application = get_core_banking().account_opening_application(account_number=in_call.visit.account.number)
    assert started["confirm_by"] == "customer_intent"
    assert started["details"]["application"] == application.number
    assert started["details"]["credit_code"] == application.credit_code and uscc_is_valid(application.credit_code)
    assert [line["key"] for line in started["script"]] == ["company_confirmed", "purpose", "intent"]
    # The questions are on the legal representative's phone; the agent cannot answer for them.
    waiting = in_call.customer_client.get(reverse("operations:visit-operation")).json()["operation"]
    assert "滨海远帆贸易有限公司" in waiting["script"][0]["text"]
    agent = in_call.staff_client.post(
        reverse("operations:operation-confirm", args=[started["id"]]), {}, content_type="application/json"
    )
    assert (agent.status_code, agent.json()["code"]) == (409, "wrong_confirmer")
    capture(in_call, person_photos(KIT)[0])
    answers = {"company_confirmed": True, "purpose": "日常经营结算", "intent": True}
    with on_commit():
        answered = _intent(in_call, started["id"], answers)
    assert answered.status_code == 200 and answered.json()["operation"]["result"] == "intent_confirmed"
    done = Operation.objects.get(public_id=started["id"])
    assert done.state == "succeeded" and done.certificate
    in_call.visit.refresh_from_db()
    assert in_call.visit.outcome == VisitOutcome.COMPLETED
    assert get_core_banking().account_opening_application(account_number=in_call.visit.account.number).status == (
        "intent_confirmed"
    )
    pdf = in_call.staff_client.get(reverse("operations:operation-certificate", args=[started["id"]]))
    content = b"".join(pdf.streaming_content)
    assert hashlib.sha256(content).hexdigest() == done.certificate_sha256
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
    for expected in (
        "滨海远帆贸易有限公司", "日常经营结算", "Intent confirmed", str(in_call.visit.public_id),
        application.number, application.credit_code,
    ):  # fmt: skip
        assert expected in text
    snapshots = list(in_call.visit.calls.get().snapshots.values_list("sha256", flat=True))
    assert len(snapshots) == 2 and all(f"SHA-256 {sha256}" in text for sha256 in snapshots)
    assert AuditRecord.objects.filter(action="operations.certificate.downloaded").count() == 1


def test_a_legal_representative_who_refuses_ends_the_service_as_refused_not_completed(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any], core: Any
) -> None:
    in_call = _corporate(make_in_call)
    pass_gates(in_call, on_commit)
    started = _start(in_call).json()
    with on_commit():
        answered = _intent(in_call, started["id"], {"company_confirmed": True, "purpose": "结算", "intent": False})
    assert answered.json()["operation"]["result"] == "intent_refused"
    in_call.visit.refresh_from_db()
    assert (in_call.visit.outcome, in_call.visit.outcome_reason) == (VisitOutcome.INTENT_REFUSED, "intent_refused")
    assert get_core_banking().account_opening_application(account_number=in_call.visit.account.number).status == (
        "intent_refused"
    )


def test_a_legal_representative_other_than_the_verified_person_is_refused_and_recorded(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any], core: Any
) -> None:
    in_call = _corporate(make_in_call)
    pass_gates(in_call, on_commit)
    sandbox = get_core_banking()
    assert isinstance(sandbox, SandboxCoreBanking)
    own = sandbox.account_opening_application(account_number=in_call.visit.account.number)
    someone_else = dataclasses.replace(own, legal_rep_name="李四", legal_rep_id_number=make_id_number(order=777))
    sandbox.application_register(someone_else)
    refused = _start(in_call)
    assert (refused.status_code, refused.json()["code"]) == (409, "legal_rep_mismatch")
    assert refused.json()["details"]["mismatched"] == ["name", "id_number"]
    assert not Operation.objects.filter(visit=in_call.visit).exists()
    record = AuditRecord.objects.get(action="operations.operation.refused", target_id=str(in_call.visit.pk))
    assert record.data["code"] == "legal_rep_mismatch"
    # A company record whose credit code fails its check is refused too.
    broken = dataclasses.replace(own, credit_code=own.credit_code[:17] + ("0" if own.credit_code[17] != "0" else "1"))
    sandbox.application_register(broken)
    assert _start(in_call).json()["code"] == "company_record_invalid"
    assert audit_chain_verify().intact


def test_incomplete_script_answers_are_refused(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any], core: Any
) -> None:
    in_call = _corporate(make_in_call, company="甲公司")
    pass_gates(in_call, on_commit)
    started = _start(in_call).json()
    for answers in ({"company_confirmed": True}, {"company_confirmed": True, "purpose": " ", "intent": True}):
        response = _intent(in_call, started["id"], answers)
        assert response.status_code == 400 and response.json()["code"] == "invalid_answers"
    assert Operation.objects.get(public_id=started["id"]).state == OperationState.AWAITING_CONFIRMATION


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
