"""Tickets for queue entries and a change version per queue (issue 18: O(1) position fan-out).

Existing entries get their id as ticket (ids are in creation order, as tickets
are); on PostgreSQL the ticket sequence starts after the highest id.
"""

from typing import Any

from django.db import migrations, models

TICKET_SEQUENCE = "queueing_queueentry_ticket_seq"


def tickets_backfill(apps: Any, schema_editor: Any) -> None:
    QueueEntry = apps.get_model("queueing", "QueueEntry")
    QueueEntry.objects.update(ticket=models.F("pk"))
    if schema_editor.connection.vendor == "postgresql":
        highest = QueueEntry.objects.aggregate(highest=models.Max("pk"))["highest"] or 0
        schema_editor.execute(f"CREATE SEQUENCE IF NOT EXISTS {TICKET_SEQUENCE} START WITH {highest + 1}")


def tickets_drop_sequence(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP SEQUENCE IF EXISTS {TICKET_SEQUENCE}")


class Migration(migrations.Migration):
    dependencies = [
        ("queueing", "0005_entry_last_seen_at"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="queueentry",
            options={
                "ordering": ("priority_key", "ticket"),
                "verbose_name": "queue entry",
                "verbose_name_plural": "queue entries",
            },
        ),
        migrations.AddField(
            model_name="queueentry",
            name="ticket",
            field=models.BigIntegerField(default=0, verbose_name="ticket"),
        ),
        migrations.AddField(
            model_name="servicequeue",
            name="change_version",
            field=models.BigIntegerField(default=0, editable=False),
        ),
        migrations.RunPython(tickets_backfill, tickets_drop_sequence),
    ]
