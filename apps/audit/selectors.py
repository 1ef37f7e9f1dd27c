from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from apps.audit import checkpoints
from apps.audit.chain import ChainBreak, ChainReport, verify_chain
from apps.audit.models import AuditRecord, PendingAuditRecord

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
    """Recompute the whole chain in sequence order, then hold it against the newest signed checkpoint.

    Faults, the first found reported as the report's ``first_break``:
    a broken link or edited record (as always); a checkpoint that does not
    verify; a chain shorter than the checkpoint (its newest records were
    deleted); a record at the checkpoint's size, or a Merkle root over the
    first ``tree_size`` records, that differs from the signed one (the chain
    was edited and re-chained); a pending record older than
    ``AUDIT_CHAIN_BOUND_SECONDS`` (the sequencer is down or behind).
    """
    try:
        checkpoint = checkpoints.checkpoint_latest()
    except checkpoints.CheckpointInvalid as exc:
        return ChainReport(0, 0, "", ChainBreak(0, 0, f"checkpoint invalid: {exc}"))
    tree = checkpoints.CompactRange()
    at_checkpoint: list[AuditRecord] = []

    def records() -> Iterator[AuditRecord]:
        for record in AuditRecord.objects.order_by("sequence").iterator(chunk_size=2000):
            if checkpoint is not None and tree.size < checkpoint.tree_size:
                tree.append(bytes.fromhex(record.record_hash))
                if tree.size == checkpoint.tree_size:
                    at_checkpoint.append(record)
            yield record

    report = verify_chain(records())
    if not report.intact or checkpoint is None:
        return report if not report.intact else _with_pending_check(report)
    fault = ""
    if report.last_sequence < checkpoint.tree_size:
        fault = (
            f"the chain ends at sequence {report.last_sequence} but checkpoint {checkpoint.signed_at} signed "
            f"{checkpoint.tree_size} records: the newest records were deleted"
        )
    elif at_checkpoint[0].record_hash != checkpoint.head_hash or tree.root().hex() != checkpoint.merkle_root:
        fault = (
            f"record {checkpoint.tree_size} or a record before it differs from checkpoint {checkpoint.signed_at}: "
            "the chain was edited and re-chained"
        )
    if fault:
        record_id = at_checkpoint[0].pk if at_checkpoint else 0
        sequence = min(report.last_sequence + 1, checkpoint.tree_size)
        return ChainReport(
            report.records_checked, report.last_sequence, report.last_hash, ChainBreak(sequence, record_id, fault)
        )
    return _with_pending_check(report)


def _with_pending_check(report: ChainReport) -> ChainReport:
    bound = int(settings.AUDIT_CHAIN_BOUND_SECONDS)
    overdue = PendingAuditRecord.objects.filter(created_at__lt=timezone.now() - timedelta(seconds=bound))
    oldest = overdue.order_by("id").first()
    if oldest is None:
        return report
    reason = (
        f"{overdue.count()} pending record(s) not chained within {bound} s (the oldest, pending id {oldest.pk}, "
        f"written {oldest.created_at.isoformat()}): is the audit sequencer running?"
    )
    return ChainReport(
        report.records_checked, report.last_sequence, report.last_hash, ChainBreak(report.last_sequence + 1, 0, reason)
    )


def audit_pending_lag_seconds() -> float:
    """How far the chain is behind: the age of the oldest pending record (0 when the queue is empty)."""
    oldest = PendingAuditRecord.objects.order_by("id").values_list("created_at", flat=True).first()
    return max(0.0, (timezone.now() - oldest).total_seconds()) if oldest else 0.0


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


def audit_inclusion_proof(*, sequence: int) -> dict[str, object]:
    """Prove record ``sequence`` is in the tree of the newest signed checkpoint (RFC 6962 audit path).

    What an auditor needs, without the rest of the trail: the record's
    content (to recompute ``record_hash``), its leaf index, the audit path
    and the signed checkpoint (to check the root and the signature with our
    public key). Raises LookupError when no checkpoint covers the record yet.
    """
    checkpoint = checkpoints.checkpoint_latest()
    if checkpoint is None or checkpoint.path is None or sequence > checkpoint.tree_size or sequence < 1:
        raise LookupError(f"No signed checkpoint covers record {sequence} yet.")
    leaves = [
        bytes.fromhex(value)
        for value in AuditRecord.objects.filter(sequence__lte=checkpoint.tree_size)
        .order_by("sequence")
        .values_list("record_hash", flat=True)
        .iterator(chunk_size=5000)
    ]
    record = AuditRecord.objects.get(sequence=sequence)
    document = json.loads(checkpoint.path.read_text(encoding="utf-8"))
    return {
        "record": {name: getattr(record, name) for name in AUDIT_RECORD_FIELDS},
        "record_hash": record.record_hash,
        "leaf_index": sequence - 1,
        "audit_path": [node.hex() for node in checkpoints.inclusion_proof(leaves, sequence - 1)],
        "checkpoint": document["checkpoint"],
        "signature": document["signature"],
        "public_key": document["public_key"],
    }
