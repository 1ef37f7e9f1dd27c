from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class VerificationConfig(AppConfig):
    name = "apps.verification"
    verbose_name = _("Identity verification")

    def ready(self) -> None:
        from apps.verification import receivers

        receivers.connect()
