"""``manage.py recordings_process_pending``: queue the post-processing of ended calls still pending.

The safety net (cron, or by hand in embedded mode without a broker): a
recording stays pending when its task gave up waiting for Janus to close the
files, or when Celery ran eagerly before the room was destroyed.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apps.recordings.services.processing import recordings_pending_enqueue


class Command(BaseCommand):
    help = "Queue the post-processing of every ended call whose recording is still pending."

    def handle(self, *args: Any, **options: Any) -> None:
        count = recordings_pending_enqueue()
        self.stdout.write(f"{count} pending recordings queued.")
