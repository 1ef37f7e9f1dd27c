"""One live queue entry per customer (issue 16), held by the database.

Entries get a ``customer`` column (copied from the visit at enqueue) and a
partial unique index over the live states. Existing rows are backfilled from
their visit. A customer who already holds several live entries (the defect this
closes) keeps one: a connected entry first, then an offered one, then the
newest waiting one. Other *waiting* entries end ``abandoned`` with reason
``superseded``; an offered or connected one that loses keeps running and is
simply not backfilled (its customer stays null), so that no agent or call is
left pointing at an entry that vanished. Those rows are corrected here without
an audit record: the hash chain is written by the services only, and this
migration's own run is the record.
"""

import django.db.models.deletion
from django.db import migrations, models
from django.utils import timezone

LIVE = ("waiting", "offered", "connected")
PREFERENCE = {"connected": 0, "offered": 1, "waiting": 2}


def backfill_customers(apps, schema_editor):  # type: ignore[no-untyped-def]
    QueueEntry = apps.get_model("queueing", "QueueEntry")
    now = timezone.now()
    live_by_customer: dict[int, list[tuple[int, str]]] = {}
    for pk, state, customer_id in QueueEntry.objects.filter(visit__customer__isnull=False).values_list(
        "pk", "state", "visit__customer_id"
    ):
        if state in LIVE:
            live_by_customer.setdefault(customer_id, []).append((pk, state))
        else:
            QueueEntry.objects.filter(pk=pk).update(customer_id=customer_id)
    for customer_id, live in live_by_customer.items():
        live.sort(key=lambda item: (PREFERENCE[item[1]], -item[0]))
        (keep, _state), *losers = live
        QueueEntry.objects.filter(pk=keep).update(customer_id=customer_id)
        for pk, state in losers:
            if state == "waiting":
                QueueEntry.objects.filter(pk=pk).update(
                    customer_id=customer_id, state="abandoned", end_reason="superseded", ended_at=now
                )


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0002_remote_maintenance_fields"),
        ("queueing", "0003_alter_queueentry_visit"),
        ("visits", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="queueentry",
            name="customer",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="queue_entries",
                to="customers.customer",
            ),
        ),
        migrations.AlterField(
            model_name="queueentry",
            name="end_reason",
            field=models.CharField(
                blank=True,
                choices=[
                    ("answered", "Answered"),
                    ("customer_left", "Customer left"),
                    ("grace_expired", "Did not reconnect in time"),
                    ("call_failed", "The call failed"),
                    ("superseded", "Superseded by a newer visit"),
                ],
                max_length=32,
            ),
        ),
        migrations.RunPython(backfill_customers, migrations.RunPython.noop, elidable=False),
        migrations.AddConstraint(
            model_name="queueentry",
            constraint=models.UniqueConstraint(
                condition=models.Q(("state__in", ("waiting", "offered", "connected"))),
                fields=("customer",),
                name="one_live_entry_per_customer",
            ),
        ),
    ]
