"""The dispatcher's PostgreSQL connection dropped in the middle of a dispatch (R2.5 under a fault).

A real ``manage.py run_dispatcher`` process starts matching four waiting
customers with two available agents. The test holds the audit chain's
advisory lock (apps/audit/services.py: every append takes it), so the
dispatcher stops inside its first dispatch transaction, after it has locked
and updated the head entry and an agent and before its audit record: the
middle of a dispatch. PostgreSQL then terminates the dispatcher's backend
(``pg_terminate_backend``, as a failover or an administrator would). The
transaction is rolled back whole; the dispatcher loop reconnects and
dispatches again. In the end each entry is offered to at most one agent,
each agent holds at most one offer, the rows agree with each other and with
the audit trail, and the chain verifies.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable

import psycopg
import pytest

from apps.audit.actions import AuditAction
from apps.audit.models import AuditRecord
from apps.audit.services import _CHAIN_LOCK_KEY
from apps.queueing.models import AgentPresence, AgentState, EntryState, QueueEntry
from apps.queueing.services.agents import agent_state_set
from apps.queueing.services.configuration import service_queue_upsert
from apps.staff.models import StaffProfile
from tests.conftest import SYSTEM
from tests.faults.conftest import HeldLock, Processes, assert_audit_chain_verifies, child_database_url, wait_until

pytestmark = [pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]

CUSTOMERS = 4
AGENTS = 2
WAIT_SECONDS = 60


def _terminate(pid: int) -> None:
    with psycopg.connect(child_database_url(), autocommit=True) as admin:
        (terminated,) = admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() or (False,)
    assert terminated, f"backend {pid} was not terminated"


def _unlocked_waiting_entries() -> int:
    """Waiting entries nobody holds a row lock on (the dispatcher holds the one it is offering)."""
    with psycopg.connect(child_database_url()) as probe:
        rows = probe.execute(
            "SELECT id FROM queueing_queueentry WHERE state = 'waiting' FOR UPDATE SKIP LOCKED"
        ).fetchall()
        probe.rollback()
    return len(rows)


def test_a_dispatch_whose_connection_is_killed_leaves_nothing_half_written_and_is_retried(
    processes: Processes,
    make_queued_customer: Callable[..., QueueEntry],
    make_skilled_staff: Callable[..., StaffProfile],
) -> None:
    # Paused while setting up: the dispatch that services schedule on commit
    # runs in this process (eager Celery) and must not match anyone yet.
    service_queue_upsert(actor=SYSTEM, code="activation", name="激活", businesses=["activation"], paused=True)
    for _ in range(CUSTOMERS):
        make_queued_customer()
    for _ in range(AGENTS):
        staff = make_skilled_staff()
        agent_state_set(actor=SYSTEM, staff=staff, state=AgentState.AVAILABLE)
    service_queue_upsert(actor=SYSTEM, code="activation", name="激活", businesses=["activation"], paused=False)
    offers_before = AuditRecord.objects.filter(action=AuditAction.QUEUE_OFFERED).count()
    assert offers_before == 0

    chain_lock = HeldLock.advisory(_CHAIN_LOCK_KEY)
    try:
        dispatcher = processes.start("dispatcher", ["manage.py", "run_dispatcher", "--interval", "0.2"])
        (dispatcher_backend,) = wait_until(
            chain_lock.blocked,
            timeout=WAIT_SECONDS,
            what=f"the dispatch to stop mid-way: {processes.log('dispatcher')}",
        )
        # Mid-transaction: the dispatcher's batch holds the row locks of the waiting line it is matching.
        assert _unlocked_waiting_entries() < CUSTOMERS
        _terminate(dispatcher_backend)
    finally:
        chain_lock.release()

    # Nothing of the killed transaction is visible, and the loop goes on.
    wait_until(
        lambda: dispatcher.poll() is not None or QueueEntry.objects.filter(state=EntryState.OFFERED).count() == AGENTS,
        timeout=WAIT_SECONDS,
        what=f"the dispatcher to retry: {processes.log('dispatcher')}",
    )
    assert dispatcher.poll() is None, processes.log("dispatcher")
    dispatcher.send_signal(signal.SIGTERM)
    assert dispatcher.wait(timeout=20) == 0, processes.log("dispatcher")
    assert "database connection lost; retrying" in processes.log("dispatcher")

    # No double assignment, nothing half-written: rows agree with each other and with the trail.
    offered = list(QueueEntry.objects.filter(state=EntryState.OFFERED))
    assert len({entry.agent_id for entry in offered}) == AGENTS
    for entry in offered:
        assert entry.offers_made == 1 and entry.offer_expires_at is not None
        assert AgentPresence.objects.get(pk=entry.agent_id).state == AgentState.OFFERED
    waiting = QueueEntry.objects.filter(state=EntryState.WAITING)
    assert waiting.count() == CUSTOMERS - AGENTS
    assert not waiting.filter(agent__isnull=False).exists() and not waiting.filter(offers_made__gt=0).exists()
    assert not AgentPresence.objects.filter(state=AgentState.AVAILABLE).exists()
    audited = Counter(
        int(target)
        for target in AuditRecord.objects.filter(action=AuditAction.QUEUE_OFFERED).values_list("target_id", flat=True)
    )
    assert audited == Counter({entry.pk: 1 for entry in offered})
    assert_audit_chain_verifies()
