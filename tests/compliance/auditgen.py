"""Realistic audit rows, fast: a valid hash chain computed here, written in bulk.

``audit_record`` appends one record per call under the chain lock (about
2,000 a second on SQLite, 700 on PostgreSQL here), too slow for the hundreds
of thousands of rows the memory tests and the benchmark need. The rows below
are what services write (masked numbers, customer labels with names, Gate 1
refusals with reasons) and carry correct ``previous_hash``/``record_hash``, so
``audit_chain_verify`` accepts the result. Used by tests/compliance and
bench/export_bench.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from apps.audit.chain import GENESIS_HASH, compute_record_hash, normalize_data
from apps.audit.models import AuditRecord

SURNAMES = "王李张刘陈杨黄赵吴周"
GIVEN = ("伟", "芳", "三丰", "秀英", "娜", "敏", "静", "丽", "强", "磊")
REFUSAL_REASONS = ("blacklisted", "no_matching_customer", "account_not_found", "account_status", "too_many_attempts")
BUSINESSES = ("activation", "password_reset", "lost_report_release", "info_maintenance", "corporate_intent")


def row_content(number: int) -> dict[str, Any]:
    """The content of the ``number``-th generated record (without sequence, time and hashes)."""
    name = SURNAMES[number % len(SURNAMES)] + GIVEN[(number // 10) % len(GIVEN)]
    customer = f"C{number % 100_000:09d}"
    kind = number % 5
    if kind == 0:
        return {
            "actor_kind": "customer",
            "actor_id": "",
            "actor_label": f"visit {number:08d}",
            "action": "verification.visit.started",
            "target_type": "visits.visit",
            "target_id": str(number),
            "target_label": f"visit {number:08d}",
            "data": {"business": BUSINESSES[number % len(BUSINESSES)], "mobile": "138****5678"},
        }
    if kind == 1:
        return {
            "actor_kind": "customer",
            "actor_id": str(number % 100_000),
            "actor_label": customer,
            "action": "verification.visit.refused",
            "target_type": "visits.visit",
            "target_id": str(number),
            "target_label": f"visit {number:08d}",
            "data": {
                "from": "identity_matched",
                "reason": REFUSAL_REASONS[(number // 5) % len(REFUSAL_REASONS)],
                "account": "621786*********0003",
            },
        }
    if kind == 2:
        return {
            "actor_kind": "system",
            "actor_id": "",
            "actor_label": "demo seed",
            "action": "customers.customer.updated",
            "target_type": "customers.customer",
            "target_id": str(number % 100_000),
            "target_label": f"{customer} {name}",
            "data": {"name": name, "id_number": "1101**********1237", "mobile": "139****0001"},
        }
    if kind == 3:
        return {
            "actor_kind": "staff",
            "actor_id": str(number % 50),
            "actor_label": f"agent{number % 50:02d}",
            "action": "queueing.entry.offer_accepted",
            "target_type": "queueing.queueentry",
            "target_id": str(number),
            "target_label": f"entry {number}",
            "data": {"queue": "personal-a", "waited_seconds": number % 300},
        }
    return {
        "actor_kind": "staff",
        "actor_id": str(number % 50),
        "actor_label": f"agent{number % 50:02d}",
        "action": "queueing.agent.state_changed",
        "target_type": "queueing.agentpresence",
        "target_id": str(number % 50),
        "target_label": f"E{number % 50:04d} 坐席 available",
        "data": {"from": "wrap_up", "to": "available"},
    }


def chain_head() -> tuple[int, str]:
    head = AuditRecord.objects.order_by("-sequence").values_list("sequence", "record_hash").first()
    return (head[0], head[1]) if head else (0, GENESIS_HASH)


def generate_rows(
    count: int, *, after_sequence: int, previous_hash: str, start: datetime, step: timedelta
) -> Iterator[dict[str, Any]]:
    """``count`` records continuing the chain after (``after_sequence``, ``previous_hash``)."""
    for offset in range(count):
        sequence = after_sequence + offset + 1
        fields = row_content(sequence)
        fields["data"] = normalize_data(fields["data"])
        fields.update(sequence=sequence, created_at=start + step * offset, previous_hash=previous_hash)
        fields["record_hash"] = previous_hash = compute_record_hash(**fields)
        yield fields


def append_rows(count: int, *, start: datetime, step: timedelta = timedelta(seconds=1), batch: int = 2000) -> None:
    """Append ``count`` generated records to the chain with bulk inserts (tests: SQLite or PostgreSQL)."""
    sequence, previous = chain_head()
    buffer: list[AuditRecord] = []
    for fields in generate_rows(count, after_sequence=sequence, previous_hash=previous, start=start, step=step):
        buffer.append(AuditRecord(**fields))
        if len(buffer) >= batch:
            AuditRecord.objects.bulk_create(buffer)
            buffer.clear()
    if buffer:
        AuditRecord.objects.bulk_create(buffer)
