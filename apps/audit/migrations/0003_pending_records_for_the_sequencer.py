"""The sequencer's queue of pending audit records, and its guard trigger (PostgreSQL)."""

from __future__ import annotations

from typing import Any

from django.db import migrations, models

from apps.audit.triggers import POSTGRESQL_PENDING_CREATE, POSTGRESQL_PENDING_DROP, SQLITE_CREATE, SQLITE_DROP


def create_pending_guard(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRESQL_PENDING_CREATE, params=None)
    elif schema_editor.connection.vendor == "sqlite":
        # SQLite adds a UNIQUE column by rebuilding the table, which drops its
        # triggers: put the append-only triggers of migration 0002 back.
        for statement in (*SQLITE_DROP, *SQLITE_CREATE):
            schema_editor.execute(statement)


def drop_pending_guard(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRESQL_PENDING_DROP)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0002_append_only_triggers"),
    ]

    operations = [
        migrations.CreateModel(
            name="PendingAuditRecord",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created_at", models.DateTimeField(editable=False, verbose_name="time")),
                (
                    "actor_kind",
                    models.CharField(
                        choices=[("staff", "Staff"), ("customer", "Customer"), ("system", "System")],
                        max_length=16,
                        verbose_name="actor kind",
                    ),
                ),
                ("actor_id", models.CharField(blank=True, max_length=64, verbose_name="actor id")),
                ("actor_label", models.CharField(blank=True, max_length=150, verbose_name="actor")),
                ("action", models.CharField(max_length=64, verbose_name="action")),
                ("target_type", models.CharField(blank=True, max_length=64, verbose_name="target type")),
                ("target_id", models.CharField(blank=True, max_length=64, verbose_name="target id")),
                ("target_label", models.CharField(blank=True, max_length=200, verbose_name="target")),
                ("data", models.JSONField(blank=True, default=dict, verbose_name="data")),
            ],
            options={
                "verbose_name": "pending audit record",
                "verbose_name_plural": "pending audit records",
                "ordering": ("id",),
            },
        ),
        migrations.AddField(
            model_name="auditrecord",
            name="pending_id",
            field=models.BigIntegerField(blank=True, editable=False, null=True, unique=True, verbose_name="pending id"),
        ),
        migrations.RunPython(create_pending_guard, drop_pending_guard),
    ]
