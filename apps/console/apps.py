from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConsoleConfig(AppConfig):
    """The staff's live pages in the back office (agent workspace, supervisor view). Nothing imports it."""

    name = "apps.console"
    verbose_name = _("Staff console")

    def ready(self) -> None:
        from apps.console import receivers

        receivers.connect()
