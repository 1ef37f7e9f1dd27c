"""Writing the audit trail. ``audit_record`` is the only way a record is made."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection, models, transaction
from django.utils import timezone

from apps.audit.actions import AuditAction
from apps.audit.chain import GENESIS_HASH, ChainReport, compute_record_hash, normalize_data
from apps.audit.models import ActorKind, AuditRecord
from apps.audit.selectors import audit_chain_verify

# Arbitrary constant naming the PostgreSQL advisory lock that serializes
# appends to the chain.
_CHAIN_LOCK_KEY = 0x5245_4D41_5544_4954  # "REMAUDIT"


@dataclass(frozen=True)
class Actor:
    """Who did something: a staff user, a customer, or the system itself."""

    kind: ActorKind
    id: str
    label: str

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls(ActorKind.SYSTEM, "", name)


@runtime_checkable
class ActsInAudit(Protocol):
    """Implemented by models that can act (e.g. Customer) without audit importing them."""

    def as_audit_actor(self) -> Actor: ...


AnyActor = Actor | AbstractBaseUser | ActsInAudit


def _resolve_actor(actor: AnyActor) -> Actor:
    if isinstance(actor, Actor):
        return actor
    if isinstance(actor, AbstractBaseUser):
        if not actor.is_authenticated or actor.pk is None:
            raise ValueError("An audited actor must be an authenticated, saved user.")
        return Actor(ActorKind.STAFF, str(actor.pk), actor.get_username())
    if isinstance(actor, ActsInAudit):
        return actor.as_audit_actor()
    raise TypeError(f"Cannot audit an action by {type(actor).__name__}.")


def _lock_chain_head() -> None:
    """Serialize appends until this transaction ends.

    Two transactions reading the same head would both link to it and fork the
    chain. The lock is transaction-scoped, so it is held until COMMIT and the
    chain order is the commit order. SQLite needs nothing: our settings open
    every transaction with BEGIN IMMEDIATE, which already serializes writers.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])


def audit_record(
    *,
    actor: AnyActor,
    action: AuditAction | str,
    target: models.Model | None = None,
    data: dict[str, Any] | None = None,
) -> AuditRecord:
    """Append one record to the audit trail, inside the caller's transaction.

    Call it in the same ``transaction.atomic`` block as the change it
    describes: if the change rolls back, so does its record. ``data`` must
    hold no unmasked personal numbers.
    """
    action = AuditAction(action)  # ValueError for a code not defined in actions.py
    who = _resolve_actor(actor)
    with transaction.atomic():
        _lock_chain_head()
        head = AuditRecord.objects.order_by("-sequence").values_list("sequence", "record_hash").first()
        sequence, previous_hash = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
        fields: dict[str, Any] = {
            "sequence": sequence,
            "created_at": timezone.now(),
            "actor_kind": who.kind.value if isinstance(who.kind, ActorKind) else who.kind,
            "actor_id": who.id,
            "actor_label": who.label[:150],
            "action": action.value,
            "target_type": target._meta.label_lower if target is not None else "",
            "target_id": str(target.pk) if target is not None else "",
            "target_label": str(target)[:200] if target is not None else "",
            "data": normalize_data(data or {}),
            "previous_hash": previous_hash,
        }
        return AuditRecord.objects.create(record_hash=compute_record_hash(**fields), **fields)


# --- perf branch (issue 18 item 2): bulk append for the batched dispatcher ----------------
# The same chaining as ``audit_record`` (one chain lock, one read of the head,
# then each record linked to the previous one), written with ONE INSERT. The
# audit engineer's sequencer (issue 18 item 3) replaces the lock and the
# chaining; this helper should then become a plain bulk insert of unchained rows.


@dataclass(frozen=True)
class AuditEntry:
    """One record for ``audit_record_many``: the arguments ``audit_record`` takes."""

    actor: AnyActor
    action: AuditAction | str
    target: models.Model | None = None
    data: dict[str, Any] | None = None


def audit_record_many(*, entries: list[AuditEntry]) -> list[AuditRecord]:
    """Append several records, in order, inside the caller's transaction, as ``audit_record`` would one by one."""
    if not entries:
        return []
    with transaction.atomic():
        _lock_chain_head()
        head = AuditRecord.objects.order_by("-sequence").values_list("sequence", "record_hash").first()
        sequence, previous_hash = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
        now = timezone.now()
        records = []
        for entry in entries:
            action = AuditAction(entry.action)
            who = _resolve_actor(entry.actor)
            target = entry.target
            fields: dict[str, Any] = {
                "sequence": sequence,
                "created_at": now,
                "actor_kind": who.kind.value if isinstance(who.kind, ActorKind) else who.kind,
                "actor_id": who.id,
                "actor_label": who.label[:150],
                "action": action.value,
                "target_type": target._meta.label_lower if target is not None else "",
                "target_id": str(target.pk) if target is not None else "",
                "target_label": str(target)[:200] if target is not None else "",
                "data": normalize_data(entry.data or {}),
                "previous_hash": previous_hash,
            }
            record = AuditRecord(record_hash=compute_record_hash(**fields), **fields)
            records.append(record)
            sequence, previous_hash = sequence + 1, record.record_hash
        return AuditRecord.objects.bulk_create(records)


def audit_chain_verification_run(*, actor: AnyActor) -> ChainReport:
    """Verify the whole hash chain now and append the outcome as an ``audit.chain.verified`` record.

    The one verification both ``manage.py audit_verify`` and the compliance
    workspace's "verify now" button run: the verification itself is recorded,
    so "last verified" and any break found are part of the trail (R8). The
    chain is read before the transaction that appends the record, which stays short.
    """
    report = audit_chain_verify()
    broken = report.first_break
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=AuditAction.AUDIT_CHAIN_VERIFIED,
            data={
                "intact": report.intact,
                "records_checked": report.records_checked,
                "broken_sequence": broken.sequence if broken else None,
                "reason": broken.reason if broken else "",
            },
        )
    return report
