"""Reads for compliance exports: the export filter → audit records, and who sees which export."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar

from django.contrib.auth.models import User
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext_lazy as _

from apps.audit.actions import AuditAction
from apps.audit.models import AuditRecord
from apps.audit.selectors import AUDIT_RECORD_FIELDS
from apps.businesses.registry import business_choices
from apps.calls.models import Call, CallParticipant, ParticipantRole
from apps.calls.selectors import visits_visible_to
from apps.common.errors import NotFound, PermissionDenied, ValidationFailed
from apps.common.masking import mask_account_number, mask_id_number, mask_mobile, mask_name
from apps.compliance.face_evidence import FaceEvidence, face_evidence_for, face_images_visible_to
from apps.compliance.models import AuditExport
from apps.gates.models import Gate, GateAttempt, GateProgress, GateState
from apps.recordings.models import Recording, Snapshot
from apps.verification.models import VerificationState
from apps.verification.selectors import verification_for_visit
from apps.visits.models import VISIT_AUDIT_TARGET_TYPES, Visit, VisitLocation, VisitOutcome

# The refusal reason Gate 1 records when screening finds the customer or the
# account on a blacklist (apps.verification.models.RefusalCode.BLACKLISTED;
# not imported: verification knows nothing of compliance and the other way
# round only this one value is needed; a test keeps the two equal).
BLACKLISTED_REASON = "blacklisted"

# Rows fetched per round trip while streaming (a server-side cursor on PostgreSQL).
STREAM_CHUNK_SIZE = 2000

# What every export row is made of, in this order (exporters.EXPORT_COLUMNS names
# them): a record's fields without the link to the record before it.
RECORD_FIELDS = tuple(name for name in AUDIT_RECORD_FIELDS if name != "previous_hash")

_TEXT_FILTERS = ("actor", "action_prefix", "target_type", "outcome")
_MAX_TEXT = 150
FilterT = TypeVar("FilterT", "ExportFilter", "ServiceSearch")


@dataclass(frozen=True)
class ExportFilter:
    """Which audit records an export holds. Every part is optional; all given parts must match.

    ``date_from`` / ``date_to`` are the period as asked (a date means the
    whole day in the platform's time zone, so ``to`` is inclusive);
    ``actor`` is a staff username or the recorded actor label; ``action_prefix``
    selects a family of codes ("verification.", "queueing.entry.");
    ``outcome`` is the ``reason`` the record carries (e.g. a refusal reason);
    ``blacklist_hits`` keeps only visits refused by blacklist screening.
    """

    date_from: date | datetime | None = None
    date_to: date | datetime | None = None
    actor: str = ""
    action_prefix: str = ""
    target_type: str = ""
    outcome: str = ""
    blacklist_hits: bool = False

    @classmethod
    def from_json(cls, raw: Any) -> ExportFilter:
        """Validate a filter sent by a client; raise ValidationFailed with a clear reason."""
        parsed = _PeriodFilterParts.parse(raw, text_fields=_TEXT_FILTERS)
        prefix = parsed.texts["action_prefix"]
        if prefix and not any(code.startswith(prefix) for code in AuditAction.values):
            raise ValidationFailed(
                _("No audit action starts with %(prefix)s.") % {"prefix": prefix},
                code="unknown_action_prefix",
                extra={"field": "action_prefix"},
            )
        return parsed.build(cls)

    def period_bounds(self) -> tuple[datetime | None, datetime | None]:
        """[start, end) as aware datetimes; a date ``to`` covers that whole day."""
        return _start_of(self.date_from), _end_of(self.date_to)

    def as_json(self) -> dict[str, Any]:
        """The filter in the form it was given, without empty parts (stored and audited)."""
        return _filter_as_json(self, _TEXT_FILTERS)


def _parse_moment(value: Any, field: str) -> date | datetime | None:
    if value in (None, ""):
        return None
    parsed: date | datetime | None = None
    if isinstance(value, str):
        try:
            parsed = parse_datetime(value) if "T" in value or " " in value.strip() else parse_date(value)
        except ValueError:
            parsed = None
    if parsed is None:
        raise ValidationFailed(
            _("Filter %(field)s must be a date (2026-01-31) or a date and time (2026-01-31T08:00:00+08:00).")
            % {"field": field},
            code="invalid_date",
            extra={"field": field},
        )
    if isinstance(parsed, datetime) and timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed


def _start_of(moment: date | datetime | None) -> datetime | None:
    if moment is None or isinstance(moment, datetime):
        return moment
    return timezone.make_aware(datetime.combine(moment, time.min))


def _end_of(moment: date | datetime | None) -> datetime | None:
    if moment is None or isinstance(moment, datetime):
        return moment
    return timezone.make_aware(datetime.combine(moment + timedelta(days=1), time.min))


@dataclass(frozen=True)
class _PeriodFilterParts:
    """What the audit-export filter and the service search share: a period, texts, blacklist hits.

    ``parse`` validates a client's JSON (unknown fields, text lengths, the
    flag, the dates, a period that ends after it starts); each filter then
    checks its own texts and ``build``s itself.
    """

    date_from: date | datetime | None
    date_to: date | datetime | None
    texts: dict[str, str]
    blacklist_hits: bool

    @classmethod
    def parse(cls, raw: Any, *, text_fields: tuple[str, ...]) -> _PeriodFilterParts:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ValidationFailed(_("The filter must be an object."), code="invalid_filter")
        allowed = ("from", "to", *text_fields, "blacklist_hits")
        unknown = sorted(set(raw) - set(allowed))
        if unknown:
            raise ValidationFailed(
                _("Unknown filter fields: %(fields)s.") % {"fields": ", ".join(unknown)},
                code="unknown_filter",
                extra={"fields": unknown, "allowed": list(allowed)},
            )
        texts: dict[str, str] = {}
        for name in text_fields:
            value = raw.get(name)
            if value in (None, ""):
                texts[name] = ""
                continue
            if not isinstance(value, str) or len(value.strip()) > _MAX_TEXT:
                raise _invalid(
                    name,
                    _("Filter %(field)s must be a text of at most %(max)d characters.")
                    % {"field": name, "max": _MAX_TEXT},
                )
            texts[name] = value.strip()
        blacklist_hits = raw.get("blacklist_hits", False)
        if not isinstance(blacklist_hits, bool):
            raise _invalid("blacklist_hits", _("Filter blacklist_hits must be true or false."))
        parts = cls(
            date_from=_parse_moment(raw.get("from"), "from"),
            date_to=_parse_moment(raw.get("to"), "to"),
            texts=texts,
            blacklist_hits=blacklist_hits,
        )
        start, end = _start_of(parts.date_from), _end_of(parts.date_to)
        if start is not None and end is not None and start >= end:
            raise ValidationFailed(_("The period ends before it starts."), code="invalid_period", extra={"field": "to"})
        return parts

    def build(self, filter_class: type[FilterT]) -> FilterT:
        return filter_class(
            date_from=self.date_from, date_to=self.date_to, blacklist_hits=self.blacklist_hits, **self.texts
        )


def _filter_as_json(search: Any, text_fields: tuple[str, ...]) -> dict[str, Any]:
    """A filter in the form it was given, without empty parts (stored and audited)."""
    result: dict[str, Any] = {}
    if search.date_from is not None:
        result["from"] = search.date_from.isoformat()
    if search.date_to is not None:
        result["to"] = search.date_to.isoformat()
    for name in text_fields:
        if value := getattr(search, name):
            result[name] = value
    if search.blacklist_hits:
        result["blacklist_hits"] = True
    return result


def audit_records_for_export(
    *, export_filter: ExportFilter, up_to_sequence: int | None = None
) -> QuerySet[AuditRecord]:
    """The audit records an export holds, in chain order."""
    queryset = AuditRecord.objects.all()
    start, end = export_filter.period_bounds()
    if start is not None:
        queryset = queryset.filter(created_at__gte=start)
    if end is not None:
        queryset = queryset.filter(created_at__lt=end)
    if export_filter.actor:
        queryset = queryset.filter(actor_label=export_filter.actor)
    if export_filter.action_prefix:
        queryset = queryset.filter(action__startswith=export_filter.action_prefix)
    if export_filter.target_type:
        queryset = queryset.filter(target_type=export_filter.target_type)
    if export_filter.outcome:
        queryset = queryset.filter(data__reason=export_filter.outcome)
    if export_filter.blacklist_hits:
        queryset = queryset.filter(action=AuditAction.VISIT_REFUSED, data__reason=BLACKLISTED_REASON)
    if up_to_sequence is not None:
        queryset = queryset.filter(sequence__lte=up_to_sequence)
    return queryset.order_by("sequence")


def audit_chain_head_sequence() -> int:
    """The sequence of the newest audit record (0 for an empty trail)."""
    head = AuditRecord.objects.order_by("-sequence").values_list("sequence", flat=True).first()
    return int(head or 0)


def audit_record_rows_stream(
    *, export_filter: ExportFilter, up_to_sequence: int, limit: int | None = None
) -> Iterator[tuple[Any, ...]]:
    """Stream the export's records as tuples of RECORD_FIELDS, a chunk at a time.

    Constant memory: ``.iterator()`` never fills the queryset cache, and on
    PostgreSQL it reads through a server-side cursor ``STREAM_CHUNK_SIZE``
    rows per round trip. Tuples, not model instances, because at a million
    rows the instances cost more time than the file formats.
    """
    queryset = audit_records_for_export(export_filter=export_filter, up_to_sequence=up_to_sequence)
    if limit is not None:
        queryset = queryset[:limit]
    return queryset.values_list(*RECORD_FIELDS).iterator(chunk_size=STREAM_CHUNK_SIZE)


def user_sees_every_export(user: User) -> bool:
    """Compliance officers see every export; anyone else who may export sees their own."""
    return user.has_perm("compliance.view_auditexport")


def audit_exports_visible_to(*, user: User) -> QuerySet[AuditExport]:
    queryset = AuditExport.objects.select_related("requested_by")
    if not user_sees_every_export(user):
        queryset = queryset.filter(requested_by=user)
    return queryset.order_by("-requested_at", "-pk")


def audit_export_get_visible(*, user: User, export_id: int) -> AuditExport:
    """One export, if ``user`` requested it or sees every export."""
    export = AuditExport.objects.select_related("requested_by").filter(pk=export_id).first()
    if export is None:
        raise NotFound(_("This export does not exist."), code="export_not_found")
    if export.requested_by_id != user.pk and not user_sees_every_export(user):
        raise PermissionDenied(
            _("Only the person who requested this export, or a compliance officer, may see it."),
            code="not_your_export",
        )
    return export


def audit_chain_last_verification() -> AuditRecord | None:
    """The newest ``audit.chain.verified`` record (by the nightly command or the workspace button)."""
    return AuditRecord.objects.filter(action=AuditAction.AUDIT_CHAIN_VERIFIED).order_by("-sequence").first()


# --- Services (visits): search and the evidence of one service ------------------------------
#
# Every read below starts from ``visits_visible_to(user=...)``: an agent sees
# the services they served, a supervisor those of their team, a compliance
# officer all, an administrator none. Nothing here writes; opening a record is
# audited by ``apps.compliance.services.service_evidence_open``.

SERVICE_RESULTS_LIMIT = 100

# ``gate_failed`` filter values: "gate1" is a Gate 1 refusal (before the call),
# the others an in-call gate (GateProgress failed at that gate), "any" either.
GATE1 = "gate1"
ANY_GATE = "any"
_SERVICE_TEXT_FILTERS = ("agent", "business", "customer", "outcome", "gate_failed")
OPEN_OUTCOME = "open"


def gate_failure_choices() -> list[tuple[str, Any]]:

    return [(GATE1, _("Gate 1: refused before the call")), *Gate.choices, (ANY_GATE, _("Any gate"))]


def _invalid(field: str, message: Any) -> ValidationFailed:
    return ValidationFailed(message, code="invalid_filter", extra={"field": field})


@dataclass(frozen=True)
class ServiceSearch:
    """Which services a search returns. Every part is optional; all given parts must match.

    ``agent`` is an employee number (agent or expert in any call of the
    service); ``customer`` a customer number; ``outcome`` a
    ``VisitOutcome`` value or "open" (not closed yet); ``gate_failed``
    one of ``gate_failure_choices``; ``blacklist_hits`` keeps the services
    refused by blacklist screening. The period is when the service started.
    """

    date_from: date | datetime | None = None
    date_to: date | datetime | None = None
    agent: str = ""
    business: str = ""
    customer: str = ""
    outcome: str = ""
    gate_failed: str = ""
    blacklist_hits: bool = False

    @classmethod
    def from_json(cls, raw: Any) -> ServiceSearch:
        parsed = _PeriodFilterParts.parse(raw, text_fields=_SERVICE_TEXT_FILTERS)
        texts = parsed.texts
        if texts["business"] and texts["business"] not in {code for code, _label in business_choices()}:
            raise _invalid("business", _("Unknown business: %(value)s.") % {"value": texts["business"]})
        if texts["outcome"] and texts["outcome"] not in {*VisitOutcome.values, OPEN_OUTCOME}:
            raise _invalid("outcome", _("Unknown outcome: %(value)s.") % {"value": texts["outcome"]})
        if texts["gate_failed"] and texts["gate_failed"] not in {code for code, _label in gate_failure_choices()}:
            raise _invalid("gate_failed", _("Unknown gate: %(value)s.") % {"value": texts["gate_failed"]})
        return parsed.build(cls)

    def period_bounds(self) -> tuple[datetime | None, datetime | None]:
        return _start_of(self.date_from), _end_of(self.date_to)

    def as_json(self) -> dict[str, Any]:
        return _filter_as_json(self, _SERVICE_TEXT_FILTERS)


def services_search(*, user: Any, search: ServiceSearch) -> QuerySet[Any]:
    """The services ``user`` may see that match ``search``, newest first."""

    queryset = visits_visible_to(user=user)
    start, end = search.period_bounds()
    if start is not None:
        queryset = queryset.filter(created_at__gte=start)
    if end is not None:
        queryset = queryset.filter(created_at__lt=end)
    if search.agent:
        # A subquery, not a join: a join through the participants would repeat
        # a service once per matching participant.
        served_by = CallParticipant.objects.filter(
            staff__employee_number=search.agent,
            role__in=(ParticipantRole.AGENT, ParticipantRole.EXPERT, ParticipantRole.ASSISTING_AGENT),
        ).values("call__visit_id")
        queryset = queryset.filter(pk__in=served_by)
    if search.business:
        queryset = queryset.filter(business_code=search.business)
    if search.customer:
        queryset = queryset.filter(customer__customer_number=search.customer)
    if search.outcome == OPEN_OUTCOME:
        queryset = queryset.filter(outcome="")
    elif search.outcome:
        queryset = queryset.filter(outcome=search.outcome)
    refused = Q(verification__state=VerificationState.REFUSED)
    gate_failed = Q(gate_progress__state=GateState.FAILED)
    if search.gate_failed == GATE1:
        queryset = queryset.filter(refused)
    elif search.gate_failed == ANY_GATE:
        queryset = queryset.filter(refused | gate_failed)
    elif search.gate_failed:
        queryset = queryset.filter(gate_failed, gate_progress__failed_gate=search.gate_failed)
    if search.blacklist_hits:
        queryset = queryset.filter(verification__refusal_code=BLACKLISTED_REASON)
    return queryset.select_related("customer", "gate_progress", "verification").order_by("-created_at", "-pk")


def service_get_visible(*, user: Any, public_id: Any) -> Any:
    """One service by its public id, if ``user`` may see it (NotFound / PermissionDenied otherwise)."""

    visit = Visit.objects.select_related("customer", "account").filter(public_id=public_id).first()
    if visit is None:
        raise NotFound(_("This service does not exist."), code="service_not_found")
    if not visits_visible_to(user=user).filter(pk=visit.pk).exists():
        raise PermissionDenied(_("You may not see this service."), code="service_not_visible")
    return visit


@dataclass(frozen=True)
class ServiceParticipant:
    call_id: int
    role: str
    role_label: str
    employee_number: str
    name: str
    joined_at: datetime | None
    left_at: datetime | None


@dataclass(frozen=True)
class ServiceOperation:
    """One business operation done in the service."""

    done_at: datetime
    kind: str
    summary: str
    result: str


@dataclass(frozen=True)
class ServiceRecord:
    """Everything the evidence page shows about one service, personal data masked unless ``unmasked``."""

    visit: Any
    unmasked: bool
    customer_number: str
    customer_name: str
    customer_id_number: str
    customer_mobile: str
    account_number: str
    read_name: str
    read_id_number: str
    started_at: datetime
    ended_at: datetime | None
    calls: list[Any]
    participants: list[ServiceParticipant]
    gate1_records: list[AuditRecord]
    gate_progress: Any
    gate_attempts: list[Any]
    # Each attempt with, for Gate 3, its distances in words and (compliance role) its three images.
    gate_attempt_rows: list[GateAttemptRow]
    snapshots: list[Any]
    recordings: list[Any]
    operations: list[ServiceOperation]
    # Where the customer was: "" when the page never reported it (see docs/gates.md, "Location").
    location: str = ""


@dataclass(frozen=True)
class GateAttemptRow:
    attempt: Any
    face: FaceEvidence | None


def service_operations_for(*, visit: Any) -> list[ServiceOperation]:
    """The business operations done (or tried) in a service, oldest first.

    The summary names what changed and the evidence produced, never the
    values (personal data; the operation row keeps them for the record).
    """
    from apps.businesses.registry import business_get
    from apps.operations.models import Operation

    operations = []
    for operation in Operation.objects.filter(visit=visit).order_by("created_at", "pk"):
        parts = [str(_("changed: %(fields)s") % {"fields": ", ".join(operation.after)})] if operation.after else []
        if operation.details.get("reported_lost_on"):
            parts.append(str(_("reported lost on %(date)s") % {"date": operation.details["reported_lost_on"]}))
        if operation.certificate_sha256:
            parts.append(str(_("certificate SHA-256 %(hash)s") % {"hash": operation.certificate_sha256}))
        try:
            kind = str(business_get(operation.business_code).name)
        except KeyError:
            kind = operation.business_code
        operations.append(
            ServiceOperation(
                done_at=operation.finished_at or operation.created_at,
                kind=kind,
                summary="; ".join(parts) or "—",
                result=f"{operation.get_state_display()} {operation.result_code}".strip(),
            )
        )
    return operations


def service_record_get(*, user: Any, public_id: Any, unmask: bool = False) -> ServiceRecord:
    """Read a service's full evidence for ``user`` (visibility checked). Reads only: audit the opening separately.

    ``unmask`` shows personal data in clear; the caller checks the permission
    and audits it (``services.service_evidence_open``).
    """

    visit = service_get_visible(user=user, public_id=public_id)
    customer = visit.customer
    account = visit.account

    def personal(value: str | None, mask: Any) -> str:
        if not value:
            return ""
        return value if unmask else mask(value)

    calls = list(Call.objects.filter(visit=visit).order_by("created_at", "pk"))
    participants = [
        ServiceParticipant(
            call_id=participant.call_id,
            role=participant.role,
            role_label=str(participant.get_role_display()),
            employee_number=participant.staff.employee_number if participant.staff else "",
            name=participant.staff.display_name if participant.staff else "",
            joined_at=participant.joined_at,
            left_at=participant.left_at,
        )
        for participant in CallParticipant.objects.filter(call__visit=visit, staff__isnull=False)
        .select_related("staff")
        .order_by("invited_at", "pk")
    ]
    progress = GateProgress.objects.filter(visit=visit).first()
    images_shown = face_images_visible_to(user=user)
    attempts = (
        list(
            GateAttempt.objects.filter(progress=progress)
            .select_related("requested_by", "snapshot", "progress__visit__verification")
            .order_by("started_at", "pk")
        )
        if progress is not None
        else []
    )
    gate1_records = list(
        AuditRecord.objects.filter(
            target_type__in=VISIT_AUDIT_TARGET_TYPES, target_id=str(visit.pk), action__startswith="verification."
        ).order_by("sequence")
    )
    gate1 = verification_for_visit(visit=visit)
    ended_at = visit.closed_at or max((call.ended_at for call in calls if call.ended_at), default=None)
    return ServiceRecord(
        visit=visit,
        unmasked=unmask,
        customer_number=customer.customer_number if customer else "",
        customer_name=personal(customer.name if customer else "", mask_name),
        customer_id_number=personal(customer.id_number if customer else "", mask_id_number),
        customer_mobile=personal(visit.mobile, mask_mobile),
        account_number=personal(account.number if account else "", mask_account_number),
        read_name=personal(gate1.read_name if gate1 else "", mask_name),
        read_id_number=personal((gate1.read_id_number or "") if gate1 else "", mask_id_number),
        started_at=visit.created_at,
        ended_at=ended_at,
        calls=calls,
        participants=participants,
        gate1_records=gate1_records,
        gate_progress=progress,
        gate_attempts=attempts,
        gate_attempt_rows=[
            GateAttemptRow(attempt=attempt, face=face_evidence_for(attempt=attempt, images_shown=images_shown))
            for attempt in attempts
        ],
        snapshots=list(
            Snapshot.objects.filter(call__visit=visit).select_related("taken_by").order_by("taken_at", "pk")
        ),
        recordings=list(
            Recording.objects.filter(call__visit=visit).prefetch_related("files__participant").order_by("created_at")
        ),
        operations=service_operations_for(visit=visit),
        location=_location_summary(visit, unmask=unmask),
    )


def _location_summary(visit: Any, *, unmask: bool) -> str:
    """The customer's location in one line: consent, where (to ~10 km unless unmasked), accuracy, IP country."""
    location = VisitLocation.objects.filter(visit=visit).first()
    if location is None:
        return ""
    parts = [str(location.get_consent_display())]
    if location.coordinates:
        lat, lon = (float(value) for value in location.coordinates.split(","))
        parts.append(f"{lat:.5f}, {lon:.5f}" if unmask else f"≈{lat:.1f}, {lon:.1f}")
        if location.accuracy_m is not None:
            parts.append(str(_("accuracy %(metres)d m") % {"metres": location.accuracy_m}))
    if location.ip_country:
        parts.append(str(_("IP in %(country)s") % {"country": location.ip_country}))
    elif location.ip_private:
        parts.append(str(_("IP on a private network")))
    if unmask and location.ip_address:
        parts.append(location.ip_address)
    return " · ".join(parts)


def snapshot_get_visible(*, user: Any, public_id: Any) -> Any:
    """A snapshot whose service ``user`` may see (the evidence page's thumbnails)."""

    snapshot = Snapshot.objects.select_related("call").filter(public_id=public_id).first()
    if snapshot is None:
        raise NotFound(_("This snapshot does not exist."), code="snapshot_not_found")
    if not visits_visible_to(user=user).filter(pk=snapshot.call.visit_id).exists():
        raise PermissionDenied(_("You may not see this service."), code="service_not_visible")
    return snapshot
