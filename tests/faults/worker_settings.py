"""Settings of the real processes the fault tests start (Celery workers, Daphne).

The test settings keep files in memory and run tasks in the test process;
a separate process must share the test's files (a folder given by
REMOTEBANK_MEDIA_ROOT) and take its tasks from the Redis broker.
"""

from __future__ import annotations

from remotebank.settings.test import *  # noqa: F403
from remotebank.settings.test import MEDIA_ROOT

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(MEDIA_ROOT)}},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
CELERY_TASK_ALWAYS_EAGER = False
