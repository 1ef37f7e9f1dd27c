"""Gate 1 uploads, account photo and SMS proof of the mobile number (docs/gate1.md).

Read from the environment only; imported at the end of ``base``.
"""

from __future__ import annotations

import os
from typing import Any

from remotebank.settings.environment import env_int, env_str

__all__ = [
    "DATA_UPLOAD_MAX_MEMORY_SIZE",
    "FILE_UPLOAD_MAX_MEMORY_SIZE",
    "GATE1_MAX_ACCOUNT_PHOTO_UPLOADS",
    "GATE1_PHOTO_MAX_SIDE",
    "GATE1_SMS_CODE_SECONDS",
    "GATE1_SMS_MAX_SENDS",
    "GATE1_SMS_MAX_TRIES",
    "GATE1_SMS_RESEND_SECONDS",
    "REQUEST_MAX_BODY_BYTES",
    "SMS_ADAPTER",
    "SMS_SANDBOX",
    "SMS_SANDBOX_PAGE",
]

# Largest HTTP body Daphne hands to Django (apps/common/uploads.py): a photo
# of GATE1_MAX_UPLOAD_BYTES plus the multipart framing. Larger bodies get 413
# before they are read.
REQUEST_MAX_BODY_BYTES = env_int("REMOTEBANK_REQUEST_MAX_BODY_BYTES", 25 * 1024 * 1024 + 64 * 1024)
# Uploaded files stay in memory up to the photo limit (no temporary files on
# disk); non-file form and JSON bodies are small.
FILE_UPLOAD_MAX_MEMORY_SIZE = REQUEST_MAX_BODY_BYTES
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("REMOTEBANK_DATA_UPLOAD_MAX_MEMORY_SIZE", 2_621_440)

# Photos are decoded once, straight at this size (longer side, px), and kept
# encrypted at that size: enough for OCR and the portrait, a fraction of a
# 12–108 MP original's memory.
GATE1_PHOTO_MAX_SIDE = env_int("REMOTEBANK_GATE1_PHOTO_MAX_SIDE", 1600)
# Account photos per visit (the typed number always remains possible).
GATE1_MAX_ACCOUNT_PHOTO_UPLOADS = env_int("REMOTEBANK_GATE1_MAX_ACCOUNT_PHOTO_UPLOADS", 5)

# SMS one-time code to the mobile number on the bank's record.
GATE1_SMS_CODE_SECONDS = env_int("REMOTEBANK_GATE1_SMS_CODE_SECONDS", 300)
GATE1_SMS_RESEND_SECONDS = env_int("REMOTEBANK_GATE1_SMS_RESEND_SECONDS", 60)
GATE1_SMS_MAX_TRIES = env_int("REMOTEBANK_GATE1_SMS_MAX_TRIES", 5)
GATE1_SMS_MAX_SENDS = env_int("REMOTEBANK_GATE1_SMS_MAX_SENDS", 5)

SMS_ADAPTER = env_str("REMOTEBANK_SMS_ADAPTER", "sandbox")
_seed = os.environ.get("REMOTEBANK_SMS_SANDBOX_SEED")
SMS_SANDBOX: dict[str, Any] = {
    "latency_min_ms": env_int("REMOTEBANK_SMS_SANDBOX_LATENCY_MIN_MS", 100),
    "latency_max_ms": env_int("REMOTEBANK_SMS_SANDBOX_LATENCY_MAX_MS", 600),
    "error_rate": float(os.environ.get("REMOTEBANK_SMS_SANDBOX_ERROR_RATE") or 0.02),
    "rate_limit_per_window": env_int("REMOTEBANK_SMS_SANDBOX_RATE_LIMIT", 10),
    "rate_window_seconds": env_int("REMOTEBANK_SMS_SANDBOX_RATE_WINDOW_SECONDS", 3600),
    "seed": int(_seed) if _seed else None,
}
# The development page listing the sandbox's messages (never in production).
SMS_SANDBOX_PAGE = env_str("REMOTEBANK_SMS_SANDBOX_PAGE", "on") == "on" and SMS_ADAPTER == "sandbox"
