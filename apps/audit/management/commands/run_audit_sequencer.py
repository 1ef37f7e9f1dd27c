"""The audit sequencer loop: chain committed pending audit records in batches.

Run one per installation beside the dispatcher (docs/operations.md); a second
one is safe and waits on standby: only the holder of the sequencer's
PostgreSQL advisory lock (session-scoped, released when its connection ends,
also when the process is killed) integrates. It also signs a checkpoint of
the chain head every ``AUDIT_CHECKPOINT_SECONDS`` when the head moved.
"""

from __future__ import annotations

import logging
import signal
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import InterfaceError, OperationalError, connection, connections

from apps.audit.checkpoints import CompactRange
from apps.audit.services import audit_checkpoint_sign, audit_pending_integrate, audit_sequencer_lock_try

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the audit sequencer: chain committed audit records in batches (one active at a time)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interval-ms", type=int, default=None, help="Milliseconds between polls of the queue.")
        parser.add_argument("--batch", type=int, default=None, help="Most records chained per transaction.")
        parser.add_argument("--once", action="store_true", help="Chain what is queued now, then stop.")
        parser.add_argument(
            "--checkpoint-seconds", type=int, default=None, help="Seconds between signed checkpoints (0: never)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("The audit sequencer needs PostgreSQL; SQLite chains every record inline.")
        interval = (options["interval_ms"] or settings.AUDIT_SEQUENCER_INTERVAL_MS) / 1000
        batch = options["batch"] or settings.AUDIT_SEQUENCER_BATCH
        checkpoint_every = options["checkpoint_seconds"]
        if checkpoint_every is None:
            checkpoint_every = settings.AUDIT_CHECKPOINT_SECONDS
        stopping = False

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.active = False
        self.tree = CompactRange()  # the Merkle state of the chain, extended per checkpoint
        self.last_checkpoint = time.monotonic()
        self.stdout.write("Audit sequencer started.")
        while not stopping:
            chained = 0
            try:
                chained = self._round(batch=batch, checkpoint_every=checkpoint_every)
            except (OperationalError, InterfaceError):
                # The connection dropped: the batch rolled back whole, and the
                # advisory lock went with the session. Reconnect and compete again.
                logger.warning("Audit sequencer lost its database connection; reconnecting", exc_info=True)
                self.stderr.write("database connection lost; retrying")
                connections.close_all()
                self.active = False
            active = self.active
            if options["once"] and (not active or chained < batch):
                if not active:
                    self.stdout.write("Another audit sequencer is active.")
                break
            if chained < batch:  # a full batch means more is waiting: no pause
                time.sleep(interval)
        self.stdout.write("Audit sequencer stopped.")

    def _round(self, *, batch: int, checkpoint_every: int) -> int:
        """Compete for the sequencer lock if not holding it; when active, chain one batch and maybe sign."""
        if not self.active:
            self.active = audit_sequencer_lock_try()
            if not self.active:
                return 0
            self.stdout.write("Audit sequencer active.")
        chained = audit_pending_integrate(limit=batch)
        now = time.monotonic()
        if checkpoint_every and now - self.last_checkpoint >= checkpoint_every:
            self.last_checkpoint = now
            checkpoint = audit_checkpoint_sign(tree=self.tree)
            if checkpoint is not None:
                self.stdout.write(f"Checkpoint signed at {checkpoint.tree_size} records.")
        return chained
