"""Writing the audit trail. ``audit_record`` is the only way a record is made."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection, models, transaction
from django.utils import timezone

from apps.audit import checkpoints
from apps.audit.actions import AuditAction
from apps.audit.chain import GENESIS_HASH, ChainReport, compute_record_hash, normalize_data
from apps.audit.models import ActorKind, AuditRecord, PendingAuditRecord
from apps.audit.selectors import audit_chain_verify

# Arbitrary constant naming the PostgreSQL advisory lock that serializes
# appends to the chain (transaction-scoped: held by one append or one
# sequencer batch at a time).
_CHAIN_LOCK_KEY = 0x5245_4D41_5544_4954  # "REMAUDIT"
# The session-scoped advisory lock the active sequencer holds for as long as
# it runs: a second sequencer waits on standby, the housekeeping fallback
# steps aside.
SEQUENCER_LOCK_KEY = 0x5245_4D53_4551_5545  # "REMSEQUE"

_CONTENT_FIELDS = (
    "created_at",
    "actor_kind",
    "actor_id",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "data",
)


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


def audit_chain_mode() -> str:
    """``"sequencer"`` or ``"inline"`` (settings.AUDIT_CHAIN_MODE; SQLite is always inline)."""
    if connection.vendor != "postgresql":
        return "inline"
    mode = str(settings.AUDIT_CHAIN_MODE)
    return "sequencer" if mode == "auto" else mode


def _chain_head() -> tuple[int, str]:
    head = AuditRecord.objects.order_by("-sequence").values_list("sequence", "record_hash").first()
    return (head[0], head[1]) if head else (0, GENESIS_HASH)


def _chained(content: dict[str, Any], *, sequence: int, previous_hash: str, pending_id: int | None) -> AuditRecord:
    fields = {**content, "sequence": sequence, "previous_hash": previous_hash}
    return AuditRecord(record_hash=compute_record_hash(**fields), pending_id=pending_id, **fields)


def audit_record(
    *,
    actor: AnyActor,
    action: AuditAction | str,
    target: models.Model | None = None,
    data: dict[str, Any] | None = None,
) -> AuditRecord | PendingAuditRecord:
    """Write one record of the audit trail, inside the caller's transaction.

    Call it in the same ``transaction.atomic`` block as the change it
    describes: if the change rolls back, so does its record. ``data`` must
    hold no unmasked personal numbers.

    In sequencer mode (PostgreSQL) the record is queued as a
    ``PendingAuditRecord``, a plain INSERT that waits for no one; the
    sequencer chains it within ``AUDIT_CHAIN_BOUND_SECONDS`` of its commit.
    Inline, it is chained here under the chain lock and returned chained.
    """
    # ValueError (in _content) for an action code not defined in actions.py.
    content = _content(AuditEntry(actor=actor, action=action, target=target, data=data), now=timezone.now())
    if audit_chain_mode() == "sequencer":
        return _pending_insert(content)
    with transaction.atomic():
        _lock_chain_head()
        sequence, previous_hash = _chain_head()
        record = _chained(content, sequence=sequence + 1, previous_hash=previous_hash, pending_id=None)
        record.save()
        return record


_PENDING_COLUMNS = (
    "created_at",
    "actor_kind",
    "actor_id",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "data",
)
# One row's placeholders: the columns, the last (data) JSON text cast to jsonb.
_PENDING_ROW = f"({', '.join(['%s'] * (len(_PENDING_COLUMNS) - 1))}, %s::jsonb)"


def _pending_insert(content: dict[str, Any]) -> PendingAuditRecord:
    """Queue one record: the same row as ``PendingAuditRecord.objects.create(**content)``, in one plain INSERT."""
    return _pending_insert_many([content])[0]


def _pending_insert_many(contents: list[dict[str, Any]]) -> list[PendingAuditRecord]:
    """Queue records, in order, with ONE plain INSERT (ids in the given order: the sequencer chains them so).

    Every audited write of every service on PostgreSQL comes through here.
    The ORM's create compiled the statement and ran the model's save
    machinery each time: 0.50 CPU-ms per audited write against 0.35–0.38
    with this (2026-12-04, one process, BEGIN + INSERT + COMMIT; the
    sequencer's throughput bench is bench/audit_bench.py); ``bulk_create``
    of a dispatch batch's 16 records was 1.5 ms of Python. ``data`` is
    stored as JSON text cast to jsonb, as the JSONField stores it.
    """
    params: list[Any] = []
    for content in contents:
        params += [content[column] for column in _PENDING_COLUMNS[:-1]]
        params.append(json.dumps(content["data"]))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {PendingAuditRecord._meta.db_table} ({', '.join(_PENDING_COLUMNS)}) "  # noqa: S608 - our names
            f"VALUES {', '.join([_PENDING_ROW] * len(contents))} RETURNING id",
            params,
        )
        ids = sorted(pk for (pk,) in cursor.fetchall())
    records = []
    for pk, content in zip(ids, contents, strict=True):
        record = PendingAuditRecord(id=pk, **content)
        record._state.adding = False
        record._state.db = connection.alias
        records.append(record)
    return records


def audit_pending_integrate(*, limit: int | None = None) -> int:
    """Chain up to ``limit`` committed pending records, lowest id first; return how many.

    One transaction: read the queue, append the records after the head,
    delete what was chained. Killed half-way, it leaves nothing (the
    transaction rolls back whole) and the next run starts from the same head.

    Why nothing is skipped: a row inserted by a transaction that commits late
    (a lower id than rows already chained) is still in the queue when it
    becomes visible, and the next batch chains it; the queue is "every
    committed pending row", never "ids after the last one". Why the order is
    the commit order: a batch holds exactly the rows committed before its
    snapshot, so a record chained in an earlier batch committed before every
    record of a later one; and a record written after another's commit has a
    higher id (ids are drawn at INSERT), so within a batch it comes later too.
    (Trillian's log sequencer integrates its queue of unsequenced leaves the
    same way: read a batch, assign the next indexes, delete from the queue,
    in one transaction under its master election.)

    The chain lock makes any two integrators (and inline appends) take turns,
    and ``sequence``, ``record_hash`` and ``pending_id`` are unique: even two
    sequencers at once cannot fork the chain.
    """
    limit = limit or int(settings.AUDIT_SEQUENCER_BATCH)
    with transaction.atomic():
        _lock_chain_head()
        pending = list(PendingAuditRecord.objects.order_by("id").values("id", *_CONTENT_FIELDS)[:limit])
        if not pending:
            return 0
        sequence, previous_hash = _chain_head()
        records = []
        for row in pending:
            content = {name: row[name] for name in _CONTENT_FIELDS}
            content["data"] = normalize_data(content["data"])
            sequence += 1
            record = _chained(content, sequence=sequence, previous_hash=previous_hash, pending_id=row["id"])
            previous_hash = record.record_hash
            records.append(record)
        AuditRecord.objects.bulk_create(records, batch_size=1000)
        # Raw DELETE: the queryset's delete would first SELECT what to
        # collect. The pending table's trigger checks each row is chained.
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {PendingAuditRecord._meta.db_table} WHERE id = ANY(%s)",  # noqa: S608 - our own table name
                [[row["id"] for row in pending]],
            )
    return len(pending)


def audit_sequencer_lock_try() -> bool:
    """Become the active sequencer if no one else is (session-scoped; PostgreSQL)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [SEQUENCER_LOCK_KEY])
        return bool(cursor.fetchone()[0])


