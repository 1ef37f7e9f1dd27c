"""``manage.py recordings_purge_expired [--dry-run] [--days N]``: remove media past the retention period."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from apps.audit.services import Actor
from apps.recordings.services.retention import recordings_purge_expired


class Command(BaseCommand):
    help = (
        "Remove the recording files (outputs and Janus originals) and snapshot images of services closed "
        "longer ago than the retention period (REMOTEBANK_RECORDINGS_RETENTION_DAYS). Hashes stay, marked purged; "
        "each removal is audited."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="only list what would be removed")
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help="retention period in days (default: the RECORDINGS_RETENTION_DAYS setting)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"] or settings.RECORDINGS_RETENTION_DAYS
        items = recordings_purge_expired(
            actor=Actor.system("recordings_purge_expired"), retention_days=days, dry_run=options["dry_run"]
        )
        verb = "WOULD REMOVE" if options["dry_run"] else "REMOVED"
        for item in items:
            self.stdout.write(
                f"{verb} {item.what} {item.path} sha256 {item.sha256} (service {item.visit}, closed {item.closed_at})"
            )
        summary = "would be removed" if options["dry_run"] else "removed"
        self.stdout.write(f"{len(items)} media files {summary} (retention {days} days).")
