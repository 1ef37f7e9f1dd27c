"""Audit API: the trail, read-only, for those who may view audit records.

Personal data leaves masked, always: services store it masked, and records
written before they did (or free text that slipped through) are masked on
the way out. Personal data in clear is a compliance export's business
(``compliance.unmask_personal_data``, each one audited).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import generics, serializers

from apps.audit.models import AuditRecord
from apps.audit.selectors import AUDIT_RECORD_FIELDS, audit_records_list
from apps.common.api import require_permission
from apps.common.masking import PERSON_TARGET_TYPES, mask_data, mask_text


class AuditRecordListApi(generics.ListAPIView):
    """The audit trail, newest first; filter with ?action= and ?target_type=&target_id=."""

    permission_classes = (require_permission("audit.view_auditrecord"),)

    class OutputSerializer(serializers.ModelSerializer):
        class Meta:
            model = AuditRecord
            fields = AUDIT_RECORD_FIELDS

        def to_representation(self, instance: AuditRecord) -> dict[str, Any]:
            # The hashes are over the stored values; a masked copy is for reading, not verifying.
            data: dict[str, Any] = super().to_representation(instance)
            data["data"] = mask_data(instance.data, about_a_person=instance.target_type in PERSON_TARGET_TYPES)
            data["target_label"] = mask_text(instance.target_label)
            data["actor_label"] = mask_text(instance.actor_label)
            return data

    serializer_class = OutputSerializer

    def get_queryset(self) -> QuerySet[AuditRecord]:
        params = self.request.query_params
        return audit_records_list(
            action=params.get("action", ""),
            target_type=params.get("target_type", ""),
            target_id=params.get("target_id", ""),
        )
