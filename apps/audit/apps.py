from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuditConfig(AppConfig):
    name = "apps.audit"
    verbose_name = _("Audit trail")

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from apps.audit import receivers, roles

        receivers.connect()
        # After every migrate (once: for this app), as the owner that ran it.
        post_migrate.connect(roles.on_post_migrate, sender=self, dispatch_uid="audit_app_role_grant")
