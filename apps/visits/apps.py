from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class VisitsConfig(AppConfig):
    name = "apps.visits"
    verbose_name = _("Visits")

    def ready(self) -> None:
        from apps.visits import receivers

        receivers.connect()
