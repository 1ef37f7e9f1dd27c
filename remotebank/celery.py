from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "remotebank.settings.local")

app = Celery("remotebank")
# Every Celery setting lives in Django settings under the CELERY_ prefix
# (remotebank/settings/celery.py).
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def warm_up_worker_process(**kwargs: Any) -> None:
    """Load what this worker's queues need (Janus client, OCR or face models) before it takes a task.

    Each prefork child loads its own copy (models are not shared across a
    fork). The parent waits ``worker_proc_alive_timeout`` for a child to start;
    the settings leave room for the models (remotebank/settings/celery.py).
    """
    from remotebank.warm_up import warm_up, warm_ups_for

    warm_up(warm_ups_for(app.amqp.queues.consume_from))
