"""The dispatcher loop. Run one or several (they never conflict: SKIP LOCKED).

Matching is also triggered by events (a customer joins, an agent becomes
available) through a Celery task; this loop adds what only time triggers:
offer timeouts, wrap-up ends, reconnect grace, overflow by waiting time, and
the periodic figures and position re-sync broadcasts.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import asdict
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import InterfaceError, OperationalError, close_old_connections, connections

from apps.common.collector import gc_tune
from apps.queueing import events
from apps.queueing.models import ServiceQueue
from apps.queueing.selectors import queue_figures, queue_resync_message
from apps.queueing.services.housekeeping import dispatcher_tick, queue_snapshots_take

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the queue dispatcher loop (offers, timeouts, overflow, live figures)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interval", type=float, default=0.5, help="Seconds between rounds.")
        parser.add_argument("--figures-every", type=float, default=2.0, help="Seconds between figure broadcasts.")
        parser.add_argument("--resync-every", type=float, default=15.0, help="Seconds between position re-syncs.")
        parser.add_argument(
            "--rounds", type=int, default=0, help="Stop after this many rounds (0 = run until stopped)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # A full collection walked everything Django had loaded: one in about
        # 600 dispatch batches took 60–104 ms (49–85 of it the collection)
        # instead of 10–20 (2026-12-04); frozen, the collector leaves the
        # start-up's objects alone.
        gc_tune(settings.GC_THRESHOLDS)
        stopping = False

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        last_figures = last_resync = last_snapshot = 0.0
        rounds = 0
        self.stdout.write("Dispatcher running.")
        while not stopping:
            close_old_connections()
            try:
                done = dispatcher_tick()
                if any(done.values()):
                    self.stdout.write(", ".join(f"{key}={value}" for key, value in done.items() if value))
                now = time.monotonic()
                if now - last_figures >= options["figures_every"]:
                    last_figures = now
                    figures = [asdict(item) for item in queue_figures()]
                    events.broadcast_now(events.FIGURES_GROUP, {"type": events.FIGURES_UPDATE, "queues": figures})
                if now - last_resync >= options["resync_every"]:
                    last_resync = now
                    for queue in ServiceQueue.objects.all():
                        events.broadcast_now(
                            events.queue_group(queue.pk),
                            events.queue_message(queue_resync_message(queue=queue), event_type=events.QUEUE_RESYNC),
                        )
                if now - last_snapshot >= 60:
                    last_snapshot = now
                    queue_snapshots_take()
            except (OperationalError, InterfaceError):
                # The database connection dropped mid-round (a failover, a
                # killed backend): the open transaction rolled back whole on
                # the server, so nothing of it is half-written. Reconnect on
                # the next round instead of stopping the loop
                # (tests/faults/test_database_drop.py).
                logger.warning("Dispatcher round failed on the database; reconnecting", exc_info=True)
                self.stderr.write("database connection lost; retrying")
                connections.close_all()
            rounds += 1
            if options["rounds"] and rounds >= options["rounds"]:
                break
            time.sleep(options["interval"])
        self.stdout.write("Dispatcher stopped.")
