from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MobileConfig(AppConfig):
    """The customer's mobile web front end. Nothing imports it."""

    name = "apps.mobile"
    verbose_name = _("Customer mobile web")
