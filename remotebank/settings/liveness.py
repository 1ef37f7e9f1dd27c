"""Active liveness of Gate 3 and the retake policy (docs/face-verification.md, "Liveness"): environment only.

The defaults and the data that chose them are in docs/face-verification.md;
``manage.py liveness_calibrate`` measures pass and fail rates over recorded clips.
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

from remotebank.settings.environment import env_bool, env_int

__all__ = [
    "GATE_FACE_LIVENESS_REQUIRED",
    "LIVENESS_BLINK_CLOSED_EAR",
    "LIVENESS_BLINK_DROP_RATIO",
    "LIVENESS_CAPTURE_FPS",
    "LIVENESS_FIRST_DELAY_SECONDS",
    "LIVENESS_GAP_SECONDS",
    "LIVENESS_MIN_FACE_RATIO",
    "LIVENESS_REPLAY_MAX_DISTANCE",
    "LIVENESS_SLACK_SECONDS",
    "LIVENESS_STATIC_MAX_DIFFERENCE",
    "LIVENESS_STEPS",
    "LIVENESS_STEP_SECONDS",
    "LIVENESS_TURN_YAW",
    "VISIT_BLOCK_HOURS",
]


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"Environment variable {name} must be a number.") from exc


# Gate 3 runs the challenge before comparing faces; the live image is a frame
# of the challenge's burst. Off only where a test needs a chosen face.
GATE_FACE_LIVENESS_REQUIRED = env_bool("REMOTEBANK_GATE_FACE_LIVENESS_REQUIRED", True)
# The challenge: how many actions (1-2), seconds to do each, random delays.
LIVENESS_STEPS = env_int("REMOTEBANK_LIVENESS_STEPS", 2)
LIVENESS_STEP_SECONDS = _float("REMOTEBANK_LIVENESS_STEP_SECONDS", 3.5)
LIVENESS_FIRST_DELAY_SECONDS = (
    _float("REMOTEBANK_LIVENESS_FIRST_DELAY_MIN", 1.0),
    _float("REMOTEBANK_LIVENESS_FIRST_DELAY_MAX", 2.0),
)
LIVENESS_GAP_SECONDS = (_float("REMOTEBANK_LIVENESS_GAP_MIN", 0.3), _float("REMOTEBANK_LIVENESS_GAP_MAX", 1.2))
# Frames per second the server takes during the challenge (a blink lasts 100-400 ms).
LIVENESS_CAPTURE_FPS = env_int("REMOTEBANK_LIVENESS_CAPTURE_FPS", 8)
# Landmark thresholds (docs/face-verification.md says what data chose them).
LIVENESS_BLINK_CLOSED_EAR = _float("REMOTEBANK_LIVENESS_BLINK_CLOSED_EAR", 0.17)
LIVENESS_BLINK_DROP_RATIO = _float("REMOTEBANK_LIVENESS_BLINK_DROP_RATIO", 0.65)
LIVENESS_TURN_YAW = _float("REMOTEBANK_LIVENESS_TURN_YAW", 0.35)
LIVENESS_STATIC_MAX_DIFFERENCE = _float("REMOTEBANK_LIVENESS_STATIC_MAX_DIFFERENCE", 1.5)
LIVENESS_MIN_FACE_RATIO = _float("REMOTEBANK_LIVENESS_MIN_FACE_RATIO", 0.6)
LIVENESS_SLACK_SECONDS = _float("REMOTEBANK_LIVENESS_SLACK_SECONDS", 1.0)
# A live face this close to the registry photo or the ID portrait IS that
# picture, replayed: two different photos of one person are farther apart
# (measured with `manage.py face_calibrate --replay`, docs/face-verification.md).
LIVENESS_REPLAY_MAX_DISTANCE = _float("REMOTEBANK_LIVENESS_REPLAY_MAX_DISTANCE", 0.013)
# A customer who failed Gate 2 or Gate 3 may not start remote visits for this
# many hours (0: no block); supervisors can lift a block (docs/gates.md).
VISIT_BLOCK_HOURS = env_int("REMOTEBANK_VISIT_BLOCK_HOURS", 24)
