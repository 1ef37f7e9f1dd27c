"""The compliance workspace (R8.2): back-office pages inside the admin look.

Read-only except for "verify the audit chain now", which only reads the
trail and appends the verification's own record (a service does that).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.decorators import login_required, permission_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST, require_safe

from apps.common.errors import ValidationFailed
from apps.compliance.selectors import (
    ExportFilter,
    audit_chain_last_verification,
    audit_exports_visible_to,
    audit_records_for_export,
)
from apps.compliance.services import audit_chain_verification_run

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
    }
    return render(request, "compliance/workspace.html", context)


@require_POST
@login_required
@permission_required(VIEW_AUDIT, raise_exception=True)
def chain_verify(request: HttpRequest) -> HttpResponse:
    """Verify the whole hash chain now; the outcome becomes the newest ``audit.chain.verified`` record."""
    audit_chain_verification_run(actor=request.user)
    return redirect(reverse("compliance-workspace:workspace"))
