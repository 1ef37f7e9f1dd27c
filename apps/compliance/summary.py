"""Reads for the daily summary report (R8.2): services, gate pass rates, wait, handling time, service level.

For a day (or a range of days, both ends included, in the platform's time
zone) and one grouping — branch, agent or business — the report is three
aggregate queries, each grouped in the database (no loop over the visits):

- visits started in the period: how many, how they ended (``outcome``),
  Gate 1 (reached ``queue_ready`` vs refused) and gates 2–4 (``GateProgress``:
  a gate's ``*_passed_at`` set vs ``failed_gate``);
- queue entries that joined in the period: average wait (enqueued → answered)
  and service level (answered within the queue's ``service_level_seconds``,
  over the entries that ended: answered or abandoned);
- calls connected in the period and ended: average handling time
  (connected → ended).

A visit belongs to the agent of its first call (and that agent's branch); a
queue entry to the agent who answered it; a call to its agent. Visits never
served (refused at Gate 1, abandoned in the queue) fall under "no agent".
Only the services the user may see count (``visits_visible_to``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from django.db import models
from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, OuterRef, Q, QuerySet, Subquery
from django.utils.dateparse import parse_date
from django.utils.translation import gettext_lazy as _

from apps.businesses.registry import business_choices
from apps.calls.models import Call, CallParticipant, ParticipantRole
from apps.calls.selectors import visits_visible_to
from apps.common.errors import ValidationFailed
from apps.compliance.selectors import _end_of, _start_of
from apps.customers.models import Branch
from apps.gates.models import Gate
from apps.queueing.models import EntryState, QueueEntry, ServiceQueue
from apps.staff.models import StaffProfile
from apps.verification.models import VerificationState
from apps.visits.models import Visit, VisitOutcome

# Longest range one report covers (a report of a year is an export's job, not a page's).
MAX_RANGE_DAYS = 92


class SummaryGrouping(models.TextChoices):
    BRANCH = "branch", _("Branch")
    AGENT = "agent", _("Agent")
    BUSINESS = "business", _("Business")


GATE_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("gate1", _("Gate 1")),
    (Gate.IDENTITY.value, _("Gate 2")),
    (Gate.FACE.value, _("Gate 3")),
    (Gate.QUESTIONS.value, _("Gate 4")),
)
_PASSED_AT = {Gate.IDENTITY: "identity_passed_at", Gate.FACE: "face_passed_at", Gate.QUESTIONS: "questions_passed_at"}


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass
class SummaryRow:
    """One group's figures. Rates are 0–1, or None when nothing was counted."""

    key: Any
    label: str
    started: int = 0
    completed: int = 0
    refused: int = 0
    gate_failed: int = 0
    abandoned: int = 0
    # gate code → (passed, failed); "gate1" is Gate 1.
    gates: dict[str, tuple[int, int]] = field(default_factory=dict)
    answered: int = 0
    wait_seconds_total: float = 0.0
    entries_ended: int = 0
    answered_within_target: int = 0
    calls_handled: int = 0
    handling_seconds_total: float = 0.0

    def pass_rate(self, gate: str) -> float | None:
        passed, failed = self.gates.get(gate, (0, 0))
        return _rate(passed, passed + failed)

    @property
    def pass_rates(self) -> list[float | None]:
        return [self.pass_rate(gate) for gate, _label in GATE_COLUMNS]

    @property
    def average_wait_seconds(self) -> float | None:
        return self.wait_seconds_total / self.answered if self.answered else None

    @property
    def average_handling_seconds(self) -> float | None:
        return self.handling_seconds_total / self.calls_handled if self.calls_handled else None

    @property
    def service_level(self) -> float | None:
        return _rate(self.answered_within_target, self.entries_ended)

    def add(self, other: SummaryRow) -> None:
        for name in (
            "started",
            "completed",
            "refused",
            "gate_failed",
            "abandoned",
            "answered",
            "wait_seconds_total",
            "entries_ended",
            "answered_within_target",
            "calls_handled",
            "handling_seconds_total",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for gate, (passed, failed) in other.gates.items():
            mine = self.gates.get(gate, (0, 0))
            self.gates[gate] = (mine[0] + passed, mine[1] + failed)


@dataclass(frozen=True)
class SummaryReport:
    date_from: date
    date_to: date
    grouping: str
    rows: list[SummaryRow]
    total: SummaryRow


def summary_period_parse(*, date_from: str | None, date_to: str | None, today: date) -> tuple[date, date]:
    """The report's days from the query string: one day (``from`` only, or none: today) or a range."""

    def parsed(value: str | None, name: str) -> date | None:
        if not value:
            return None
        try:
            result = parse_date(value)
        except ValueError:
            result = None
        if result is None:
            raise ValidationFailed(
                _("%(field)s must be a date such as 2026-01-31.") % {"field": name},
                code="invalid_date",
                extra={"field": name},
            )
        return result

    start = parsed(date_from, "from") or today
    end = parsed(date_to, "to") or start
    if end < start:
        raise ValidationFailed(_("The period ends before it starts."), code="invalid_period", extra={"field": "to"})
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        raise ValidationFailed(
            _("A report covers at most %(days)d days.") % {"days": MAX_RANGE_DAYS},
            code="period_too_long",
            extra={"field": "to"},
        )
    return start, end


def _seconds(value: Any) -> float:
    """An average duration from the database as seconds (a timedelta; SQLite may give microseconds)."""
    if value is None:
        return 0.0
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value) / 1_000_000


