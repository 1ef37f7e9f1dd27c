"""Queueing and routing (R2): every write of the remote counter's queues.

Locking. The dispatcher takes the head waiting entry and an available agent
with ``SELECT … FOR UPDATE SKIP LOCKED``: several dispatchers (processes,
Celery workers, Daphne threads) each take different rows and never wait on
each other; a row another dispatcher holds is simply skipped. The partial
unique index on ``QueueEntry.agent`` backs this up in the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models.sql import Query
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.audit.actions import AuditAction
from apps.audit.services import AnyActor, AuditEntry, audit_record, audit_record_many
from apps.common.errors import NotAllowed, PermissionDenied, ValidationFailed
from apps.common.fsm import fsm_step
from apps.common.locking import lock_object
from apps.queueing import events
from apps.queueing.models import (
    AgentPresence,
    AgentState,
    AgentStrategy,
    EntryState,
    QueueEntry,
    ServiceQueue,
)
from apps.queueing.services._common import (
    DISPATCHER,
    _agent_event,
    _agent_message,
    _entry_event,
    _entry_message,
    _front_key,
    _place,
    _queue_event,
    _schedule_dispatch,
    entry_not_found,
    step_refused,
)
from apps.queueing.signals import queue_entry_connected
from apps.staff.models import AgentSkill, StaffProfile


def _offered_entry_for(user_staff: StaffProfile, entry_id: int) -> tuple[QueueEntry, AgentPresence]:
    entry = lock_object(QueueEntry.objects, not_found=entry_not_found, related=("queue",), pk=entry_id)
    # Only an offered entry may lock its agent's presence (lock order: see _abandon).
    if entry.state != EntryState.OFFERED:
        raise PermissionDenied(_("This offer is not yours, or it has been withdrawn."), code="not_your_offer")
    presence = AgentPresence.objects.select_for_update().filter(staff=user_staff).first()
    if presence is None or entry.agent_id != presence.pk:
        raise PermissionDenied(_("This offer is not yours, or it has been withdrawn."), code="not_your_offer")
    return entry, presence


@transaction.atomic(durable=True)
def offer_accept(*, actor: AnyActor, staff: StaffProfile, entry_id: int, now: datetime | None = None) -> QueueEntry:
    now = now or timezone.now()
    entry, presence = _offered_entry_for(staff, entry_id)
    if entry.offer_expires_at is not None and entry.offer_expires_at < now:
        raise NotAllowed(_("This offer has expired."), code="offer_expired")
    fsm_step(entry.connect, now, error=step_refused)
    fsm_step(presence.answer, now, error=step_refused)
    entry.save()
    presence.save()
    audit_record(
        actor=actor,
        action=AuditAction.QUEUE_OFFER_ACCEPTED,
        target=entry,
        data={"agent": staff.employee_number, "waited_seconds": round((now - entry.enqueued_at).total_seconds(), 1)},
    )
    _entry_event(entry, "connected", agent=staff.display_name)
    _agent_event(presence, "connected", entry=entry.pk)
    queue_entry_connected.send(sender=QueueEntry, entry=entry, staff=staff)
    return entry


def _return_offer(entry: QueueEntry, presence: AgentPresence, *, now: datetime, missed: bool) -> None:
    front = _front_key(entry.queue_id, entry.priority_key)
    fsm_step(entry.back_to_front, front, error=step_refused)
    if not missed:
        fsm_step(presence.offer_declined, now, error=step_refused)
    elif presence.missed_offers_in_row + 1 >= entry.queue.max_missed_offers:
        fsm_step(presence.offer_missed_too_often, now, error=step_refused)
    else:
        fsm_step(presence.offer_missed, now, error=step_refused)
    entry.save()
    presence.save()
    # The caller audits, then calls _queue_event (lock order: _common._queue_event).
    _entry_event(entry, "back_in_queue")
    _agent_event(presence, "offer_missed" if missed else "offer_declined", entry=entry.pk)
    _schedule_dispatch(entry.queue_id)


@transaction.atomic(durable=True)
def offer_decline(*, actor: AnyActor, staff: StaffProfile, entry_id: int, now: datetime | None = None) -> QueueEntry:
    now = now or timezone.now()
    entry, presence = _offered_entry_for(staff, entry_id)
    _return_offer(entry, presence, now=now, missed=False)
    audit_record(
        actor=actor, action=AuditAction.QUEUE_OFFER_DECLINED, target=entry, data={"agent": staff.employee_number}
    )
    _queue_event(entry.queue_id, inserted=[_place(entry)])
    return entry


@transaction.atomic
def queue_entry_offer_to(
    *, actor: AnyActor, entry_id: int, staff: StaffProfile, now: datetime | None = None, transferred_by: str = ""
) -> QueueEntry:
    """Ring one named agent with a waiting entry (a transfer to a named colleague, R1.2).

    The agent must be available and skilled for the business; otherwise 409
    ``transfer_target_unavailable`` or 400 ``transfer_target_not_skilled``.
    Declining or missing it puts the customer back at the FRONT of the queue,
    as any offer. Lock order as the dispatcher's: entry, then presence.
    """
    now = now or timezone.now()
    entry = lock_object(QueueEntry.objects, not_found=entry_not_found, related=("queue",), pk=entry_id)
    presence = AgentPresence.objects.select_for_update().filter(staff=staff).first()
    if presence is None or presence.state != AgentState.AVAILABLE:
        raise NotAllowed(
            _("This colleague is not available right now."),
            code="transfer_target_unavailable",
            extra={"state": presence.state if presence else AgentState.OFFLINE},
        )
    if not AgentSkill.objects.filter(staff=staff, business_code=entry.business_code).exists():
        raise ValidationFailed(
            _("This colleague is not skilled for the customer's business."), code="transfer_target_not_skilled"
        )
    _ring(entry, presence, now=now, actor=actor, audit_data={"transferred_by": transferred_by})
    return entry


def _ring(
    entry: QueueEntry, presence: AgentPresence, *, now: datetime, actor: AnyActor, audit_data: dict[str, Any]
) -> None:
    """Offer ``entry`` to ``presence`` (both locked by the caller): steps, saves, audit and after-commit events."""
    expires = now + timedelta(seconds=entry.queue.offer_timeout_seconds)
    fsm_step(entry.offer, presence, expires, error=step_refused)
    fsm_step(presence.ring, now, error=step_refused)
    entry.save()
    presence.save()
    audit_record(
        actor=actor,
        action=AuditAction.QUEUE_OFFERED,
        target=entry,
        data={"agent": presence.staff.employee_number, "offer": entry.offers_made, **audit_data},
    )
    _queue_event(entry.queue_id, removed=[_place(entry)])
    _entry_event(entry, "offered")
    _agent_event(presence, "offer", entry=entry.pk, expires_at=expires.isoformat(), business=entry.business_code)


# --- The dispatcher ----------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    entry_id: int
    agent_id: int
    queue_id: int


# How many offers one dispatch transaction makes at most (issue 18: batched
# dispatch). A batch has a fixed cost of about 10 ms (its queries, COMMIT, one
# Redis send) whatever its size, and holds its rows' locks until COMMIT:
# measured 2026-12-03 (bench/queue_dispatch_bench.py, one process, 10,000
# waiting, 1,000 agents), 50 per batch made 697 assignments/s at p99 56 ms
# per batch, 16 made 690–691/s at p99 23–25 ms, 10 made 648/s at p99 23 ms.
DISPATCH_BATCH_SIZE = 16


# The order of a queue's free agents by its strategy (R2.3), in SQL over the
# presence ``p`` and the skill ``s`` of the business being matched.
_AGENT_ORDER: dict[str, tuple[str, bool]] = {
    AgentStrategy.FEWEST_SERVICES: (
        "CASE WHEN p.services_date = %s THEN p.services_today ELSE 0 END, p.idle_since, p.id",
        True,  # takes today's date
    ),
    AgentStrategy.HIGHEST_PROFICIENCY: ("s.proficiency DESC, p.idle_since, p.id", False),
}
_LONGEST_IDLE_ORDER = ("p.idle_since, p.id", False)


@dataclass(frozen=True, slots=True)
class _FreeAgent:
    """A free agent's presence row as read; a model instance is built only for an agent matched.

    A batch reads up to ``limit`` agents per business and matches at most
    ``limit`` in all: building every candidate (presence and staff profile,
    with django-fsm's bookkeeping per instance) was about half the model
    instances of a batch, and model construction was the largest Python
    cost in a cProfile of ``dispatch_batch`` after the database calls
    (issue 18, 2026-12-04).
    """

    values: tuple[Any, ...]  # the presence's concrete fields, in _PRESENCE_ATTNAMES order
    employee_number: str

    @property
    def pk(self) -> int:
        return int(self.values[0])

    def presence(self) -> AgentPresence:
        """The presence instance, as ``AgentPresence.objects.raw`` would give it; the staff profile carries only its employee number."""
        agent = AgentPresence.from_db(connection.alias, _PRESENCE_ATTNAMES, self.values)
        agent.staff = StaffProfile.from_db(
            connection.alias, ["id", "employee_number"], [agent.staff_id, self.employee_number]
        )
        return agent


_PRESENCE_ATTNAMES = [field.attname for field in AgentPresence._meta.concrete_fields]


def _free_agents_by_business(queue: ServiceQueue, now: datetime, limit: int) -> dict[str, list[_FreeAgent]]:
    """Per business of the queue, its ``limit`` best free agents by the strategy, locked (SKIP LOCKED).

    ``limit`` per business is enough to make the same choices as one offer
    at a time: a batch makes at most ``limit`` offers, so before its last one
    at most ``limit - 1`` agents are taken and a full list still has one left.

    ONE statement for all the queue's businesses (a locked, ordered and
    limited sub-select per business, glued with UNION ALL), written in SQL:
    the ORM's version was a query per business, each compiled anew, with
    every agent's whole staff row (issue 18, dispatch p99 per batch: with the
    audit's plain INSERT, a batch's p50 went from 10.7–12.2 to 9.2–10.0 ms in
    a 400-batch A/B on 2026-12-04). Each agent comes with only its staff
    profile's employee number (for the audit record). An unknown strategy
    orders as longest idle.
    """
    order, takes_date = _AGENT_ORDER.get(queue.agent_strategy, _LONGEST_IDLE_ORDER)
    lock = " FOR UPDATE OF p SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    presence_table, skill_table = AgentPresence._meta.db_table, AgentSkill._meta.db_table
    staff_table = StaffProfile._meta.db_table
    columns = ", ".join(f"p.{field.column}" for field in AgentPresence._meta.concrete_fields)
    parts: list[str] = []
    params: list[Any] = []
    for n, business in enumerate(queue.businesses):
        # The staff row is joined outside the locked sub-select: 16 lookups by key, and half the planning time.
        parts.append(
            f"SELECT b{n}.*, st.employee_number AS employee_number FROM (SELECT {columns}, %s AS business "  # noqa: S608
            f"FROM {presence_table} p JOIN {skill_table} s ON s.staff_id = p.staff_id "
            f"WHERE p.state = %s AND s.business_code = %s ORDER BY {order} LIMIT %s{lock}) AS b{n} "
            f"JOIN {staff_table} st ON st.id = b{n}.staff_id"
        )
        params += [business, AgentState.AVAILABLE.value, business, *([now.date()] if takes_date else []), limit]
    by_business: dict[str, list[_FreeAgent]] = {}
    if not parts:
        return by_business
    width = len(_PRESENCE_ATTNAMES)
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        rows: Iterable[Sequence[Any]] = cursor.fetchall()
    # The database's values as the ORM would convert them (none on PostgreSQL; SQLite's datetimes are text).
    compiler = connection.ops.compiler("SQLCompiler")(Query(AgentPresence), connection, None)
    converters = compiler.get_converters(
        [field.get_col(presence_table) for field in AgentPresence._meta.concrete_fields]
    )
    if converters:
        rows = compiler.apply_converters(rows, converters)
    for row in rows:
        by_business.setdefault(row[width], []).append(_FreeAgent(tuple(row[:width]), row[width + 1]))
    return by_business


def _waiting_chunk(
    queue: ServiceQueue, *, businesses: list[str], after: QueueEntry | None, limit: int
) -> list[QueueEntry]:
    """The next ``limit`` waiting, connected entries of ``businesses`` in queue order after ``after``, locked (SKIP LOCKED).

    In SQL rather than the ORM for the same reason as the agents (a batch's
    p50 fell by 0.5–2.8 ms in a 400-batch A/B on 2026-12-04); the order is
    (priority key, ticket, id), resumed after the last entry of the previous chunk.
    """
    lock = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    columns = ", ".join(field.column for field in QueueEntry._meta.concrete_fields)
    params: list[Any] = [queue.pk, EntryState.WAITING.value, *businesses]
    resume = ""
    if after is not None:
        resume = " AND (priority_key, ticket, id) > (%s, %s, %s)"
        params += [after.priority_key, after.ticket, after.pk]
    entries = list(
        QueueEntry.objects.raw(
            f"SELECT {columns} FROM {QueueEntry._meta.db_table} "  # noqa: S608 - our names, values are parameters
            f"WHERE queue_id = %s AND state = %s AND disconnected_at IS NULL "
            f"AND business_code IN ({', '.join(['%s'] * len(businesses))}){resume} "
            f"ORDER BY priority_key, ticket, id LIMIT %s{lock}",
            [*params, limit],
        )
    )
    for entry in entries:
        entry.queue = queue  # already loaded; spares a query for the audit label
    return entries


def _match(
    queue: ServiceQueue, by_business: dict[str, list[_FreeAgent]], limit: int
) -> list[tuple[QueueEntry, AgentPresence]]:
    """Walk the waiting line in order (locking it chunk by chunk, SKIP LOCKED) and give each entry the best free agent."""
    taken: set[int] = set()
    matches: list[tuple[QueueEntry, AgentPresence]] = []
    after: QueueEntry | None = None
    # A full list of agents per business never runs out before ``limit`` offers (see
    # _free_agents_by_business), so one chunk of ``limit`` entries is usually all it takes.
    chunk = limit
    while len(matches) < limit and by_business:
        entries = _waiting_chunk(queue, businesses=list(by_business), after=after, limit=chunk)
        for entry in entries:
            after = entry
            candidates = by_business.get(entry.business_code)
            while candidates and candidates[0].pk in taken:
                candidates.pop(0)
            if not candidates:
                by_business.pop(entry.business_code, None)  # nobody left for it: its entries wait
                continue
            agent = candidates.pop(0)
            taken.add(agent.pk)
            matches.append((entry, agent.presence()))
            if len(matches) >= limit:
                break
        if len(entries) < chunk:
            break
    return matches


def _offers_write(matches: list[tuple[QueueEntry, AgentPresence]], *, expires: datetime, now: datetime) -> None:
    """The batch's row changes (already stepped in memory, rows locked): one UPDATE per table.

    On PostgreSQL a join on a VALUES list: ``bulk_update``'s CASE per field
    costs milliseconds of Python per batch; elsewhere (a local SQLite run) ``bulk_update``.
    """
    if connection.vendor != "postgresql":
        QueueEntry.objects.bulk_update([e for e, _ in matches], ["state", "agent", "offer_expires_at", "offers_made"])
        AgentPresence.objects.bulk_update([a for _, a in matches], ["state", "state_since"])
        return
    rows = ", ".join(["(%s::bigint, %s::bigint, %s::smallint)"] * len(matches))
    values: list[Any] = [value for entry, agent in matches for value in (entry.pk, agent.pk, entry.offers_made)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {QueueEntry._meta.db_table} AS e SET state = %s, agent_id = v.agent, "  # noqa: S608
            f"offer_expires_at = %s, offers_made = v.offers FROM (VALUES {rows}) AS v(entry, agent, offers) "
            "WHERE e.id = v.entry",
            [EntryState.OFFERED.value, expires, *values],
        )
        cursor.execute(
            f"UPDATE {AgentPresence._meta.db_table} SET state = %s, state_since = %s WHERE id = ANY(%s)",  # noqa: S608
            [AgentState.OFFERED.value, now, [agent.pk for _, agent in matches]],
        )


def dispatch_batch(*, queue_id: int, now: datetime | None = None, limit: int = DISPATCH_BATCH_SIZE) -> list[Offer]:
    """Offer up to ``limit`` waiting customers of one queue to available agents, in ONE transaction.

    The same decisions as offering one customer at a time: waiting entries in
    queue order (priority key, ticket), skipping businesses nobody available
    can serve right now, each to the best free agent for its business by the
    queue's strategy. Set-based: the free agents and the head of the queue are
    read and locked with ``FOR UPDATE SKIP LOCKED`` (rows another dispatcher
    holds are skipped, never waited for, so any number of dispatchers run at
    once; the partial unique indexes back this up), matched in memory, then
    written with one UPDATE per table, one audit INSERT and one queue change
    message; all the batch's events go to one async sender after commit.
    """
    now = now or timezone.now()
    # Not durable: the WebSocket bench wraps a dispatch in its own transaction to time its commit.
    with transaction.atomic():
        queue = ServiceQueue.objects.get(pk=queue_id)
        if queue.paused or limit < 1:
            return []
        by_business = _free_agents_by_business(queue, now, limit)
        matches = _match(queue, by_business, limit) if by_business else []
        if not matches:
            return []
        expires = now + timedelta(seconds=queue.offer_timeout_seconds)
        for entry, agent in matches:
            fsm_step(entry.offer, agent, expires, error=step_refused)
            fsm_step(agent.ring, now, error=step_refused)
        _offers_write(matches, expires=expires, now=now)
        audit_record_many(
            entries=[
                AuditEntry(
                    actor=DISPATCHER,
                    action=AuditAction.QUEUE_OFFERED,
                    target=entry,
                    data={
                        "agent": agent.staff.employee_number,
                        "offer": entry.offers_made,
                        "strategy": queue.agent_strategy,
                    },
                )
                for entry, agent in matches
            ]
        )
        change = _queue_event(queue.pk, removed=[_place(entry) for entry, _ in matches], broadcast=False)
        # One send for the batch, the queue's change first (as it was when sent on its own).
        messages = [(events.queue_group(queue.pk), events.queue_message(change))]
        for entry, agent in matches:
            messages.append(_entry_message(entry, "offered"))
            messages.append(
                _agent_message(
                    agent, "offer", entry=entry.pk, expires_at=expires.isoformat(), business=entry.business_code
                )
            )
        events.broadcast_many_on_commit(messages)
        return [Offer(entry.pk, agent.pk, queue.pk) for entry, agent in matches]


def dispatch_queue(*, queue_id: int, now: datetime | None = None) -> Offer | None:
    """Offer the best waiting customer of one queue to the best available agent, if any.

    Returns the offer made, or None when nobody can be matched right now. A
    batch of one: the same code as ``dispatch_batch``.
    """
    offers = dispatch_batch(queue_id=queue_id, now=now, limit=1)
    return offers[0] if offers else None


def dispatch_all(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Dispatch every queue, a batch at a time, until no more matches; returns the number of offers made."""
    made = 0
    for queue_id in ServiceQueue.objects.filter(paused=False).values_list("pk", flat=True):
        while made < limit:
            offers = dispatch_batch(queue_id=queue_id, now=now, limit=min(DISPATCH_BATCH_SIZE, limit - made))
            made += len(offers)
            if not offers:
                break
    return made
