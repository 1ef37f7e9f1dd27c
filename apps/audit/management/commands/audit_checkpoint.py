"""Sign a checkpoint of the audit chain's head now (the sequencer also does it periodically)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apps.audit.services import audit_checkpoint_sign


class Command(BaseCommand):
    help = "Sign a checkpoint of the audit chain head into the write-once checkpoint directory."

    def handle(self, *args: Any, **options: Any) -> None:
        checkpoint = audit_checkpoint_sign()
        if checkpoint is None:
            self.stdout.write("The newest checkpoint already covers the chain head.")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Checkpoint of {checkpoint.tree_size} records signed (key {checkpoint.key_id}): {checkpoint.path}"
            )
        )
