"""Gate 3's face decision engine (apps/gates/integrations/face.py, docs/face-verification.md).

Read from the environment only; imported at the end of ``base``.
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

from remotebank.settings.environment import env_int

__all__ = [
    "FACE_DETECT_MAX_SIDE",
    "FACE_EMBEDDING_CACHE_DAYS",
    "FACE_SECONDARY_FACE_RATIO",
    "FACE_THRESHOLD_ID_VS_REGISTRY",
    "FACE_THRESHOLD_LIVE_VS_ID",
    "FACE_THRESHOLD_LIVE_VS_REGISTRY",
]


def _env_fraction(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from error
    if not 0.0 < value < 1.0:
        raise ImproperlyConfigured(f"{name} must be between 0 and 1, got {value}")
    return value


# The largest cosine distance accepted as the same person, per comparison.
# The ID-card portrait is a ~100×125 px, blurred, JPEG'd crop of a phone photo
# of the card, so its two comparisons get their own thresholds. Calibrated with
# `manage.py face_calibrate` on one split of ../shared/datasets/faces and
# checked on the held-out split (docs/face-verification.md); change them only
# after re-running the calibration.
FACE_THRESHOLD_LIVE_VS_REGISTRY = _env_fraction("REMOTEBANK_FACE_THRESHOLD_LIVE_VS_REGISTRY", 0.089)
FACE_THRESHOLD_LIVE_VS_ID = _env_fraction("REMOTEBANK_FACE_THRESHOLD_LIVE_VS_ID", 0.085)
FACE_THRESHOLD_ID_VS_REGISTRY = _env_fraction("REMOTEBANK_FACE_THRESHOLD_ID_VS_REGISTRY", 0.083)

# A face narrower than this fraction of the photo's largest face is someone in
# the background and is ignored; a second face at least this wide still makes
# the photo "multiple faces" (we cannot tell which one is the customer).
FACE_SECONDARY_FACE_RATIO = _env_fraction("REMOTEBANK_FACE_SECONDARY_FACE_RATIO", 0.5)

# Face detection runs on a copy of the photo at most this many pixels long
# (boxes are mapped back; landmarks and the aligned chip use full resolution).
FACE_DETECT_MAX_SIDE = env_int("REMOTEBANK_FACE_DETECT_MAX_SIDE", 640)
if FACE_DETECT_MAX_SIDE < 200:
    raise ImproperlyConfigured("REMOTEBANK_FACE_DETECT_MAX_SIDE must be at least 200.")

# Cached embeddings of registry photos and ID-card portraits (biometric data
# derived from them) are used for this many days, then purged by the
# housekeeping round; a customer back after that is embedded afresh.
FACE_EMBEDDING_CACHE_DAYS = env_int("REMOTEBANK_FACE_EMBEDDING_CACHE_DAYS", 30)
if FACE_EMBEDDING_CACHE_DAYS < 1:
    raise ImproperlyConfigured("REMOTEBANK_FACE_EMBEDDING_CACHE_DAYS must be at least 1.")
