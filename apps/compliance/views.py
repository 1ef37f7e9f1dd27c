"""The compliance workspace (R8.2): back-office pages inside the admin look.

Read-only except for "verify the audit chain now", which only reads the
trail and appends the verification's own record (a service does that).
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.decorators import login_required, permission_required
from django.contrib.auth.models import User
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST, require_safe

from apps.audit.services import audit_chain_verification_run, audit_checkpoint_export
from apps.businesses.registry import business_choices
from apps.common.errors import NotFound, PermissionDenied, ValidationFailed
from apps.compliance.charts import rate_bars_svg, stacked_bars_svg
from apps.compliance.labels import action_choices, outcome_reason_choices, target_type_choices
from apps.compliance.models import ExportFormat
from apps.compliance.selectors import (
    OPEN_OUTCOME,
    SERVICE_RESULTS_LIMIT,
    ExportFilter,
    ServiceSearch,
    audit_chain_last_verification,
    audit_exports_visible_to,
    audit_records_for_export,
    gate_failure_choices,
    services_search,
)
from apps.compliance.services import (
    EXPORT_PERMISSION,
    UNMASK_PERMISSION,
    audit_export_request,
    service_evidence_open,
    service_face_image_open,
    service_snapshot_open,
    summary_export_record,
)
from apps.compliance.summary import (
    GATE_COLUMNS,
    SummaryGrouping,
    SummaryRow,
    daily_summary,
    summary_period_parse,
)
from apps.visits.models import VisitOutcome

VIEW_AUDIT = "audit.view_auditrecord"
RESULTS_SHOWN = 100
# Query-string names of the search form, mapped to ExportFilter's JSON names.
_TEXT_PARAMETERS = ("from", "to", "actor", "action_prefix", "target_type", "outcome")


def _filter_from_query(request: HttpRequest) -> dict[str, Any]:
    raw: dict[str, Any] = {name: request.GET.get(name, "").strip() for name in _TEXT_PARAMETERS}
    raw = {name: value for name, value in raw.items() if value}
    if request.GET.get("blacklist_hits") in ("1", "on", "true"):
        raw["blacklist_hits"] = True
    return raw


@require_safe
@login_required
@permission_required(VIEW_AUDIT, raise_exception=True)
def workspace(request: HttpRequest) -> HttpResponse:
    """Search the audit trail, see the chain's last verification, and the exports requested."""
    raw = _filter_from_query(request)
    error: Any = None
    records: list[Any] = []
    matching = 0
    searched = bool(raw)
    if searched:
        try:
            export_filter = ExportFilter.from_json(raw)
        except ValidationFailed as exc:
            error = exc.message
        else:
            queryset = audit_records_for_export(export_filter=export_filter).order_by("-sequence")
            matching = queryset.count()
            records = list(queryset[:RESULTS_SHOWN])
    user = request.user
    exports = list(audit_exports_visible_to(user=user).order_by("-requested_at")[:20]) if isinstance(user, User) else []
    context = {
        **admin.site.each_context(request),
        "title": _("Compliance workspace"),
        "query": raw,
        "searched": searched,
        "error": error,
        "records": records,
        "matching": matching,
        "shown": len(records),
        "last_verification": audit_chain_last_verification(),
        "exports": exports,
        "export_api": reverse("compliance:export-list"),
        "may_export": user.has_perm(EXPORT_PERMISSION),
        "may_unmask": user.has_perm(UNMASK_PERMISSION),
        "formats": ExportFormat.choices,
        "action_choices": action_choices(),
        "target_type_choices": target_type_choices(),
        "outcome_choices": outcome_reason_choices(),
    }
    return render(request, "compliance/workspace.html", context)


@require_POST
@login_required
@permission_required(VIEW_AUDIT, raise_exception=True)
def chain_verify(request: HttpRequest) -> HttpResponse:
    """Verify the whole hash chain now; the outcome becomes the newest ``audit.chain.verified`` record."""
    user = request.user
    assert isinstance(user, User)  # login_required let only a logged-in user through
    audit_chain_verification_run(actor=user)
    return redirect(reverse("compliance-workspace:workspace"))


# --- Services: search, evidence, snapshots --------------------------------------------------


