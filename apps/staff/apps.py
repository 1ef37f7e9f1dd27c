from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class StaffConfig(AppConfig):
    name = "apps.staff"
    verbose_name = _("Staff and roles")

    def ready(self) -> None:
        from apps.staff import receivers

        # Permissions only exist after every app has migrated, so roles are
        # (re)built then rather than in a data migration.
        post_migrate.connect(receivers.sync_roles_after_migrate, sender=self)
        receivers.connect_auth_signals()
