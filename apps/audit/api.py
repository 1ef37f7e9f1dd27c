from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import generics, serializers

from apps.audit.models import AuditRecord
from apps.audit.selectors import AUDIT_RECORD_FIELDS
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
        queryset = AuditRecord.objects.order_by("-sequence")
        params = self.request.query_params
        if action := params.get("action"):
            queryset = queryset.filter(action=action)
        if target_type := params.get("target_type"):
            queryset = queryset.filter(target_type=target_type)
        if target_id := params.get("target_id"):
            queryset = queryset.filter(target_id=target_id)
        return queryset