def _duration(end: str, start: str) -> ExpressionWrapper:
    return ExpressionWrapper(F(end) - F(start), output_field=DurationField())


def _first_agent(visit_ref: str, column: str) -> Subquery:
    """The agent (or their ``column``) of the first call of the visit ``visit_ref`` points at."""
    return Subquery(
        CallParticipant.objects.filter(call__visit=OuterRef(visit_ref), role=ParticipantRole.AGENT)
        .order_by("call__created_at", "invited_at", "pk")
        .values(column)[:1]
    )


def _call_agent(column: str) -> Subquery:
    return Subquery(
        CallParticipant.objects.filter(call=OuterRef("pk"), role=ParticipantRole.AGENT)
        .order_by("invited_at", "pk")
        .values(column)[:1]
    )


def _visit_counts(visits: QuerySet[Visit], grouping: str) -> Iterable[Any]:
    if grouping == SummaryGrouping.BUSINESS:
        keyed = visits.annotate(group_key=F("business_code"))
    elif grouping == SummaryGrouping.AGENT:
        keyed = visits.annotate(group_key=_first_agent("pk", "staff_id"))
    else:
        keyed = visits.annotate(group_key=_first_agent("pk", "staff__branch_id"))
    gate_counts: dict[str, Any] = {}
    for gate, column in _PASSED_AT.items():
        gate_counts[f"{gate}_passed"] = Count("pk", filter=Q(**{f"gate_progress__{column}__isnull": False}))
        gate_counts[f"{gate}_failed"] = Count("pk", filter=Q(gate_progress__failed_gate=gate))
    return (
        keyed.values("group_key")
        .annotate(
            started=Count("pk"),
            completed=Count("pk", filter=Q(outcome=VisitOutcome.COMPLETED)),
            refused=Count("pk", filter=Q(outcome=VisitOutcome.REFUSED)),
            gate_failed=Count("pk", filter=Q(outcome=VisitOutcome.GATE_FAILED)),
            abandoned=Count("pk", filter=Q(outcome=VisitOutcome.ABANDONED)),
            gate1_passed=Count("pk", filter=Q(verification__state=VerificationState.QUEUE_READY)),
            gate1_failed=Count("pk", filter=Q(verification__state=VerificationState.REFUSED)),
            **gate_counts,
        )
        .order_by()
    )


def _entry_counts(entries: QuerySet[QueueEntry], grouping: str) -> Iterable[Any]:
    key = {
        SummaryGrouping.BUSINESS: F("business_code"),
        SummaryGrouping.AGENT: F("agent__staff_id"),
        SummaryGrouping.BRANCH: F("agent__staff__branch_id"),
    }[SummaryGrouping(grouping)]
    # Each queue has its own target; queues are few (configuration), so the
    # condition is one OR over them, still evaluated in the database.
    within = Q(pk__isnull=True)  # false: the start of the OR
    for queue_id, seconds in ServiceQueue.objects.values_list("pk", "service_level_seconds"):
        within |= Q(queue_id=queue_id, answered_at__lte=F("enqueued_at") + timedelta(seconds=seconds))
    answered = Q(answered_at__isnull=False)
    return (
        entries.annotate(group_key=key)
        .values("group_key")
        .annotate(
            answered=Count("pk", filter=answered),
            average_wait=Avg(_duration("answered_at", "enqueued_at"), filter=answered),
            entries_ended=Count("pk", filter=answered | Q(state=EntryState.ABANDONED)),
            answered_within_target=Count("pk", filter=answered & within),
        )
        .order_by()
    )


