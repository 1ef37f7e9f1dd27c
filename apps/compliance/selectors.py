"""Reads for compliance exports: the export filter → audit records, and who sees which export."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext_lazy as _

from apps.audit.actions import AuditAction
from apps.audit.models import AuditRecord
from apps.common.errors import NotFound, PermissionDenied, ValidationFailed
from apps.compliance.models import AuditExport

# The refusal reason Gate 1 records when screening finds the customer or the
# account on a blacklist (apps.verification.models.RefusalCode.BLACKLISTED;
# not imported: verification knows nothing of compliance and the other way
# round only this one value is needed; a test keeps the two equal).
BLACKLISTED_REASON = "blacklisted"

# Rows fetched per round trip while streaming (a server-side cursor on PostgreSQL).
STREAM_CHUNK_SIZE = 2000

# What every export row is made of, in this order (exporters.EXPORT_COLUMNS names them).
RECORD_FIELDS = (
    "sequence",
    "created_at",
    "actor_kind",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "data",
    "record_hash",
)

_TEXT_FILTERS = ("actor", "action_prefix", "target_type", "outcome")
_ALL_FILTERS = ("from", "to", *_TEXT_FILTERS, "blacklist_hits")
_MAX_TEXT = 150


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
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ValidationFailed(_("The filter must be an object."), code="invalid_filter")
        unknown = sorted(set(raw) - set(_ALL_FILTERS))
        if unknown:
            raise ValidationFailed(
                _("Unknown filter fields: %(fields)s.") % {"fields": ", ".join(unknown)},
                code="unknown_filter",
                extra={"fields": unknown, "allowed": list(_ALL_FILTERS)},
            )
        texts: dict[str, str] = {}
        for name in _TEXT_FILTERS:
            value = raw.get(name)
            if value in (None, ""):
                texts[name] = ""
                continue
            if not isinstance(value, str) or len(value.strip()) > _MAX_TEXT:
                raise ValidationFailed(
                    _("Filter %(field)s must be a text of at most %(max)d characters.")
                    % {"field": name, "max": _MAX_TEXT},
                    code="invalid_filter",
                    extra={"field": name},
                )
            texts[name] = value.strip()
        prefix = texts["action_prefix"]
        if prefix and not any(code.startswith(prefix) for code in AuditAction.values):
            raise ValidationFailed(
                _("No audit action starts with %(prefix)s.") % {"prefix": prefix},
                code="unknown_action_prefix",
                extra={"field": "action_prefix"},
            )
        blacklist_hits = raw.get("blacklist_hits", False)
        if not isinstance(blacklist_hits, bool):
            raise ValidationFailed(
                _("Filter blacklist_hits must be true or false."),
                code="invalid_filter",
                extra={"field": "blacklist_hits"},
            )
        date_from = _parse_moment(raw.get("from"), "from")
        date_to = _parse_moment(raw.get("to"), "to")
        result = cls(date_from=date_from, date_to=date_to, blacklist_hits=blacklist_hits, **texts)
        start, end = result.period_bounds()
        if start is not None and end is not None and start >= end:
            raise ValidationFailed(_("The period ends before it starts."), code="invalid_period", extra={"field": "to"})
        return result

    def period_bounds(self) -> tuple[datetime | None, datetime | None]:
        """[start, end) as aware datetimes; a date ``to`` covers that whole day."""
        return _start_of(self.date_from), _end_of(self.date_to)

    def as_json(self) -> dict[str, Any]:
        """The filter in the form it was given, without empty parts (stored and audited)."""
        result: dict[str, Any] = {}
        if self.date_from is not None:
            result["from"] = self.date_from.isoformat()
        if self.date_to is not None:
            result["to"] = self.date_to.isoformat()
        for name in _TEXT_FILTERS:
            if value := getattr(self, name):
                result[name] = value
        if self.blacklist_hits:
            result["blacklist_hits"] = True
        return result


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
