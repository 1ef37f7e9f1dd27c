"""Production: every secret from the environment, HTTPS only."""

from __future__ import annotations

from remotebank.settings.base import *  # noqa: F403
from remotebank.settings.environment import env_bool, env_int
from remotebank.settings.secrets import load_secrets

DEBUG = False
# The SMS sandbox's development page never exists in production.
SMS_SANDBOX_PAGE = False

SECRET_KEY, FIELD_ENCRYPTION_KEYS, BLIND_INDEX_KEY = load_secrets(dev_secrets_file=None)

SECURE_SSL_REDIRECT = env_bool("REMOTEBANK_SSL_REDIRECT", default=True)
# Behind a TLS-terminating load balancer (docs/operations.md).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env_int("REMOTEBANK_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
