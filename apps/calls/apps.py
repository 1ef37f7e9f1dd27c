from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CallsConfig(AppConfig):
    name = "apps.calls"
    verbose_name = _("Video calls")

    def ready(self) -> None:
        from apps.calls import receivers

        receivers.connect()
