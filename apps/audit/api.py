"""Audit API: the trail, read-only, for those who may view audit records."""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import generics, serializers

from apps.audit.models import AuditRecord
from apps.audit.selectors import AUDIT_RECORD_FIELDS, audit_records_list
from apps.common.api import require_permission


class AuditRecordListApi(generics.ListAPIView):
    """The audit trail, newest first; filter with ?action= and ?target_type=&target_id=."""

    permission_classes = (require_permission("audit.view_auditrecord"),)

    class OutputSerializer(serializers.ModelSerializer):
        class Meta:
            model = AuditRecord
            fields = AUDIT_RECORD_FIELDS

    serializer_class = OutputSerializer

    def get_queryset(self) -> QuerySet[AuditRecord]:
        params = self.request.query_params
        return audit_records_list(
            action=params.get("action", ""),
            target_type=params.get("target_type", ""),
            target_id=params.get("target_id", ""),
        )
