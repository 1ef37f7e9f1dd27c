"""The audit trail: how records are chained, the sequencer, and the signed checkpoints."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from remotebank.settings.environment import env_int, env_path, env_str

_VAR_DIR = env_path("REMOTEBANK_VAR_DIR", Path(__file__).resolve().parent.parent.parent / "var")

# "inline": audit_record chains the record in the caller's transaction under a
# lock (SQLite, whose writers are serialized anyway, and the test suite, which
# reads records inside its own uncommitted transaction). "sequencer": services
# queue a pending record and `manage.py run_audit_sequencer` chains committed
# ones in batches. "auto": sequencer on PostgreSQL, inline elsewhere.
AUDIT_CHAIN_MODE = env_str("REMOTEBANK_AUDIT_CHAIN_MODE", "auto")
if AUDIT_CHAIN_MODE not in ("auto", "inline", "sequencer"):
    raise ImproperlyConfigured("REMOTEBANK_AUDIT_CHAIN_MODE must be auto, inline or sequencer.")
# The sequencer polls every INTERVAL ms and chains at most BATCH records per
# transaction. A pending record older than BOUND seconds is a fault that
# audit_verify reports (the sequencer is down or behind).
AUDIT_SEQUENCER_INTERVAL_MS = env_int("REMOTEBANK_AUDIT_SEQUENCER_INTERVAL_MS", 100)
AUDIT_SEQUENCER_BATCH = env_int("REMOTEBANK_AUDIT_SEQUENCER_BATCH", 5000)
AUDIT_CHAIN_BOUND_SECONDS = env_int("REMOTEBANK_AUDIT_CHAIN_BOUND_SECONDS", 1)
if AUDIT_SEQUENCER_INTERVAL_MS < 1 or AUDIT_SEQUENCER_BATCH < 1 or AUDIT_CHAIN_BOUND_SECONDS < 1:
    raise ImproperlyConfigured("The audit sequencer's interval, batch and bound must be positive.")

# Signed checkpoints of the chain head (issue #17 item 5). The Ed25519 private
# key lives in a file outside the database (PEM, PKCS#8); the dev default is
# generated on first use under var/. The directory is write-once: a
# checkpoint file is created exclusively and never overwritten; in production
# point it at storage the database's administrators cannot rewrite (a WORM
# mount, an object-lock bucket synced from it).
AUDIT_SIGNING_KEY_FILE = env_path("REMOTEBANK_AUDIT_SIGNING_KEY_FILE", _VAR_DIR / "audit" / "checkpoint-ed25519.pem")
AUDIT_CHECKPOINT_DIR = env_path("REMOTEBANK_AUDIT_CHECKPOINT_DIR", _VAR_DIR / "audit" / "checkpoints")
# The sequencer signs a checkpoint when the head moved and this long passed.
AUDIT_CHECKPOINT_SECONDS = env_int("REMOTEBANK_AUDIT_CHECKPOINT_SECONDS", 60)
