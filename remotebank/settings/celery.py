"""Celery: eager (in-process) by default, a Redis broker when REDIS_URL is set."""

from __future__ import annotations

from remotebank.settings.environment import env_bool, env_optional

_REDIS_URL = env_optional("REDIS_URL")

CELERY_BROKER_URL = _REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = _REDIS_URL
CELERY_TASK_ALWAYS_EAGER = env_bool("REMOTEBANK_CELERY_EAGER", default=_REDIS_URL is None)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "Asia/Shanghai"
# Tasks are delivered at least once: a worker that dies mid-task (OCR, face
# matching, post-processing) leaves the message in the broker for another one.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
# One queue per kind of heavy work, so each gets a worker pool of its own
# (docs/operations.md): OCR and face models are memory-hungry, media is CPU-bound.
CELERY_TASK_ROUTES = {
    "apps.verification.tasks.ocr_*": {"queue": "ocr"},
    "apps.verification.tasks.face_*": {"queue": "face"},
    "apps.gates.tasks.gate_face_*": {"queue": "face"},
    "apps.recordings.tasks.*": {"queue": "media"},
    # Large exports (minutes of CPU for a million rows) must not delay OCR or calls.
    "apps.compliance.tasks.*": {"queue": "reports"},
}
CELERY_TASK_DEFAULT_QUEUE = "default"
# Periodic work, for `celery -A remotebank beat` (docs/operations.md); the same
# jobs can run from cron through their management commands instead.
CELERY_BEAT_SCHEDULE = {
    # Recordings and snapshots of services closed longer ago than the retention
    # period (RECORDINGS_RETENTION_DAYS) are removed, each removal audited.
    "recordings-purge-expired": {
        "task": "apps.recordings.tasks.recordings_purge_expired_task",
        "schedule": 24 * 60 * 60,
    },
}
