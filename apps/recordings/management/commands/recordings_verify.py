"""``manage.py recordings_verify [--call UUID]``: re-hash evidence files, name every mismatch, exit 1 if any.

Evidence files: recordings (originals and outputs), snapshots, and Gate 1's
ID-card photos and portraits.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.audit.services import Actor
from apps.recordings.services.integrity import evidence_images_verify, recording_files_verify


class Command(BaseCommand):
    help = "Re-hash every recording file, snapshot and ID-card image and compare with the hashes recorded."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--call", type=uuid.UUID, default=None, help="only this call (public id)")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.system("recordings_verify")
        images, image_mismatches = evidence_images_verify(actor=actor, call_public_id=options["call"])
        checked, mismatches = recording_files_verify(actor=actor, call_public_id=options["call"])
        for item in [*mismatches, *image_mismatches]:
            state = "missing" if not item.actual else f"sha256 {item.actual}"
            what = item.path if item.kind == "recording" else f"{item.kind} {item.path}"
            self.stderr.write(f"MISMATCH {what}: expected {item.expected}, found {state}")
        if mismatches or image_mismatches:
            raise CommandError(
                f"{len(mismatches)} of {checked} recording files and {len(image_mismatches)} of {images} "
                "snapshots and ID-card images do not match their recorded hash."
            )
        self.stdout.write(f"{checked} recording files match their recorded hashes.")
        self.stdout.write(f"{images} snapshots and ID-card images match their recorded hashes.")
