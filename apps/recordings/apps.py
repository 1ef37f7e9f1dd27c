from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RecordingsConfig(AppConfig):
    name = "apps.recordings"
    verbose_name = _("Recordings and snapshots")

    def ready(self) -> None:
        from apps.recordings import receivers

        receivers.connect()
