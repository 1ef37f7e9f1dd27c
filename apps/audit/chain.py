"""Hashing and verification of the audit chain."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

# The hash the first record links to.
GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    """One byte-exact JSON form: sorted keys, no spaces, non-ASCII kept."""
    return json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def normalize_data(data: dict[str, Any]) -> dict[str, Any]:
    """Round-trip through canonical JSON so that what is stored is exactly what was hashed.

    (Dates, decimals and UUIDs become strings here, not on the way out of the
    database, where PostgreSQL's jsonb would otherwise hand back other types.)
    """
    return dict(json.loads(canonical_json(data)))


def compute_record_hash(
    *,
    sequence: int,
    created_at: datetime,
    actor_kind: str,
    actor_id: str,
    actor_label: str,
    action: str,
    target_type: str,
    target_id: str,
    target_label: str,
    data: dict[str, Any],
    previous_hash: str,
) -> str:
    content = canonical_json(
        {
            "sequence": sequence,
            # UTC ISO form: the same instant hashes the same whatever the
            # database or the time zone it hands back.
            "created_at": created_at.astimezone(UTC).isoformat(),
            "actor": [actor_kind, actor_id, actor_label],
            "action": action,
            "target": [target_type, target_id, target_label],
            "data": data,
            "previous_hash": previous_hash,
        }
    )
    return hashlib.sha256(content.encode()).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    sequence: int
    record_id: int
    reason: str


@dataclass(frozen=True)
class ChainReport:
    records_checked: int
    last_sequence: int
    last_hash: str
    first_break: ChainBreak | None

    @property
    def intact(self) -> bool:
        return self.first_break is None


def verify_chain(records: Iterable[Any]) -> ChainReport:
    """Walk records in sequence order; report the first broken link, if any.

    ``records`` are AuditRecord instances (or anything with the same fields),
    ordered by ``sequence``.
    """
    expected_previous = GENESIS_HASH
    expected_sequence = 1
    checked = 0
    for record in records:
        checked += 1
        if record.sequence != expected_sequence:
            return ChainReport(
                checked,
                record.sequence,
                record.record_hash,
                ChainBreak(
                    record.sequence,
                    record.pk,
                    f"sequence jumps from {expected_sequence - 1} to {record.sequence}: "
                    f"record(s) {expected_sequence}..{record.sequence - 1} were deleted",
                ),
            )
        if record.previous_hash != expected_previous:
            return ChainReport(
                checked,
                record.sequence,
                record.record_hash,
                ChainBreak(record.sequence, record.pk, "previous_hash does not match the record before it"),
            )
        recomputed = compute_record_hash(
            sequence=record.sequence,
            created_at=record.created_at,
            actor_kind=record.actor_kind,
            actor_id=record.actor_id,
            actor_label=record.actor_label,
            action=record.action,
            target_type=record.target_type,
            target_id=record.target_id,
            target_label=record.target_label,
            data=record.data,
            previous_hash=record.previous_hash,
        )
        if recomputed != record.record_hash:
            return ChainReport(
                checked,
                record.sequence,
                record.record_hash,
                ChainBreak(record.sequence, record.pk, "content does not match its hash: the record was edited"),
            )
        expected_previous = record.record_hash
        expected_sequence += 1
    return ChainReport(checked, expected_sequence - 1, expected_previous, None)
