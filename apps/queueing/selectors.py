from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Avg, Count, F, Q
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from apps.queueing.models import AgentPresence, AgentState, EntryState, QueueEntry, ServiceQueue
from apps.queueing.signals import agent_snapshot_requested
from apps.staff.models import AgentSkill, StaffProfile

# Used until a queue has served anyone today.
DEFAULT_HANDLE_SECONDS = 180
_LOGGED_IN = (AgentState.AVAILABLE, AgentState.OFFERED, AgentState.BUSY, AgentState.WRAP_UP)


def entry_position(*, entry: QueueEntry) -> int:
    """1 for the next customer to be offered; 0 when no longer waiting."""
    if entry.state != EntryState.WAITING:
        return 0
    # The same strict order as the dispatcher's and the customer's page: (priority key, ticket).
    ahead = (
        QueueEntry.objects.filter(queue_id=entry.queue_id, state=EntryState.WAITING)
        .filter(Q(priority_key__lt=entry.priority_key) | Q(priority_key=entry.priority_key, ticket__lt=entry.ticket))
        .count()
    )
    return ahead + 1


def entry_place_snapshot(*, entry_id: int) -> dict[str, Any] | None:
    """What the customer's page starts counting from: its place, and the queue version that place is at.

    One SQL statement, so that the count and the version are of the same
    committed moment (a change bumps the version in its own transaction):
    the page then applies exactly the changes with a higher version
    (``static/queueing/position.js``). None if the entry does not exist.
    """
    entries, queues = QueueEntry._meta.db_table, ServiceQueue._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT e.state, e.queue_id, e.priority_key, e.ticket, q.change_version,
              (SELECT count(*) FROM {entries} w WHERE w.queue_id = e.queue_id AND w.state = %s
                 AND (w.priority_key < e.priority_key OR (w.priority_key = e.priority_key AND w.ticket < e.ticket))),
              q.waiting_count
            FROM {entries} e JOIN {queues} q ON q.id = e.queue_id WHERE e.id = %s
            """,  # noqa: S608 - table names are ours, values are parameters
            [EntryState.WAITING.value, entry_id],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    state, queue_id, key, ticket, version, ahead, waiting = row
    return {
        "type": "position",
        "state": state,
        "queue": queue_id,
        "version": int(version),
        "key": float(key),
        "ticket": int(ticket),
        "position": int(ahead) + 1 if state == EntryState.WAITING else 0,
        "waiting": int(waiting),
    }


def queue_resync_message(*, queue: ServiceQueue) -> dict[str, Any]:
    """The periodic resync: the queue's latest version (and size, and wait per place), no changes.

    The same message as a change, so that the page treats both alike; a page
    whose version is behind it has missed a change and asks for a snapshot.
    """
    version, waiting = ServiceQueue.objects.filter(pk=queue.pk).values_list(
        "change_version", "waiting_count"
    ).first() or (0, 0)
    return {
        "type": "queue",
        "queue": queue.pk,
        "version": int(version),
        "waiting": int(waiting),
        "seconds_each": seconds_per_position(queue=queue),
        "resync": True,
        "removed": [],
        "inserted": [],
    }


def seconds_per_position(*, queue: ServiceQueue, now: datetime | None = None) -> float:
    """Estimated wait added by each customer ahead: average handling time / agents serving."""
    now = now or timezone.now()
    start = now - timedelta(hours=12)
    handled = QueueEntry.objects.filter(
        queue=queue, state=EntryState.SERVED, ended_at__gte=start, answered_at__isnull=False
    ).aggregate(average=Avg(F("ended_at") - F("answered_at")))["average"]
    handle_seconds = handled.total_seconds() if handled else DEFAULT_HANDLE_SECONDS
    agents = (
        AgentPresence.objects.filter(state__in=_LOGGED_IN, staff__skills__business_code__in=queue.businesses)
        .distinct()
        .count()
    )
    return handle_seconds / max(agents, 1)


def pending_reason(*, entry: QueueEntry) -> str | Promise:
    """Why this customer is still waiting (shown to supervisors, R2.6)."""
    if entry.state == EntryState.OFFERED:
        return _("Ringing an agent")
    if entry.disconnected_at is not None:
        return _("Page disconnected; waiting for the customer to come back")
    if entry.queue.paused:
        return _("Queue paused")
    skilled = AgentPresence.objects.filter(staff__skills__business_code=entry.business_code)
    if not skilled.filter(state__in=_LOGGED_IN).exists():
        return _("No agent with this skill is logged in")
    if not skilled.filter(state=AgentState.AVAILABLE).exists():
        return _("All skilled agents are busy")
    return _("Customers ahead are being matched")


@dataclass(frozen=True)
class QueueFigures:
    queue_id: int
    code: str
    name: str
    waiting: int
    offered: int
    longest_wait_seconds: float
    average_wait_seconds: float
    service_level: float | None  # share answered within target, today
    abandon_rate: float | None  # share abandoned, today
    paused: bool


def queue_figures(*, now: datetime | None = None) -> list[QueueFigures]:
    """Every queue's figures: two queries per queue (each agent snapshot carries them, issue 18)."""
    now = now or timezone.now()
    day_start = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    figures = []
    for queue in ServiceQueue.objects.order_by("code"):
        live = QueueEntry.objects.filter(queue=queue, state__in=(EntryState.WAITING, EntryState.OFFERED))
        rows = list(live.values_list("state", "enqueued_at"))
        waits = [(now - enqueued).total_seconds() for _state, enqueued in rows]
        in_time = F("enqueued_at") + timedelta(seconds=queue.service_level_seconds)
        counts = QueueEntry.objects.filter(queue=queue, enqueued_at__gte=day_start).aggregate(
            answered=Count("pk", filter=Q(answered_at__isnull=False)),
            within=Count("pk", filter=Q(answered_at__isnull=False, answered_at__lte=in_time)),
            abandoned=Count("pk", filter=Q(state=EntryState.ABANDONED)),
        )
        finished = counts["answered"] + counts["abandoned"]
        figures.append(
            QueueFigures(
                queue_id=queue.pk,
                code=queue.code,
                name=queue.name,
                waiting=sum(1 for state, _enqueued in rows if state == EntryState.WAITING),
                offered=sum(1 for state, _enqueued in rows if state == EntryState.OFFERED),
                longest_wait_seconds=round(max(waits, default=0.0), 1),
                average_wait_seconds=round(sum(waits) / len(waits), 1) if waits else 0.0,
                service_level=round(counts["within"] / finished, 3) if finished else None,
                abandon_rate=round(counts["abandoned"] / finished, 3) if finished else None,
                paused=queue.paused,
            )
        )
    return figures


