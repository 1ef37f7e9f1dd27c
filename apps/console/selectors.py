"""Read-only queries behind the console pages (what the queueing API does not give)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count
from django.utils import timezone
from django.utils.functional import Promise

from apps.businesses.registry import business_choices
from apps.calls.models import CallParticipant, CallState
from apps.customers.models import CustomerLevel
from apps.queueing.models import AgentPresence, AgentState, EntryState, QueueEntry, QueueSnapshot, ServiceQueue
from apps.queueing.selectors import pending_reason
from apps.staff.models import StaffProfile
from apps.staff.roles import Role

# The waiting list is for eyes, not for export: the same cap as the figures API.
WAITING_LIST_LIMIT = 500


def local_day_start(now: datetime) -> datetime:
    return timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)


def business_labels() -> dict[str, str | Promise]:
    return dict(business_choices())


def level_labels() -> dict[str, str | Promise]:
    return {level.value: level.label for level in CustomerLevel}


@dataclass(frozen=True)
class QueueOption:
    queue_id: int
    code: str
    name: str


def queue_options() -> list[QueueOption]:
    return [QueueOption(pk, code, name) for pk, code, name in ServiceQueue.objects.values_list("pk", "code", "name")]


@dataclass(frozen=True)
class AgentRow:
    staff_id: int
    employee_number: str
    display_name: str
    role: str
    role_label: str | Promise
    state: str
    state_label: str | Promise
    state_since: datetime | None
    services_today: int
    skills: list[str | Promise]


def services_today_by_staff(*, now: datetime | None = None) -> dict[int, int]:
    """Per staff id, the customers they answered since local midnight (from the queue entries themselves)."""
    start = local_day_start(now or timezone.now())
    answered = (
        QueueEntry.objects.filter(answered_at__gte=start, agent__isnull=False)
        .values("agent__staff_id")
        .annotate(n=Count("pk"))
        .values_list("agent__staff_id", "n")
    )
    return dict(answered)


def agent_state_counts(rows: list[AgentRow]) -> dict[str, int]:
    """Agents and experts per state; those who never logged in count as offline (they are)."""
    counts = {state.value: 0 for state in AgentState}
    for row in rows:
        counts[row.state] += 1
    return counts


def console_agents(*, now: datetime | None = None) -> list[AgentRow]:
    """Agents and experts with an active login, and their presence (offline when they never had one)."""
    served = services_today_by_staff(now=now)
    businesses = business_labels()
    staff_members = (
        StaffProfile.objects.filter(role__in=(Role.AGENT, Role.EXPERT), user__is_active=True)
        .select_related("presence")
        .prefetch_related("skills")
        .order_by("employee_number")
    )
    rows = []
    for staff in staff_members:
        # A missing reverse one-to-one raises a subclass of AttributeError.
        presence: AgentPresence | None = getattr(staff, "presence", None)
        state = AgentState(presence.state) if presence else AgentState.OFFLINE
        rows.append(
            AgentRow(
                staff_id=staff.pk,
                employee_number=staff.employee_number,
                display_name=staff.display_name,
                role=staff.role,
                role_label=Role(staff.role).label,
                state=state.value,
                state_label=state.label,
                state_since=presence.state_since if presence else None,
                # Counted from today's answered entries: the presence's own counter follows the UTC date.
                services_today=served.get(staff.pk, 0),
                skills=[businesses.get(skill.business_code, skill.business_code) for skill in staff.skills.all()],
            )
        )
    return rows


@dataclass(frozen=True)
class WaitingRow:
    entry_id: int
    queue_id: int
    queue_code: str
    queue_name: str
    business_label: str | Promise
    level_label: str | Promise
    enqueued_at: datetime
    waited_seconds: float
    state: str
    state_label: str | Promise
    pending_reason: str | Promise


def console_waiting_entries(*, now: datetime | None = None, limit: int = WAITING_LIST_LIMIT) -> list[WaitingRow]:
    """Customers waiting or being offered, queue by queue, in the order they will be served."""
    now = now or timezone.now()
    businesses, levels = business_labels(), level_labels()
    entries = (
        QueueEntry.objects.filter(state__in=(EntryState.WAITING, EntryState.OFFERED))
        .select_related("queue")
        .order_by("queue__code", "priority_key")[:limit]
    )
    return [
        WaitingRow(
            entry_id=entry.pk,
            queue_id=entry.queue_id,
            queue_code=entry.queue.code,
            queue_name=entry.queue.name,
            business_label=businesses.get(entry.business_code, entry.business_code),
            level_label=levels.get(entry.level, entry.level),
            enqueued_at=entry.enqueued_at,
            waited_seconds=max((now - entry.enqueued_at).total_seconds(), 0.0),
            state=entry.state,
            state_label=EntryState(entry.state).label,
            pending_reason=pending_reason(entry=entry),
        )
        for entry in entries
    ]


def waiting_points_today(*, now: datetime | None = None) -> dict[int, list[tuple[float, float]]]:
    """Per queue id, today's snapshots as (local hour with fractions, customers waiting), in time order."""
    start = local_day_start(now or timezone.now())
    snapshots = (
        QueueSnapshot.objects.filter(taken_at__gte=start, taken_at__lt=start + timedelta(days=1))
        .order_by("queue_id", "taken_at")
        .values_list("queue_id", "taken_at", "waiting")
    )
    points: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for queue_id, taken_at, waiting in snapshots:
        local = timezone.localtime(taken_at)
        points[queue_id].append((local.hour + local.minute / 60 + local.second / 3600, float(waiting)))
    return dict(points)


def agent_current_call(*, staff: StaffProfile) -> dict[str, Any] | None:
    """The call the staff member is in (or invited to) right now, for the agent page's snapshot; None if none.

    The call's identity and state only: the page asks ``/api/calls/<call>/``
    for its join credentials (fresh tokens) once, when it joins the room.
    """
    participant = (
        CallParticipant.objects.filter(staff=staff, left_at__isnull=True)
        .exclude(call__state=CallState.ENDED)
        .select_related("call__visit")
        .order_by("-invited_at")
        .first()
    )
    if participant is None:
        return None
    call = participant.call
    return {
        "call": str(call.public_id),
        "state": call.state,
        "role": participant.role,
        "room_ready": call.room_open,
        "business": call.visit.business_code,
    }
