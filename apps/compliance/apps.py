from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ComplianceConfig(AppConfig):
    name = "apps.compliance"
    verbose_name = _("Compliance")

    def ready(self) -> None:
        from apps.compliance import receivers

        receivers.connect()