def agents_by_state() -> dict[str, int]:
    counts = {state.value: 0 for state in AgentState}
    for row in AgentPresence.objects.values("state").annotate(n=Count("pk")):
        counts[row["state"]] = row["n"]
    return counts


def agent_skills(*, presence: AgentPresence) -> list[str]:
    return list(AgentSkill.objects.filter(staff_id=presence.staff_id).values_list("business_code", flat=True))


@dataclass(frozen=True)
class EntryStanding:
    """Where an entry stands: what the customer's page and a supervisor's move are answered with."""

    entry: QueueEntry
    position: int  # 0 once no longer waiting
    estimated_wait_seconds: int


def entry_standing(*, entry: QueueEntry) -> EntryStanding:
    position = entry_position(entry=entry)
    wait = round(position * seconds_per_position(queue=entry.queue)) if position else 0
    return EntryStanding(entry=entry, position=position, estimated_wait_seconds=wait)


def visit_latest_entry(*, visit_id: int) -> QueueEntry | None:
    """The visit's most recent queue entry, live or not (None if it never queued)."""
    return QueueEntry.objects.filter(visit_id=visit_id).select_related("queue").order_by("-pk").first()


@dataclass(frozen=True)
class AgentDesk:
    """What the agent's workspace shows: their state, and the entry ringing at them or in their call."""

    state: str
    entry: QueueEntry | None


