"""Signed checkpoints (issue #17 item 5): tail deletion and re-chaining are caught against the last one."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from apps.audit import checkpoints
from apps.audit.actions import AuditAction
from apps.audit.chain import compute_record_hash
from apps.audit.models import AuditRecord
from apps.audit.selectors import audit_chain_verify
from apps.audit.services import Actor, audit_checkpoint_sign, audit_record
from apps.audit.triggers import audit_triggers_suspended

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("tests")


@pytest.fixture(autouse=True)
def _own_checkpoints(settings: Any, tmp_path: Path) -> None:
    settings.AUDIT_CHECKPOINT_DIR = tmp_path / "checkpoints"
    settings.AUDIT_SIGNING_KEY_FILE = tmp_path / "key.pem"


def _append(count: int) -> list[AuditRecord]:
    with transaction.atomic():
        records = [audit_record(actor=SYSTEM, action=AuditAction.BRANCH_CREATED, data={"n": n}) for n in range(count)]
    assert all(isinstance(record, AuditRecord) for record in records)
    return records  # type: ignore[return-value]


def _rechain_from(sequence: int) -> None:
    """What an attacker with the owner's rights does after editing a record: recompute every later hash."""
    previous = AuditRecord.objects.get(sequence=sequence - 1).record_hash if sequence > 1 else "0" * 64
    with audit_triggers_suspended(connection), connection.cursor() as cursor:
        for record in AuditRecord.objects.filter(sequence__gte=sequence).order_by("sequence"):
            fields = {
                name: getattr(record, name)
                for name in (
                    "sequence",
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
            }
            new_hash = compute_record_hash(**fields, previous_hash=previous)
            cursor.execute(
                "UPDATE audit_auditrecord SET previous_hash = %s, record_hash = %s WHERE id = %s",
                [previous, new_hash, record.pk],
            )
            previous = new_hash


def test_a_checkpoint_is_signed_written_once_and_read_back() -> None:
    records = _append(3)
    checkpoint = audit_checkpoint_sign()
    assert checkpoint is not None and checkpoint.path is not None
    assert checkpoint.tree_size == records[-1].sequence
    assert checkpoint.head_hash == records[-1].record_hash
    assert audit_checkpoint_sign() is None  # the head did not move
    assert checkpoints.checkpoint_latest() == checkpoint
    assert not os.access(checkpoint.path, os.W_OK) or os.geteuid() == 0
    assert oct(checkpoint.path.stat().st_mode & 0o777) == oct(0o444)
    with pytest.raises(FileExistsError):  # never overwritten
        os.open(checkpoint.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    leaves = [bytes.fromhex(h) for h in AuditRecord.objects.order_by("sequence").values_list("record_hash", flat=True)]
    assert checkpoint.merkle_root == checkpoints.merkle_root(leaves).hex()
    assert audit_chain_verify().intact


def test_deleting_the_newest_records_is_detected_against_the_checkpoint() -> None:
    _append(4)
    checkpoint = audit_checkpoint_sign()
    assert checkpoint is not None
    newest = AuditRecord.objects.order_by("-sequence")[:2]
    with audit_triggers_suspended(connection), connection.cursor() as cursor:
        for record in newest:
            cursor.execute("DELETE FROM audit_auditrecord WHERE id = %s", [record.pk])
    report = audit_chain_verify()
    assert report.first_break is not None
    assert "newest records were deleted" in report.first_break.reason
    assert report.records_checked == checkpoint.tree_size - 2
    with pytest.raises(CommandError, match="newest records were deleted"):
        call_command("audit_verify")


def test_editing_a_record_and_rechaining_everything_is_detected_against_the_checkpoint() -> None:
    records = _append(5)
    assert audit_checkpoint_sign() is not None
    victim = records[1]
    with audit_triggers_suspended(connection), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditrecord SET actor_label = %s WHERE id = %s", ["someone else", victim.pk])
    _rechain_from(victim.sequence)
    # Without the checkpoint the re-chained trail would look intact:
    rows = AuditRecord.objects.order_by("sequence").iterator()
    from apps.audit.chain import verify_chain

    assert verify_chain(rows).intact
    report = audit_chain_verify()
    assert report.first_break is not None
    assert "re-chained" in report.first_break.reason


def test_records_after_the_checkpoint_still_verify_and_a_forged_checkpoint_is_refused() -> None:
    _append(2)
    checkpoint = audit_checkpoint_sign()
    assert checkpoint is not None and checkpoint.path is not None
    _append(3)  # the chain moves on after the checkpoint
    assert audit_chain_verify().intact
    # A checkpoint signed with another key (an attacker's) does not count.
    document = json.loads(checkpoint.path.read_text())
    document["checkpoint"]["tree_size"] = 1
    forged = checkpoint.path.with_name("checkpoint-999999999999-forged.json")
    forged.write_text(json.dumps(document))
    report = audit_chain_verify()
    assert report.first_break is not None
    assert "signature does not verify" in report.first_break.reason


def test_merkle_tree_matches_the_rfc_6962_test_vectors_and_proves_inclusion() -> None:
    # The certificate-transparency reference vectors (RFC 6962's merkle_tree tests).
    leaves = [
        bytes.fromhex(value)
        for value in (
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        )
    ]
    roots = {
        1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    }
    for size, root in roots.items():
        assert checkpoints.merkle_root(leaves[:size]).hex() == root
    root8 = bytes.fromhex(roots[8])
    for index in range(8):
        proof = checkpoints.inclusion_proof(leaves, index)
        assert len(proof) == 3
        assert checkpoints.inclusion_verify(leaf=leaves[index], index=index, tree_size=8, proof=proof, root=root8)
        other = leaves[(index + 1) % 8]
        assert not checkpoints.inclusion_verify(leaf=other, index=index, tree_size=8, proof=proof, root=root8)
    assert hashlib.sha256(b"").hexdigest() == checkpoints.EMPTY_ROOT.hex()


def test_one_records_inclusion_is_proven_against_the_signed_checkpoint(capsys: Any) -> None:
    records = _append(6)
    checkpoint = audit_checkpoint_sign()
    assert checkpoint is not None
    call_command("audit_inclusion_proof", str(records[2].sequence))
    proof = json.loads(capsys.readouterr().out)
    assert proof["checkpoint"]["tree_size"] == checkpoint.tree_size
    assert proof["record_hash"] == records[2].record_hash
    assert checkpoints.inclusion_verify(
        leaf=bytes.fromhex(proof["record_hash"]),
        index=proof["leaf_index"],
        tree_size=checkpoint.tree_size,
        proof=[bytes.fromhex(value) for value in proof["audit_path"]],
        root=bytes.fromhex(checkpoint.merkle_root),
    )


def test_the_checkpoint_goes_out_with_the_daily_report_to_compliance_only(
    client: Any, compliance_officer: Any, agent: Any
) -> None:
    from django.urls import reverse

    from tests.security.helpers import force_login_verified

    records = _append(2)
    url = reverse("compliance-workspace:audit-checkpoint")
    force_login_verified(client, agent)
    assert client.get(url).status_code == 403
    force_login_verified(client, compliance_officer)
    report_page: Any = client.get(reverse("compliance-workspace:daily-report"), {"from": "2026-03-01"})
    assert report_page.status_code == 200
    report_page = report_page.content.decode()
    assert url in report_page
    response = client.get(url)
    assert response.status_code == 200
    document = json.loads(b"".join(response.streaming_content) if response.streaming else response.content)
    assert document["checkpoint"]["tree_size"] >= records[-1].sequence
    exported = AuditRecord.objects.filter(action=AuditAction.AUDIT_CHECKPOINT_EXPORTED).get()
    assert exported.actor_label == compliance_officer.username
    assert exported.data["tree_size"] == document["checkpoint"]["tree_size"]
    assert exported.data["sha256"] == hashlib.sha256(response.content).hexdigest()


def test_housekeeping_signs_checkpoints_where_no_sequencer_does(settings: Any) -> None:
    from apps.audit import services
    from apps.common.signals import housekeeping_due

    settings.AUDIT_CHECKPOINT_SECONDS = 60
    services._checkpoint_looked_at[0] = float("-inf")
    records = _append(2)
    housekeeping_due.send(sender=None, now=None)
    latest = checkpoints.checkpoint_latest()
    assert latest is not None and latest.tree_size == records[-1].sequence
    _append(1)
    housekeeping_due.send(sender=None, now=None)  # within the minute: no new checkpoint
    assert checkpoints.checkpoint_latest() == latest
    assert audit_chain_verify().intact