def audit_pending_sweep() -> int:
    """The housekeeping fallback: chain the queue when no sequencer is running.

    Embedded and small installations may run no sequencer; the dispatcher's
    housekeeping round then chains the queue (slower than the bound: docs
    say to run the sequencer). When a sequencer holds its lock this does
    nothing, so the two never compete.
    """
    if connection.vendor != "postgresql" or not PendingAuditRecord.objects.exists():
        return 0
    total = 0
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [SEQUENCER_LOCK_KEY])
            if not cursor.fetchone()[0]:
                return 0
        while chained := audit_pending_integrate():
            total += chained
    return total


def audit_checkpoint_sign(
    *, now: Any = None, tree: checkpoints.CompactRange | None = None
) -> checkpoints.Checkpoint | None:
    """Sign the current chain head (size, head hash, RFC 6962 Merkle root) into the write-once directory.

    Returns the checkpoint, or None when the newest checkpoint already covers
    the head. ``tree`` is the caller's running Merkle state (the sequencer
    keeps one), extended here with only the records it has not seen;
    without it every record's hash is read.
    """
    size, head_hash = _chain_head()
    latest = checkpoints.checkpoint_latest()
    if size == 0 or (latest is not None and latest.tree_size >= size):
        return None
    tree = tree if tree is not None else checkpoints.CompactRange()
    hashes = (
        AuditRecord.objects.filter(sequence__gt=tree.size, sequence__lte=size)
        .order_by("sequence")
        .values_list("record_hash", flat=True)
    )
    for value in hashes.iterator(chunk_size=5000):
        tree.append(bytes.fromhex(value))
    return checkpoints.checkpoint_write(
        tree_size=size, head_hash=head_hash, merkle_root=tree.root().hex(), signed_at=now or timezone.now()
    )