def agent_desk(*, staff: StaffProfile) -> AgentDesk:
    presence = AgentPresence.objects.filter(staff=staff).first()
    if presence is None:
        return AgentDesk(state=AgentState.OFFLINE, entry=None)
    entry = (
        QueueEntry.objects.filter(agent=presence, state__in=(EntryState.OFFERED, EntryState.CONNECTED))
        .select_related("visit__customer")
        .first()
    )
    return AgentDesk(state=presence.state, entry=entry)


def agent_snapshot(*, presence_id: int) -> dict[str, Any]:
    """Everything the agent's page shows, JSON-ready: the first message of ``/ws/agent/`` and each push after it.

    Keys: ``state``, ``wrap_up_until``, ``entry`` (ringing at the agent or in
    their call, else None), ``queues`` (the figures of every queue), and what
    higher apps add through ``signals.agent_snapshot_requested`` (``call``).
    """
    presence = AgentPresence.objects.select_related("staff").get(pk=presence_id)
    entry = (
        QueueEntry.objects.filter(agent=presence, state__in=(EntryState.OFFERED, EntryState.CONNECTED))
        .select_related("visit__customer")
        .first()
    )
    snapshot: dict[str, Any] = {
        "type": "snapshot",
        "state": presence.state,
        "wrap_up_until": _instant(presence.wrap_up_until if presence.state == AgentState.WRAP_UP else None),
        "entry": None
        if entry is None
        else {
            "id": entry.pk,
            "state": entry.state,
            "business": entry.business_code,
            "level": entry.level,
            "expires_at": _instant(entry.offer_expires_at),
            "enqueued_at": _instant(entry.enqueued_at),
            "customer": entry.visit.customer.name if entry.visit.customer else "",
        },
    }
    for _receiver, extra in agent_snapshot_requested.send(sender=AgentPresence, staff=presence.staff):
        if isinstance(extra, dict):
            snapshot.update(extra)
    snapshot["queues"] = [asdict(figures) for figures in queue_figures()]
    return snapshot


def agent_snapshot_for_staff(*, staff: StaffProfile | None) -> dict[str, Any] | None:
    """The same snapshot for the page's first paint, or None before the agent ever connected (no presence yet)."""
    presence_id = AgentPresence.objects.filter(staff=staff).values_list("pk", flat=True).first() if staff else None
    return None if presence_id is None else agent_snapshot(presence_id=presence_id)


def _instant(moment: datetime | None) -> str | None:
    """An instant as the queueing API writes it: ISO 8601 in UTC, ``…Z``."""
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# The supervisors' list of waiting customers stops here (the page shows the front of each queue).
SUPERVISOR_WAITING_LIMIT = 500


@dataclass(frozen=True)
class SupervisorFigures:
    """Live figures for supervisors (R2.6): per queue, agents by state, and who waits (offered included)."""

    queues: list[QueueFigures]
    agents: dict[str, int]
    waiting: list[QueueEntry]


def supervisor_figures(*, now: datetime | None = None) -> SupervisorFigures:
    waiting = (
        QueueEntry.objects.filter(state__in=(EntryState.WAITING, EntryState.OFFERED))
        .select_related("queue")
        .order_by("queue__code", "priority_key")[:SUPERVISOR_WAITING_LIMIT]
    )
    return SupervisorFigures(queues=queue_figures(now=now), agents=agents_by_state(), waiting=list(waiting))


def staff_member(*, staff_id: int) -> StaffProfile | None:
    """The staff profile a supervisor acts on, by id (None if there is none)."""
    return StaffProfile.objects.filter(pk=staff_id).first()
