from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SecurityConfig(AppConfig):
    name = "apps.security"
    verbose_name = _("Security")

    def ready(self) -> None:
        from apps.security import receivers
        from apps.security.otp_labels import otp_labels_apply

        receivers.connect()
        otp_labels_apply()
