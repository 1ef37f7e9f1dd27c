"""Test settings: SQLite by default, PostgreSQL + Redis when DATABASE_URL/REDIS_URL are set (CI)."""

from __future__ import annotations

from remotebank.settings.base import *  # noqa: F403

DEBUG = False

# Not secrets: fixed keys so that test runs are reproducible. Never used
# outside the test settings.
SECRET_KEY = "test-only-not-a-secret"  # noqa: S105
FIELD_ENCRYPTION_KEYS = ["dGVzdC1vbmx5LWZpZWxkLWtleS0zMi1ieXRlcy0hISE="]
BLIND_INDEX_KEY = "test-only-blind-index-key"

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Tasks run in the test process unless a test starts a real worker itself.
CELERY_TASK_ALWAYS_EAGER = True
# Serve static files straight from the apps (no collectstatic before tests).
WHITENOISE_AUTOREFRESH = True
# Transactional tests end with a flush; let it empty the append-only audit
# table (apps/audit/management/commands/flush.py). Never set elsewhere.
AUDIT_TRAIL_FLUSHABLE = True
# Most tests pass Gate 3 on a chosen photo (no camera); the liveness tests
# (tests/live) switch it back on and drive a real Janus.
GATE_FACE_LIVENESS_REQUIRED = False