def staff_required(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Logged-in staff only (anonymous → login, a non-staff user → 403). What they see is
    decided by ``visits_visible_to`` in the selectors, not here."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not user.is_staff:
            raise DjangoPermissionDenied
        return view(request, *args, **kwargs)

    return wrapped


@contextmanager
def _as_http_errors() -> Iterator[None]:
    """A page shows the services' NotFound / PermissionDenied as Django's 404 / 403 pages."""
    try:
        yield
    except NotFound as exc:
        raise Http404(str(exc.message)) from exc
    except PermissionDenied as exc:
        raise DjangoPermissionDenied(str(exc.message)) from exc


def _service_query(request: HttpRequest) -> dict[str, Any]:
    names = ("from", "to", "agent", "business", "customer", "outcome", "gate_failed")
    raw: dict[str, Any] = {name: request.GET.get(name, "").strip() for name in names}
    raw = {name: value for name, value in raw.items() if value}
    if request.GET.get("blacklist_hits") in ("1", "on", "true"):
        raw["blacklist_hits"] = True
    return raw


@require_safe
@staff_required
def services(request: HttpRequest) -> HttpResponse:
    """Search the services the user may see (agent: own; supervisor: team; compliance: all)."""
    raw = _service_query(request)
    error: Any = None
    results: list[Any] = []
    matching = 0
    try:
        search = ServiceSearch.from_json(raw)
    except ValidationFailed as exc:
        error = exc.message
    else:
        queryset = services_search(user=request.user, search=search)
        matching = queryset.count()
        results = list(queryset[:SERVICE_RESULTS_LIMIT])
    context = {
        **admin.site.each_context(request),
        "title": _("Services"),
        "query": raw,
        "error": error,
        "results": results,
        "matching": matching,
        "shown": len(results),
        "businesses": business_choices(),
        "outcomes": [*VisitOutcome.choices, (OPEN_OUTCOME, _("Not closed yet"))],
        "gates": gate_failure_choices(),
    }
    return render(request, "compliance/services.html", context)


@require_safe
@staff_required
def service_evidence(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    """A service's full evidence, read-only. Opening it is audited; ``?unmask=1`` (with the
    permission) shows personal data in clear, audited too."""
    user = request.user
    assert isinstance(user, User)
    unmask = request.GET.get("unmask") == "1"
    with _as_http_errors():
        record = service_evidence_open(actor=user, public_id=public_id, unmask=unmask)
    context = {
        **admin.site.each_context(request),
        "title": _("Service evidence"),
        "record": record,
        "visit": record.visit,
        "may_unmask": user.has_perm(UNMASK_PERMISSION),
    }
    return render(request, "compliance/service_evidence.html", context)


@require_safe
@staff_required
def snapshot_image(request: HttpRequest, public_id: uuid.UUID) -> FileResponse:
    """A snapshot's image for the evidence page, if the user may see its service (audited)."""
    user = request.user
    assert isinstance(user, User)
    with _as_http_errors():
        snapshot = service_snapshot_open(actor=user, public_id=public_id)
    try:
        handle = snapshot.image.open("rb")
    except FileNotFoundError as exc:
        raise Http404(_("The image of this snapshot is missing from storage.")) from exc
    response = FileResponse(handle, content_type="image/jpeg")
    response["Cache-Control"] = "private, no-store"
    return response


@require_safe
@staff_required
def face_image(request: HttpRequest, public_id: uuid.UUID, attempt_id: int, kind: str) -> FileResponse:
    """One of a Gate 3 attempt's three faces for the evidence page: compliance role only, audited."""
    user = request.user
    assert isinstance(user, User)
    with _as_http_errors():
        stored = service_face_image_open(actor=user, public_id=public_id, attempt_id=attempt_id, kind=kind)
    try:
        handle = stored.open("rb")
    except FileNotFoundError as exc:
        raise Http404(_("The image is missing from storage.")) from exc
    response = FileResponse(handle, content_type="image/jpeg")
    response["Cache-Control"] = "private, no-store"
    return response


# --- Daily summary report ----------------------------------------------------------------


def _summary_request(request: HttpRequest) -> tuple[Any, Any]:
    """(report, error) for the page's query string."""
    grouping = request.GET.get("group", SummaryGrouping.BRANCH)
    if grouping not in SummaryGrouping.values:
        return None, _("Group by branch, agent or business.")
    try:
        start, end = summary_period_parse(
            date_from=request.GET.get("from"), date_to=request.GET.get("to"), today=timezone.localdate()
        )
    except ValidationFailed as exc:
        return None, exc.message
    return daily_summary(user=request.user, date_from=start, date_to=end, grouping=grouping), None


def _percent(rate: float | None) -> str:
    return "–" if rate is None else f"{rate * 100:.1f}%"


def _seconds_text(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds:.1f}"


@require_safe
@staff_required
def daily_report(request: HttpRequest) -> HttpResponse:
    """Services, gate pass rates, wait, handling time and service level per branch, agent or business."""
    report, error = _summary_request(request)
    charts: dict[str, str] = {}
    if report is not None:
        gate_labels = [str(label) for _code, label in GATE_COLUMNS]
        charts["gates"] = mark_safe(rate_bars_svg(list(zip(gate_labels, report.total.pass_rates, strict=True))))  # noqa: S308 - built from checked numbers and escaped labels
        charts["outcomes"] = mark_safe(  # noqa: S308 - as above
            stacked_bars_svg(
                [
                    (
                        row.label,
                        [
                            row.completed,
                            row.refused,
                            row.gate_failed,
                            row.abandoned,
                            max(row.started - row.completed - row.refused - row.gate_failed - row.abandoned, 0),
                        ],
                    )
                    for row in report.rows
                ]
            )
        )
        charts["service_level"] = mark_safe(  # noqa: S308 - as above
            rate_bars_svg([(row.label, row.service_level) for row in report.rows])
        )
    context = {
        **admin.site.each_context(request),
        "title": _("Daily summary report"),
        "report": report,
        "error": error,
        "groupings": SummaryGrouping.choices,
        "query": {name: request.GET.get(name, "") for name in ("from", "to", "group")},
        "gate_columns": [label for _code, label in GATE_COLUMNS],
        "charts": charts,
        "rows": [_display_row(row) for row in report.rows] if report else [],
        "total": _display_row(report.total) if report else None,
    }
    return render(request, "compliance/daily_report.html", context)


def _display_row(row: SummaryRow) -> dict[str, Any]:
    return {
        "label": row.label,
        "started": row.started,
        "completed": row.completed,
        "refused": row.refused,
        "gate_failed": row.gate_failed,
        "abandoned": row.abandoned,
        "pass_rates": [_percent(rate) for rate in row.pass_rates],
        "average_wait": _seconds_text(row.average_wait_seconds),
        "average_handling": _seconds_text(row.average_handling_seconds),
        "service_level": _percent(row.service_level),
    }


SUMMARY_CSV_COLUMNS = (
    _("Group"),
    _("Services started"),
    _("Completed"),
    _("Refused"),
    _("Gate failed"),
    _("Abandoned"),
    *(_("%(gate)s pass rate") % {"gate": label} for _code, label in GATE_COLUMNS),
    _("Average wait (s)"),
    _("Average handling time (s)"),
    _("Service level"),
)


@require_safe
@staff_required
def daily_report_csv(request: HttpRequest) -> HttpResponse:
    """The report as CSV (UTF-8 with BOM for Excel); the download is audited with the file's hash."""
    report, error = _summary_request(request)
    if report is None:
        return HttpResponse(str(error), status=400, content_type="text/plain; charset=utf-8")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([str(title) for title in SUMMARY_CSV_COLUMNS])
    for row in [*report.rows, report.total]:
        shown = _display_row(row)
        writer.writerow(
            [
                shown["label"],
                shown["started"],
                shown["completed"],
                shown["refused"],
                shown["gate_failed"],
                shown["abandoned"],
                *shown["pass_rates"],
                shown["average_wait"],
                shown["average_handling"],
                shown["service_level"],
            ]
        )
    content = ("\ufeff" + buffer.getvalue()).encode("utf-8")
    user = request.user
    assert isinstance(user, User)
    summary_export_record(actor=user, report=report, content=content)
    response = HttpResponse(content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="summary-{report.grouping}-{report.date_from}-{report.date_to}.csv"'
    )
    response["Cache-Control"] = "no-store"
    return response


@require_safe
@login_required
@permission_required(EXPORT_PERMISSION, raise_exception=True)
def audit_checkpoint_download(request: HttpRequest) -> HttpResponse:
    """The signed checkpoint of the audit chain's head, handed out with the daily report (audited)."""
    user = request.user
    assert isinstance(user, User)
    try:
        checkpoint, content = audit_checkpoint_export(actor=user)
    except LookupError as exc:
        raise Http404(str(exc)) from exc
    response = HttpResponse(content, content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="audit-checkpoint-{checkpoint.tree_size}.json"'
    response["Cache-Control"] = "no-store"
    return response


# --- Export requests from the workspace ------------------------------------------------------


@require_POST
@login_required
@permission_required(EXPORT_PERMISSION, raise_exception=True)
def export_request(request: HttpRequest) -> HttpResponse:
    """Request an export of the current search from the page; the workspace then shows its progress."""
    user = request.user
    assert isinstance(user, User)
    raw: dict[str, Any] = {
        name: request.POST.get(name, "").strip() for name in _TEXT_PARAMETERS if request.POST.get(name, "").strip()
    }
    if request.POST.get("blacklist_hits") in ("1", "on", "true"):
        raw["blacklist_hits"] = True
    try:
        audit_export_request(
            actor=user,
            filters=raw,
            fmt=request.POST.get("format", ""),
            unmask=request.POST.get("unmask") in ("1", "on", "true"),
            language=get_language(),
        )
    except (ValidationFailed, PermissionDenied) as exc:
        messages.error(request, str(exc.message))
    else:
        messages.success(request, _("Export requested; its progress is shown below."))
    return redirect(reverse("compliance-workspace:workspace") + "#exports")