def _call_counts(calls: QuerySet[Call], grouping: str) -> Iterable[Any]:
    if grouping == SummaryGrouping.BUSINESS:
        keyed = calls.annotate(group_key=F("visit__business_code"))
    elif grouping == SummaryGrouping.AGENT:
        keyed = calls.annotate(group_key=_call_agent("staff_id"))
    else:
        keyed = calls.annotate(group_key=_call_agent("staff__branch_id"))
    return (
        keyed.values("group_key")
        .annotate(handled=Count("pk"), average_handling=Avg(_duration("ended_at", "connected_at")))
        .order_by()
    )


def _labels(grouping: str, keys: Iterable[Any]) -> dict[Any, str]:
    keys = [key for key in keys if key is not None]
    if grouping == SummaryGrouping.BUSINESS:
        return {code: str(label) for code, label in business_choices()}
    if grouping == SummaryGrouping.AGENT:
        return {
            pk: f"{number} {name}"
            for pk, number, name in StaffProfile.objects.filter(pk__in=keys).values_list(
                "pk", "employee_number", "display_name"
            )
        }
    return {
        pk: f"{code} {name}" for pk, code, name in Branch.objects.filter(pk__in=keys).values_list("pk", "code", "name")
    }


def daily_summary(*, user: Any, date_from: date, date_to: date, grouping: str) -> SummaryReport:
    """The summary of the days ``date_from``–``date_to`` (inclusive) for the services ``user`` may see."""
    grouping = SummaryGrouping(grouping).value
    start, end = _start_of(date_from), _end_of(date_to)
    visible = visits_visible_to(user=user).values("pk")
    visits = Visit.objects.filter(pk__in=visible, created_at__gte=start, created_at__lt=end)
    entries = QueueEntry.objects.filter(visit__in=visible, enqueued_at__gte=start, enqueued_at__lt=end)
    calls = Call.objects.filter(
        visit__in=visible, connected_at__gte=start, connected_at__lt=end, ended_at__isnull=False
    )

    rows: dict[Any, SummaryRow] = {}

    def row(key: Any) -> SummaryRow:
        if key not in rows:
            rows[key] = SummaryRow(key=key, label="")
        return rows[key]

    for counts in _visit_counts(visits, grouping):
        target = row(counts["group_key"])
        for name in ("started", "completed", "refused", "gate_failed", "abandoned"):
            setattr(target, name, counts[name])
        target.gates["gate1"] = (counts["gate1_passed"], counts["gate1_failed"])
        for gate in _PASSED_AT:
            target.gates[gate.value] = (counts[f"{gate}_passed"], counts[f"{gate}_failed"])
    for counts in _entry_counts(entries, grouping):
        target = row(counts["group_key"])
        target.answered = counts["answered"]
        target.wait_seconds_total = _seconds(counts["average_wait"]) * counts["answered"]
        target.entries_ended = counts["entries_ended"]
        target.answered_within_target = counts["answered_within_target"]
    for counts in _call_counts(calls, grouping):
        target = row(counts["group_key"])
        target.calls_handled = counts["handled"]
        target.handling_seconds_total = _seconds(counts["average_handling"]) * counts["handled"]

    labels = _labels(grouping, rows)
    unassigned = _("No business") if grouping == SummaryGrouping.BUSINESS else _("Not served by an agent")
    for key, item in rows.items():
        item.label = labels.get(key, str(key)) if key is not None else str(unassigned)
    ordered = sorted(rows.values(), key=lambda item: (item.key is None, item.label))
    total = SummaryRow(key="total", label=str(_("Total")))
    for item in ordered:
        total.add(item)
    return SummaryReport(date_from=date_from, date_to=date_to, grouping=grouping, rows=ordered, total=total)
