"""Compliance API: request an audit export, follow its progress, download the file."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from django.http import FileResponse
from django.urls import reverse
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_field
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


class _UtcDateTimeField(serializers.DateTimeField):
    """An instant in UTC ISO 8601 (``…Z``), as these answers have always given it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(default_timezone=UTC, **kwargs)


@extend_schema_field({"type": "string", "nullable": True})
class _TextOrNullField(serializers.Field[str, str, str | None, Any]):
    """A text that is empty in the database is null in the answer."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value: Any) -> str | None:
        return str(value) or None


class AuditExportOutputSerializer(serializers.Serializer[Any]):
    """One export as every export API answers it: its request, progress, file and links.

    A PDF also names its row limit, and when it holds fewer rows than
    matched, the note the file itself carries.
    """

    id = serializers.IntegerField(source="pk")
    format = serializers.CharField()
    filters = serializers.JSONField()
    unmasked = serializers.BooleanField()
    state = serializers.CharField()
    requested_by = serializers.CharField(source="requested_by.get_username")
    requested_at = _UtcDateTimeField()
    started_at = _UtcDateTimeField(allow_null=True)
    finished_at = _UtcDateTimeField(allow_null=True)
    rows_matching = serializers.IntegerField(allow_null=True)
    rows_total = serializers.IntegerField(allow_null=True)
    rows_written = serializers.IntegerField()
    progress = serializers.SerializerMethodField()
    truncated = serializers.BooleanField()
    sha256 = _TextOrNullField()
    size_bytes = serializers.IntegerField(allow_null=True)
    error = _TextOrNullField()
    status_url = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()

    def get_progress(self, export: AuditExport) -> float:
        total = export.rows_total
        if total:
            return round(export.rows_written / total, 4)
        return 1.0 if export.state == ExportState.DONE else 0.0

    def get_status_url(self, export: AuditExport) -> str:
        return self.context["request"].build_absolute_uri(reverse("compliance:export-detail", args=[export.pk]))

    def get_download_url(self, export: AuditExport) -> str | None:
        if export.state != ExportState.DONE:
            return None
        return self.context["request"].build_absolute_uri(reverse("compliance:export-download", args=[export.pk]))

    def to_representation(self, instance: Any) -> dict[str, Any]:
        body: dict[str, Any] = super().to_representation(instance)
        if instance.format == ExportFormat.PDF:
            body["row_limit"] = pdf_max_rows()
            if instance.truncated:
                assert instance.rows_total is not None and instance.rows_matching is not None
                body["note"] = pdf_limit_note(shown=instance.rows_total, matching=instance.rows_matching)
        return body


class AuditExportListCreateApi(APIView):
    """GET: the exports the user may see (their own; every one for compliance officers). POST: request one.

    Two operations on one address, the public contract of this resource; each
    reads or writes through exactly one selector or service.
    """

    permission_classes = (_EXPORT,)

    class InputSerializer(serializers.Serializer[Any]):
        format = serializers.CharField()
        filters = serializers.JSONField(required=False, default=dict)
        unmask = serializers.BooleanField(required=False, default=False)

    OutputSerializer = AuditExportOutputSerializer

    def get(self, request: Request) -> Response:
        exports = audit_exports_visible_to(user=request_staff_user(request))[:100]
        return Response({"results": self.OutputSerializer(exports, many=True, context={"request": request}).data})

    @extend_schema(request=InputSerializer, responses={202: OutputSerializer})
    def post(self, request: Request) -> Response:
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        user = request_staff_user(request)
        export = audit_export_request(
            actor=user,
            filters=payload.validated_data["filters"],
            fmt=payload.validated_data["format"],
            unmask=payload.validated_data["unmask"],
            language=get_language(),
        )
        # With eager Celery (tests, embedded mode) the file is already written: re-read.
        export = audit_export_get_visible(user=user, export_id=export.pk)
        return Response(
            self.OutputSerializer(export, context={"request": request}).data, status=status.HTTP_202_ACCEPTED
        )


class AuditExportDetailApi(APIView):
    """GET: one export's state and progress (the workspace polls it while the file is written)."""

    permission_classes = (_EXPORT,)

    OutputSerializer = AuditExportOutputSerializer

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request, export_id: int) -> Response:
        export = audit_export_get_visible(user=request_staff_user(request), export_id=export_id)
        return Response(self.OutputSerializer(export, context={"request": request}).data)


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

    class OutputSerializer(serializers.Serializer[Any]):
        id = serializers.UUIDField(source="public_id")
        business = serializers.CharField(source="business_code")
        customer_number = serializers.CharField(source="customer.customer_number", default=None, allow_null=True)
        # Gate 1's state and refusal (null for a visit that never had a Gate 1 row).
        state = serializers.CharField(source="verification.state", default=None)
        refusal = _TextOrNullField(source="verification.refusal_code", default=None)
        outcome = _TextOrNullField()
        outcome_reason = _TextOrNullField()
        # Null when the service has no gate progress or no gate failed.
        gate_failed = _TextOrNullField(source="gate_progress.failed_gate", default=None)
        started_at = _UtcDateTimeField(source="created_at")
        closed_at = _UtcDateTimeField(allow_null=True)
        evidence_url = serializers.SerializerMethodField()

        def get_evidence_url(self, visit: Any) -> str:
            return self.context["request"].build_absolute_uri(
                reverse("compliance-workspace:service-evidence", args=[visit.public_id])
            )

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
        results = self.OutputSerializer(queryset[:SERVICE_RESULTS_LIMIT], many=True, context={"request": request})
        return Response({"count": queryset.count(), "filters": search.as_json(), "results": results.data})