# --- Bulk append (the batched dispatcher, issue 18) -----------------------------------------


@dataclass(frozen=True)
class AuditEntry:
    """One record for ``audit_record_many``: the arguments ``audit_record`` takes."""

    actor: AnyActor
    action: AuditAction | str
    target: models.Model | None = None
    data: dict[str, Any] | None = None


def _content(entry: AuditEntry, *, now: Any) -> dict[str, Any]:
    """The columns of one record before it is chained (``audit_record`` and ``audit_record_many``)."""
    action = AuditAction(entry.action)
    who = _resolve_actor(entry.actor)
    target = entry.target
    return {
        "created_at": now,
        "actor_kind": who.kind.value if isinstance(who.kind, ActorKind) else who.kind,
        "actor_id": who.id,
        "actor_label": who.label[:150],
        "action": action.value,
        "target_type": target._meta.label_lower if target is not None else "",
        "target_id": str(target.pk) if target is not None else "",
        "target_label": str(target)[:200] if target is not None else "",
        "data": normalize_data(entry.data or {}),
    }


def audit_record_many(*, entries: list[AuditEntry]) -> list[AuditRecord] | list[PendingAuditRecord]:
    """Append several records, in order, inside the caller's transaction, with ONE INSERT.

    The same as ``audit_record`` one by one: queued for the sequencer in
    sequencer mode (ids keep their order, so the sequencer chains them in
    this order), chained here under the chain lock inline.
    """
    if not entries:
        return []
    now = timezone.now()
    contents = [_content(entry, now=now) for entry in entries]
    if audit_chain_mode() == "sequencer":
        return _pending_insert_many(contents)
    with transaction.atomic():
        _lock_chain_head()
        sequence, previous_hash = _chain_head()
        records = []
        for content in contents:
            sequence += 1
            record = _chained(content, sequence=sequence, previous_hash=previous_hash, pending_id=None)
            records.append(record)
            previous_hash = record.record_hash
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


# When this process last considered signing a checkpoint from housekeeping
# (monotonic seconds): one look per AUDIT_CHECKPOINT_SECONDS, not per round.
_checkpoint_looked_at: list[float] = [float("-inf")]


def audit_checkpoint_sweep() -> checkpoints.Checkpoint | None:
    """Housekeeping: sign a checkpoint every ``AUDIT_CHECKPOINT_SECONDS`` where no sequencer does it.

    Embedded SQLite has no sequencer, and a PostgreSQL installation may run
    none; when one holds its lock, it signs and this steps aside. Reads every
    record's hash (no running Merkle state here): fine for the small
    installations this serves.
    """
    every = int(settings.AUDIT_CHECKPOINT_SECONDS)
    now = time.monotonic()
    if not every or now - _checkpoint_looked_at[0] < every:
        return None
    _checkpoint_looked_at[0] = now
    if connection.vendor != "postgresql":
        return audit_checkpoint_sign()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [SEQUENCER_LOCK_KEY])
        if not cursor.fetchone()[0]:
            return None
        return audit_checkpoint_sign()


def audit_checkpoint_export(*, actor: AnyActor) -> tuple[checkpoints.Checkpoint, bytes]:
    """The newest signed checkpoint (signed now if the head moved), as handed out with the daily report; audited.

    Each copy that leaves the system is one more place the database cannot
    rewrite: an auditor holding it can check the chain's head, and any
    record's inclusion, against it.
    """
    audit_checkpoint_sign()
    checkpoint = checkpoints.checkpoint_latest()
    if checkpoint is None or checkpoint.path is None:
        raise LookupError("The audit trail is empty: there is no checkpoint to export.")
    content = checkpoint.path.read_bytes()
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=AuditAction.AUDIT_CHECKPOINT_EXPORTED,
            data={
                "tree_size": checkpoint.tree_size,
                "head_hash": checkpoint.head_hash,
                "merkle_root": checkpoint.merkle_root,
                "key_id": checkpoint.key_id,
                "sha256": hashlib.sha256(content).hexdigest(),
            },
        )
    return checkpoint, content
