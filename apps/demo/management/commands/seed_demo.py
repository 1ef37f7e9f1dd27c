from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from apps.demo.seed import seed_demo


class Command(BaseCommand):
    help = "Create (or bring up to date) the demo bank: branches, customers, accounts, blacklists, staff. Idempotent."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--password",
            default=os.environ.get("REMOTEBANK_DEMO_PASSWORD", "remotebank-demo"),
            help="Password given to newly created demo staff logins (env REMOTEBANK_DEMO_PASSWORD).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.SETTINGS_MODULE.endswith(".production"):
            raise CommandError("Refusing to seed demo data with production settings.")
        with transaction.atomic():
            summary = seed_demo(password=options["password"])
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo bank ready: {summary.branches} branches, {summary.customers} customers, "
                f"{summary.accounts} accounts, {summary.blacklist_entries} blacklist entries, {summary.staff} staff."
            )
        )
        self.stdout.write("Levels: " + ", ".join(f"{k}={v}" for k, v in sorted(summary.levels.items())))
        self.stdout.write("Account statuses: " + ", ".join(f"{k}={v}" for k, v in sorted(summary.statuses.items())))
        self.stdout.write("Staff logins (password as given by --password / REMOTEBANK_DEMO_PASSWORD):")
        for username, role in summary.logins:
            self.stdout.write(f"  {username:<14} {role}")
