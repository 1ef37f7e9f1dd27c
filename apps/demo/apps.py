from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DemoConfig(AppConfig):
    """Demo data for `make run`. Sits on top of every other app; nothing imports it."""

    name = "apps.demo"
    verbose_name = _("Demo data")
