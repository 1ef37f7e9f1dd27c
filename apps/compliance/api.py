"""Compliance API: request an audit export, follow its progress, download the file."""

from __future__ import annotations

from typing import Any

from django.http import FileResponse
from django.urls import reverse
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.api import request_staff_user, require_permission
from apps.common.errors import NotFound
from apps.compliance.exporters import exporter_for, pdf_max_rows
from apps.compliance.models import AuditExport, ExportFormat, ExportState
from apps.compliance.selectors import (
    SERVICE_RESULTS_LIMIT,
    ServiceSearch,
    audit_export_get_visible,
    audit_exports_visible_to,
    services_search,
)
from apps.compliance.services import (
    EXPORT_PERMISSION,
    audit_export_download,
    audit_export_request,
    pdf_limit_note,
)

_EXPORT = require_permission(EXPORT_PERMISSION)


def export_representation(export: AuditExport, request: Request) -> dict[str, Any]:
    total = export.rows_total
    body: dict[str, Any] = {
        "id": export.pk,
        "format": export.format,
        "filters": export.filters,
        "unmasked": export.unmasked,
        "state": export.state,
        "requested_by": export.requested_by.get_username(),
        "requested_at": export.requested_at,
        "started_at": export.started_at,
        "finished_at": export.finished_at,
        "rows_matching": export.rows_matching,
        "rows_total": total,
        "rows_written": export.rows_written,
        "progress": round(export.rows_written / total, 4) if total else (1.0 if export.state == "done" else 0.0),
        "truncated": export.truncated,
        "sha256": export.sha256 or None,
        "size_bytes": export.size_bytes,
        "error": export.error or None,
        "status_url": request.build_absolute_uri(reverse("compliance:export-detail", args=[export.pk])),
        "download_url": (
            request.build_absolute_uri(reverse("compliance:export-download", args=[export.pk]))
            if export.state == ExportState.DONE
            else None
        ),
    }
    if export.format == ExportFormat.PDF:
        body["row_limit"] = pdf_max_rows()
        if export.truncated:
            assert export.rows_total is not None and export.rows_matching is not None
            body["note"] = pdf_limit_note(shown=export.rows_total, matching=export.rows_matching)
    return body


class AuditExportListCreateApi(APIView):
    """GET: the exports the user may see (their own; every one for compliance officers). POST: request one."""

    permission_classes = (_EXPORT,)

    class InputSerializer(serializers.Serializer):
        format = serializers.CharField()
        filters = serializers.JSONField(required=False, default=dict)
        unmask = serializers.BooleanField(required=False, default=False)

    def get(self, request: Request) -> Response:
        exports = audit_exports_visible_to(user=request_staff_user(request))[:100]
        return Response({"results": [export_representation(export, request) for export in exports]})

    @extend_schema(request=InputSerializer)
    def post(self, request: Request) -> Response:
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        export = audit_export_request(
            actor=request_staff_user(request),
            filters=payload.validated_data["filters"],
            fmt=payload.validated_data["format"],
            unmask=payload.validated_data["unmask"],
            language=get_language(),
        )
        # With eager Celery (tests, embedded mode) the file is already written: re-read.
        export = AuditExport.objects.select_related("requested_by").get(pk=export.pk)
        return Response(export_representation(export, request), status=status.HTTP_202_ACCEPTED)


class AuditExportDetailApi(APIView):
    permission_classes = (_EXPORT,)

    def get(self, request: Request, export_id: int) -> Response:
        export = audit_export_get_visible(user=request_staff_user(request), export_id=export_id)
        return Response(export_representation(export, request))


class AuditExportDownloadApi(APIView):
    """Streams the file (never read whole into memory); every download is audited first."""

    permission_classes = (_EXPORT,)

    def get(self, request: Request, export_id: int) -> FileResponse:
        export = audit_export_download(actor=request_staff_user(request), export_id=export_id)
        exporter = exporter_for(export.format)
        try:
            handle = export.file.open("rb")
        except FileNotFoundError as exc:
            raise NotFound(_("The file of this export is missing from storage."), code="export_file_missing") from exc
        response = FileResponse(
            handle,
            as_attachment=True,
            filename=f"audit-export-{export.pk}.{exporter.extension}",
            content_type=exporter.content_type,
        )
        response["X-Content-SHA256"] = export.sha256
        response["Cache-Control"] = "no-store"
        return response


class ServiceSearchApi(APIView):
    """GET: the services the user may see that match the query (same fields as the workspace page).

    Agents see their own services, supervisors their team's, compliance
    officers all, administrators none. Customer names are not included; the
    evidence page shows them (masked unless unmasked, audited).
    """

    permission_classes = (IsAdminUser,)  # is_staff: every staff role; visibility decides the rest

    def get(self, request: Request) -> Response:
        raw: dict[str, Any] = {
            name: value.strip()
            for name in ("from", "to", "agent", "business", "customer", "outcome", "gate_failed")
            if (value := request.query_params.get(name, ""))
        }
        if request.query_params.get("blacklist_hits") in ("1", "true", "on"):
            raw["blacklist_hits"] = True
        search = ServiceSearch.from_json(raw)
        queryset = services_search(user=request_staff_user(request), search=search)
        results = [
            {
                "id": str(visit.public_id),
                "business": visit.business_code,
                "customer_number": visit.customer.customer_number if visit.customer else None,
                "state": getattr(getattr(visit, "verification", None), "state", None),
                "refusal": getattr(getattr(visit, "verification", None), "refusal_code", "") or None,
                "outcome": visit.outcome or None,
                "outcome_reason": visit.outcome_reason or None,
                "gate_failed": getattr(getattr(visit, "gate_progress", None), "failed_gate", "") or None,
                "started_at": visit.created_at,
                "closed_at": visit.closed_at,
                "evidence_url": request.build_absolute_uri(
                    reverse("compliance-workspace:service-evidence", args=[visit.public_id])
                ),
            }
            for visit in queryset[:SERVICE_RESULTS_LIMIT]
        ]
        return Response({"count": queryset.count(), "filters": search.as_json(), "results": results})
