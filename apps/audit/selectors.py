from __future__ import annotations

from django.db.models import QuerySet

from apps.audit.chain import ChainReport, verify_chain
from apps.audit.models import AuditRecord

# The fields of an audit record that leave the database, in this order: the
# audit API shows them all; compliance exports all but ``previous_hash``
# (apps.compliance.selectors.RECORD_FIELDS).
AUDIT_RECORD_FIELDS = (
    "sequence",
    "created_at",
    "actor_kind",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "data",
    "previous_hash",
    "record_hash",
)


def audit_chain_verify() -> ChainReport:
    """Recompute the whole chain in sequence order, streaming rows in chunks."""
    return verify_chain(AuditRecord.objects.order_by("sequence").iterator(chunk_size=2000))


def audit_records_list(*, action: str = "", target_type: str = "", target_id: str = "") -> QuerySet[AuditRecord]:
    """The audit trail, newest first; each given part (an exact action code, target type or id) must match."""
    queryset = AuditRecord.objects.order_by("-sequence")
    if action:
        queryset = queryset.filter(action=action)
    if target_type:
        queryset = queryset.filter(target_type=target_type)
    if target_id:
        queryset = queryset.filter(target_id=target_id)
    return queryset
