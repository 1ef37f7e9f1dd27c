from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OperationsConfig(AppConfig):
    name = "apps.operations"
    verbose_name = _("Business operations")

    def ready(self) -> None:
        from apps.operations import receivers

        receivers.connect()
