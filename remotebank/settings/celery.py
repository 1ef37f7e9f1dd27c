"""Celery: eager (in-process) by default, a Redis broker when REDIS_URL is set."""

from __future__ import annotations

from remotebank.settings.environment import env_bool, env_int, env_optional

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
# Two ways a worker dies, two mechanisms (tests/faults/test_celery_worker.py):
# - the pool process is killed (the OOM killer picks the biggest, a model-heavy
#   OCR or face process): the worker's main process sees it, and
#   REJECT_ON_WORKER_LOST puts the message back at once (without it, acks_late
#   would acknowledge the lost task and it would never run again);
# - the whole worker or its machine is gone: nobody is left to reject, and
#   Redis' "unacked" set hands the message to another worker once it is older
#   than the visibility timeout (below).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A new worker process loads what its queues need before taking a task
# (remotebank/warm_up.py: 2–3 s per model set on an idle machine, several
# times that under load); Celery's 4 s default wait for a child to start
# would kill such a child and start another, over and over.
CELERY_WORKER_PROC_ALIVE_TIMEOUT = env_int("REMOTEBANK_CELERY_PROCESS_START_SECONDS", 60)
# The visibility timeout must be longer than the longest run of any task this
# pool takes *plus* the longest countdown of its retries (a retry waiting for
# its ETA is held unacknowledged: recordings wait up to 300 s), or a task still
# running is handed to a second worker too. Kombu's one-hour default fits the
# media and reports pools (a long call's post-processing, a million-row
# export), but would leave a customer's lost OCR waiting an hour: the ocr and
# face pools set REMOTEBANK_CELERY_VISIBILITY_TIMEOUT to a few minutes.
# Each pool keeps its unacknowledged messages under keys of its own
# (REMOTEBANK_CELERY_POOL): the sweep that restores old messages only sees its
# pool's, so the ocr pool's short timeout never re-runs a running export.
_POOL = env_optional("REMOTEBANK_CELERY_POOL")
_UNACKED = f"unacked:{_POOL}" if _POOL else "unacked"
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("REMOTEBANK_CELERY_VISIBILITY_TIMEOUT", 3600),
    "unacked_key": _UNACKED,
    "unacked_index_key": f"{_UNACKED}_index",
    "unacked_mutex_key": f"{_UNACKED}_mutex",
    # How often a worker looks for messages to restore (seconds); kombu's
    # default sweep runs every 10 × 10 s, far longer than a short timeout.
    "unacked_restore_interval": env_int("REMOTEBANK_CELERY_RESTORE_INTERVAL", 10),
    "unacked_restore_throttle": 1,
}
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
    # Gate 1 photos (ID card, portrait, account) go with the same period.
    "verification-photos-purge": {
        "task": "apps.verification.tasks.verification_photos_purge_task",
        "schedule": 24 * 60 * 60,
    },
}
