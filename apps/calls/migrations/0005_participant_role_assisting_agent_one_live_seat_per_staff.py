"""Invited agents are labelled as agents, and a staff member sits in at most one live call (issue 16).

Existing rows first: an agent invited before this change was stored as
``expert`` and becomes ``assisting_agent``; a seat of an ended call still
without ``left_at`` (none should exist: ending a call closes every seat) gets
the call's end time; a staff member still seated in several live calls (the
defect this closes) keeps the seat of the newest call and leaves the older ones
now. Those older calls then end through their deadlines (connect timeout,
rejoin grace). The rows are corrected without audit records: the hash chain
is written by the services only.
"""

from django.db import migrations, models
from django.db.models import F
from django.utils import timezone


def repair_seats(apps, schema_editor):  # type: ignore[no-untyped-def]
    CallParticipant = apps.get_model("calls", "CallParticipant")
    CallParticipant.objects.filter(role="expert", staff__role="agent").update(role="assisting_agent")
    for seat in CallParticipant.objects.filter(call__state="ended", left_at__isnull=True).select_related("call"):
        CallParticipant.objects.filter(pk=seat.pk).update(left_at=seat.call.ended_at or timezone.now())
    seated = (
        CallParticipant.objects.filter(left_at__isnull=True, staff__isnull=False)
        .order_by("staff_id", F("call_id").desc())
        .values_list("pk", "staff_id")
    )
    kept: set[int] = set()
    for pk, staff_id in seated:
        if staff_id in kept:
            CallParticipant.objects.filter(pk=pk).update(left_at=timezone.now())
        kept.add(staff_id)


class Migration(migrations.Migration):
    dependencies = [
        ("calls", "0004_alter_call_visit"),
        ("staff", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="callparticipant",
            name="role",
            field=models.CharField(
                choices=[
                    ("customer", "Customer"),
                    ("agent", "Agent"),
                    ("expert", "Expert"),
                    ("assisting_agent", "Second agent"),
                ],
                max_length=16,
            ),
        ),
        migrations.RunPython(repair_seats, migrations.RunPython.noop, elidable=False),
        migrations.AddConstraint(
            model_name="callparticipant",
            constraint=models.UniqueConstraint(
                condition=models.Q(("left_at__isnull", True), ("staff__isnull", False)),
                fields=("staff",),
                name="one_live_seat_per_staff",
            ),
        ),
    ]
