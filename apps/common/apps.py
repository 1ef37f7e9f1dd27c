from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CommonConfig(AppConfig):
    name = "apps.common"
    verbose_name = _("Common")

    def ready(self) -> None:
        from django.contrib import admin

        # The back office is Django's admin; its titles follow the user's language.
        # One product title everywhere: the customer page uses the same one.
        admin.site.site_header = _("RemoteBank video counter")
        admin.site.site_title = _("RemoteBank video counter")
        admin.site.index_title = _("Back office")
