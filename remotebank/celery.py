from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "remotebank.settings.local")

app = Celery("remotebank")
# Every Celery setting lives in Django settings under the CELERY_ prefix
# (remotebank/settings/celery.py).
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
