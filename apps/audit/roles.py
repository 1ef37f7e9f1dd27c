"""The application's database role and its rights (PostgreSQL), granted after every migrate.

Migrations run as the owner of the schema; the application runs as a role
that owns nothing (settings.DATABASE_APP_ROLE), so it cannot ALTER, DROP or
DISABLE a trigger, nor set ``session_replication_role`` (superuser only).
It may read and write the platform's tables, but the audit trail only grows:
SELECT and INSERT on the chain (the sequencer and inline appends insert
there), and on the sequencer's queue SELECT, INSERT and DELETE, the DELETE
guarded by a trigger that lets only chained rows go. The migration history is
read-only to it.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import connections
from psycopg import sql

from apps.audit.triggers import PENDING_TABLE, TABLE

logger = logging.getLogger(__name__)


def app_role_statements(role: str) -> list[sql.Composable]:
    who = sql.Identifier(role)
    return [
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(who),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(who),
        sql.SQL("GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {}").format(who),
        # What no grant above may leave: the trail only grows.
        sql.SQL("REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {} FROM {}").format(
            sql.Identifier(TABLE), who
        ),
        sql.SQL("REVOKE UPDATE, TRUNCATE, REFERENCES, TRIGGER ON {} FROM {}").format(
            sql.Identifier(PENDING_TABLE), who
        ),
        sql.SQL("REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON django_migrations FROM {}").format(who),
    ]


def app_role_grant(*, using: str = "default") -> str | None:
    """Create the application role if missing (NOLOGIN: a DBA gives it a password) and grant its rights.

    Returns the role, or None when no role is configured or the database is
    not PostgreSQL.
    """
    role = getattr(settings, "DATABASE_APP_ROLE", None)
    connection = connections[using]
    if not role or connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        if cursor.fetchone()[0] == role:
            raise RuntimeError(
                f"Migrations run as the application role {role!r}: set DATABASE_OWNER_URL to the owner's login."
            )
        # Roles are shared by the whole cluster: another database's migrate
        # may be creating it at this moment.
        create = sql.SQL(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {name}) THEN CREATE ROLE {role} NOLOGIN; "
            "END IF; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        ).format(name=sql.Literal(role), role=sql.Identifier(role))
        cursor.execute(create.as_string(cursor.connection))
        for statement in app_role_statements(role):
            cursor.execute(statement.as_string(cursor.connection))
    logger.info("Granted the application role %s its rights.", role)
    return role


def on_post_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    app_role_grant(using=using)
