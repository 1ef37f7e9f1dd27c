from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, IntegrityError, connection, transaction
from psycopg import sql

from apps.audit.actions import AuditAction
from apps.audit.chain import GENESIS_HASH
from apps.audit.models import AppendOnlyError, AuditRecord
from apps.audit.selectors import audit_chain_verify
from apps.audit.services import Actor, audit_record
from apps.audit.triggers import audit_triggers_suspended
from apps.customers.models import Branch

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("tests")


def _tamper(sql: str, params: list[object]) -> None:
    """What an attacker with database-superuser rights could do: bypass the trigger, then write."""
    with audit_triggers_suspended(connection), connection.cursor() as cursor:
        cursor.execute(sql, params)


@contextmanager
def _as_owner() -> Iterator[None]:
    """Step back from the restricted application role (CI) to the owner: the trigger must refuse even the owner."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        role = cursor.fetchone()[0]
        cursor.execute("SET ROLE NONE")
        try:
            yield
        finally:
            cursor.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)).as_string(cursor.connection))


def _append(count: int) -> list[AuditRecord]:
    with transaction.atomic():
        return [
            audit_record(actor=SYSTEM, action=AuditAction.BRANCH_CREATED, data={"n": index, "名称": "支行"})
            for index in range(count)
        ]


def test_each_record_links_to_the_hash_of_the_one_before() -> None:
    first_existing = AuditRecord.objects.count()
    records = _append(3)
    assert records[0].sequence == first_existing + 1
    assert records[1].previous_hash == records[0].record_hash
    assert records[2].previous_hash == records[1].record_hash
    if first_existing == 0:
        assert records[0].previous_hash == GENESIS_HASH
    report = audit_chain_verify()
    assert report.intact
    assert report.records_checked == first_existing + 3
    assert report.last_hash == records[2].record_hash


def test_verification_detects_an_edited_record() -> None:
    records = _append(4)
    victim = records[1]
    _tamper("UPDATE audit_auditrecord SET actor_label = %s WHERE id = %s", ["someone else", victim.pk])
    report = audit_chain_verify()
    assert not report.intact
    assert report.first_break is not None
    assert report.first_break.sequence == victim.sequence
    assert "edited" in report.first_break.reason


def test_verification_detects_edited_data_even_when_the_json_is_reordered() -> None:
    records = _append(2)
    _tamper("UPDATE audit_auditrecord SET data = %s WHERE id = %s", ['{"名称": "支行", "n": 99}', records[0].pk])
    report = audit_chain_verify()
    assert report.first_break is not None
    assert report.first_break.sequence == records[0].sequence


def test_verification_detects_a_deleted_record_and_names_the_next_one() -> None:
    records = _append(4)
    _tamper("DELETE FROM audit_auditrecord WHERE id = %s", [records[1].pk])
    report = audit_chain_verify()
    assert report.first_break is not None
    assert report.first_break.sequence == records[2].sequence
    assert "deleted" in report.first_break.reason


def test_audit_verify_command_names_the_first_broken_link() -> None:
    records = _append(3)
    call_command("audit_verify")  # intact: no error
    _tamper("UPDATE audit_auditrecord SET action = %s WHERE id = %s", ["customers.branch.updated", records[0].pk])
    with pytest.raises(CommandError, match=f"sequence {records[0].sequence} "):
        call_command("audit_verify")


def test_the_model_refuses_to_update_or_delete_a_record() -> None:
    record = _append(1)[0]
    record.actor_label = "changed"
    with pytest.raises(AppendOnlyError):
        record.save()
    with pytest.raises(AppendOnlyError):
        record.delete()
    with pytest.raises(AppendOnlyError):
        AuditRecord.objects.filter(pk=record.pk).update(actor_label="changed")
    with pytest.raises(AppendOnlyError):
        AuditRecord.objects.filter(pk=record.pk).delete()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditrecord SET actor_label = 'x' WHERE id = %s",
        "DELETE FROM audit_auditrecord WHERE id = %s",
    ],
)
def test_the_database_refuses_raw_sql_updates_and_deletes(statement: str) -> None:
    record = _append(1)[0]
    with (
        _as_owner(),
        pytest.raises((DatabaseError, IntegrityError), match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement, [record.pk])
    assert AuditRecord.objects.filter(pk=record.pk, actor_label=record.actor_label).exists()


def test_postgresql_refuses_truncate() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("TRUNCATE exists only on PostgreSQL")  # SQLite has no TRUNCATE statement
    _append(1)
    with (
        _as_owner(),
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("TRUNCATE audit_auditrecord")


def test_an_audit_record_rolls_back_with_the_change_it_describes() -> None:
    before = AuditRecord.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        branch = Branch.objects.create(code="X1", name="x", city="x")
        audit_record(actor=SYSTEM, action=AuditAction.BRANCH_CREATED, target=branch)
        raise RuntimeError("the change failed")
    assert AuditRecord.objects.count() == before
    assert not Branch.objects.filter(code="X1").exists()


def test_an_action_code_not_defined_in_one_place_is_refused() -> None:
    with pytest.raises(ValueError, match="not a valid AuditAction"), transaction.atomic():
        audit_record(actor=SYSTEM, action="customers.customer.teleported")


def test_a_record_names_actor_and_target() -> None:
    with transaction.atomic():
        branch = Branch.objects.create(code="X2", name="二号", city="滨海")
        record = audit_record(actor=SYSTEM, action=AuditAction.BRANCH_CREATED, target=branch, data={"k": "v"})
    assert (record.actor_kind, record.actor_label) == ("system", "tests")
    assert (record.target_type, record.target_id) == ("customers.branch", str(branch.pk))
    assert record.data == {"k": "v"}


def test_flush_refuses_the_audit_table_outside_the_test_settings(settings: object) -> None:
    settings.AUDIT_TRAIL_FLUSHABLE = False  # type: ignore[attr-defined]
    _append(1)
    with pytest.raises(CommandError, match=r"Database .* couldn't be flushed"):
        call_command("flush", interactive=False, verbosity=0)
    assert AuditRecord.objects.exists()
    assert audit_chain_verify().intact
