from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class QueueingConfig(AppConfig):
    name = "apps.queueing"
    verbose_name = _("Queues and routing")
