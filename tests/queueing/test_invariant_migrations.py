"""The invariant migrations repair rows written before them (queueing 0004, calls 0005).

Built from the previous schema with the defects' rows in it: one customer with
two waiting entries, a staff member seated in two live calls, an invited agent
labelled expert. Then the migrations are applied and the constraints hold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from apps.customers.models import Customer
from apps.staff.models import StaffProfile
from apps.staff.roles import Role

BEFORE = [("queueing", "0003_alter_queueentry_visit"), ("calls", "0004_alter_call_visit")]


def _migrate(targets: list[tuple[str, str]]) -> Any:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection).loader.project_state(targets).apps


@pytest.fixture
def schema_restored(transactional_db: None, as_database_owner: None) -> Iterator[None]:
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_a_customer_with_two_waiting_entries_and_a_doubly_seated_agent_are_repaired(
    schema_restored: None, customer: Customer, make_skilled_staff: Callable[..., StaffProfile]
) -> None:
    agent = make_skilled_staff()
    colleague = make_skilled_staff(role=Role.AGENT)
    old = _migrate(BEFORE)
    Visit = old.get_model("visits", "Visit")
    ServiceQueue = old.get_model("queueing", "ServiceQueue")
    QueueEntry = old.get_model("queueing", "QueueEntry")
    Call = old.get_model("calls", "Call")
    CallParticipant = old.get_model("calls", "CallParticipant")
    queue = ServiceQueue.objects.create(code="activation", name="激活", businesses=["activation"])
    now = timezone.now()

    def entry(state: str) -> Any:
        visit = Visit.objects.create(business_code="activation", mobile=customer.mobile, customer_id=customer.pk)
        return QueueEntry.objects.create(
            visit=visit, queue=queue, business_code="activation", level="ordinary", state=state,
            enqueued_at=now, priority_key=now.timestamp(),
        )  # fmt: skip

    older, newer = entry("waiting"), entry("waiting")
    calls = []
    for number in range(2):
        served = entry("served")
        calls.append(Call.objects.create(visit_id=served.visit_id, entry=served, janus_server="j", state="connected"))
        CallParticipant.objects.create(call=calls[-1], role="agent", staff_id=agent.pk, handle=f"a{number}")
    CallParticipant.objects.create(call=calls[1], role="expert", staff_id=colleague.pk, handle="c")

    new = _migrate([("queueing", "0004_entry_customer_one_live_entry_per_customer"),
                    ("calls", "0005_participant_role_assisting_agent_one_live_seat_per_staff")])  # fmt: skip

    entries = new.get_model("queueing", "QueueEntry").objects
    assert entries.get(pk=newer.pk).state == "waiting" and entries.get(pk=newer.pk).customer_id == customer.pk
    assert (entries.get(pk=older.pk).state, entries.get(pk=older.pk).end_reason) == ("abandoned", "superseded")
    seats = new.get_model("calls", "CallParticipant").objects
    assert list(seats.filter(staff_id=agent.pk, left_at__isnull=True).values_list("call_id", flat=True)) == [
        calls[1].pk
    ]
    assert seats.get(staff_id=colleague.pk).role == "assisting_agent"
