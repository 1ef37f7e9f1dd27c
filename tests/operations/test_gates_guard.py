"""R6.5: every operation endpoint refuses a service whose gates have not all passed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.urls import reverse

from apps.audit.models import AuditRecord
from apps.customers.models import Account, AccountStatus
from apps.operations.models import Operation, OperationState
from tests.operations.conftest import GOOD_PIN, KIT, InCall, _pin, _start, pass_gates

pytestmark = pytest.mark.django_db


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
