"""Print the proof that one audit record is in the newest signed checkpoint (JSON, for an auditor)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.serializers.json import DjangoJSONEncoder

from apps.audit.selectors import audit_inclusion_proof


class Command(BaseCommand):
    help = "Print an RFC 6962 inclusion proof of one audit record against the newest signed checkpoint."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("sequence", type=int, help="The record's sequence number.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            proof = audit_inclusion_proof(sequence=options["sequence"])
        except LookupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(proof, cls=DjangoJSONEncoder, ensure_ascii=False, indent=1))
