"""Local development and `make run`: the embedded default."""

from __future__ import annotations

from remotebank.settings.base import *  # noqa: F403
from remotebank.settings.base import VAR_DIR
from remotebank.settings.environment import env_bool
from remotebank.settings.secrets import load_secrets

DEBUG = env_bool("REMOTEBANK_DEBUG", default=True)

SECRET_KEY, FIELD_ENCRYPTION_KEYS, BLIND_INDEX_KEY = load_secrets(dev_secrets_file=VAR_DIR / "dev-secrets.json")
