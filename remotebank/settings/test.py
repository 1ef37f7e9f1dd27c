"""Test settings: SQLite by default, PostgreSQL + Redis when DATABASE_URL/REDIS_URL are set (CI)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from remotebank.settings.base import *  # noqa: F403
from remotebank.settings.environment import env_str

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
# Tests read the records a service wrote inside their own (uncommitted)
# transaction, so the chain is built inline; the sequencer's own tests
# (tests/audit/test_sequencer.py) switch to sequencer mode and run it.
AUDIT_CHAIN_MODE = env_str("REMOTEBANK_AUDIT_CHAIN_MODE", "inline")
# Checkpoints and their signing key in a folder of this test session (child
# processes get the same one through the environment), never under var/.
if not os.environ.get("REMOTEBANK_AUDIT_CHECKPOINT_DIR"):
    os.environ["REMOTEBANK_AUDIT_CHECKPOINT_DIR"] = tempfile.mkdtemp(prefix="remotebank-test-checkpoints-")
if not os.environ.get("REMOTEBANK_AUDIT_SIGNING_KEY_FILE"):
    os.environ["REMOTEBANK_AUDIT_SIGNING_KEY_FILE"] = os.environ["REMOTEBANK_AUDIT_CHECKPOINT_DIR"] + ".key.pem"
AUDIT_CHECKPOINT_DIR = Path(os.environ["REMOTEBANK_AUDIT_CHECKPOINT_DIR"])
AUDIT_SIGNING_KEY_FILE = Path(os.environ["REMOTEBANK_AUDIT_SIGNING_KEY_FILE"])
# No periodic checkpoints from the dispatcher's housekeeping: a checkpoint
# signed in one test would outlive that test's rolled-back records. The
# checkpoint tests sign their own into a folder of their own.
AUDIT_CHECKPOINT_SECONDS = 0
# Most tests pass Gate 3 on a chosen photo (no camera); the liveness tests
# (tests/live) switch it back on and drive a real Janus.
GATE_FACE_LIVENESS_REQUIRED = False
