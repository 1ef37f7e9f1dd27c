"""``manage.py recordings_verify [--call UUID]``: re-hash recorded files, name every mismatch, exit 1 if any."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.audit.services import Actor
from apps.recordings.services.integrity import recording_files_verify


class Command(BaseCommand):
    help = "Re-hash every recording file (originals and outputs) and compare with the hashes recorded."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--call", type=uuid.UUID, default=None, help="only this call (public id)")

    def handle(self, *args: Any, **options: Any) -> None:
        checked, mismatches = recording_files_verify(
            actor=Actor.system("recordings_verify"), call_public_id=options["call"]
        )
        for item in mismatches:
            state = "missing" if not item.actual else f"sha256 {item.actual}"
            self.stderr.write(f"MISMATCH {item.path}: expected {item.expected}, found {state}")
        if mismatches:
            raise CommandError(f"{len(mismatches)} of {checked} recording files do not match their recorded hash.")
        self.stdout.write(f"{checked} recording files match their recorded hashes.")
