from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apps.audit.actions import AuditAction
from apps.audit.selectors import audit_chain_verify
from apps.audit.services import Actor, audit_record


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain and name the first broken link."

    def handle(self, *args: Any, **options: Any) -> None:
        report = audit_chain_verify()
        broken = report.first_break
        # The verification itself is recorded, so "last verified" and any
        # break found are part of the trail (compliance workspace, R8).
        with transaction.atomic():
            audit_record(
                actor=Actor.system("audit_verify"),
                action=AuditAction.AUDIT_CHAIN_VERIFIED,
                data={
                    "intact": report.intact,
                    "records_checked": report.records_checked,
                    "broken_sequence": broken.sequence if broken else None,
                    "reason": broken.reason if broken else "",
                },
            )
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
