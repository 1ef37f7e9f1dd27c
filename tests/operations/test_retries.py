"""Operations survive repeats and failures (R7): double submissions, core banking down or timing out, a dead request."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.audit.models import AuditRecord
from apps.customers.models import Account, AccountStatus
from apps.operations.models import Operation, OperationState
from apps.operations.services import STUCK_AFTER_SECONDS, operations_stuck_release
from tests.operations.conftest import GOOD_PIN, InCall, _pin, _start

pytestmark = pytest.mark.django_db


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
