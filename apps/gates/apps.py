from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GatesConfig(AppConfig):
    name = "apps.gates"
    verbose_name = _("In-call gates")

    def ready(self) -> None:
        from apps.gates import receivers

        receivers.connect()
