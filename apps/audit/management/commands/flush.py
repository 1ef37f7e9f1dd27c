"""Django's ``flush``, made to work with the append-only audit table in tests.

Transactional tests end with a flush; the audit triggers would refuse it. Only
when ``settings.AUDIT_TRAIL_FLUSHABLE`` is true (the test settings) are the
triggers suspended for the flush; everywhere else flush fails on the audit
table, as it should.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.commands.flush import Command as DjangoFlushCommand
from django.db import connections

from apps.audit.triggers import audit_triggers_suspended


class Command(DjangoFlushCommand):
    def handle(self, **options: Any) -> None:
        if not getattr(settings, "AUDIT_TRAIL_FLUSHABLE", False):
            super().handle(**options)
            return
        with audit_triggers_suspended(connections[options["database"]]):
            super().handle(**options)
