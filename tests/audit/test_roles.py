"""Least privilege in PostgreSQL (issue #17 item 6): the application role cannot rewrite the audit trail.

Under CI=true the suite runs as the restricted role (.ci/run sets
REMOTEBANK_DATABASE_SET_ROLE); these tests prove that role is what it
should be, on the real database.
"""

from __future__ import annotations

import psycopg
import pytest
from django.conf import settings
from django.db import DatabaseError, connection, transaction

from apps.audit.actions import AuditAction
from apps.audit.models import AuditRecord
from apps.audit.roles import app_role_grant
from apps.audit.services import Actor, audit_record
from tests.conftest import CI

pytestmark = [pytest.mark.postgresql, pytest.mark.django_db]

SYSTEM = Actor.system("tests")


@pytest.fixture(autouse=True)
def _restricted_role() -> None:
    on_postgresql = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    if not (on_postgresql and settings.DATABASE_SET_ROLE):
        reason = "needs PostgreSQL and REMOTEBANK_DATABASE_SET_ROLE (the restricted application role)"
        if CI:
            pytest.fail(f"CI=true but this test {reason}", pytrace=False)
        pytest.skip(reason)


def _refused(statement: str) -> str:
    """Run ``statement`` as the application; return PostgreSQL's refusal (fails if it was allowed)."""
    with pytest.raises(DatabaseError) as refusal, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)
    cause = refusal.value.__cause__
    assert isinstance(cause, psycopg.errors.InsufficientPrivilege), repr(cause)
    return str(cause)


def test_the_suite_runs_as_the_application_role_which_is_no_superuser() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
        user, superuser = cursor.fetchone()
    assert user == settings.DATABASE_SET_ROLE
    assert superuser is False


def test_the_application_role_cannot_disable_or_drop_the_audit_triggers() -> None:
    assert "must be owner" in _refused("ALTER TABLE audit_auditrecord DISABLE TRIGGER audit_record_no_update_delete")
    assert "must be owner" in _refused("ALTER TABLE audit_auditrecord DISABLE TRIGGER ALL")
    assert "must be owner" in _refused("DROP TRIGGER audit_record_no_update_delete ON audit_auditrecord")
    assert "must be owner" in _refused("ALTER TABLE audit_pendingauditrecord DISABLE TRIGGER ALL")
    _refused("SET session_replication_role = replica")
    with connection.cursor() as cursor:  # and the triggers are still there, enabled
        cursor.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'audit_auditrecord'::regclass AND tgenabled = 'O'"
        )
        assert cursor.fetchone()[0] == 2


def test_the_application_role_cannot_update_delete_or_truncate_audit_records() -> None:
    with transaction.atomic():
        record = audit_record(actor=SYSTEM, action=AuditAction.BRANCH_CREATED, data={"n": 1})
    assert isinstance(record, AuditRecord)  # it may append
    for statement in (
        f"DELETE FROM audit_auditrecord WHERE id = {record.pk}",
        f"UPDATE audit_auditrecord SET actor_label = 'someone else' WHERE id = {record.pk}",
        "TRUNCATE audit_auditrecord",
        "TRUNCATE audit_pendingauditrecord",
        "UPDATE django_migrations SET name = name",
    ):
        assert "permission denied" in _refused(statement)
    assert AuditRecord.objects.filter(pk=record.pk, actor_label="tests").exists()


def test_migrate_refuses_to_grant_from_the_application_role_itself(settings: object) -> None:
    with pytest.raises(RuntimeError, match="DATABASE_OWNER_URL"):
        app_role_grant()
