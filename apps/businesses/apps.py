from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BusinessesConfig(AppConfig):
    name = "apps.businesses"
    verbose_name = _("Businesses")
