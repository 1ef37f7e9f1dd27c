from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.audit.services import Actor, audit_chain_verification_run


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain and name the first broken link."

    def handle(self, *args: Any, **options: Any) -> None:
        report = audit_chain_verification_run(actor=Actor.system("audit_verify"))
        broken = report.first_break
        if broken is not None:
            raise CommandError(
                f"Audit chain BROKEN at sequence {broken.sequence} (record id {broken.record_id}): "
                f"{broken.reason}. {report.records_checked} record(s) read."
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Audit chain intact: {report.records_checked} record(s), "
                f"last sequence {report.last_sequence}, head {report.last_hash[:16]}…"
            )
        )
