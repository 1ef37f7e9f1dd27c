"""Secrets: from the environment; for local development only, generated once.

Three keys protect customer data and must stay stable for the data to remain
readable: SECRET_KEY (sessions, signing), FIELD_ENCRYPTION_KEYS (Fernet keys
encrypting ID and mobile numbers at rest, newest first so old rows still
decrypt after a rotation) and BLIND_INDEX_KEY (HMAC key of the searchable blind
indexes; changing it requires re-indexing).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from remotebank.settings.environment import env_list, env_optional


def _new_fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _local_secrets(path: Path) -> dict[str, str]:
    """Read, or create with fresh random values, the git-ignored dev secrets file."""
    if path.exists():
        return dict(json.loads(path.read_text()))
    path.parent.mkdir(parents=True, exist_ok=True)
    values = {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEY": _new_fernet_key(),
        "BLIND_INDEX_KEY": secrets.token_urlsafe(32),
    }
    # O_EXCL: two processes starting at once (Daphne and a worker) must not
    # each write different keys; the loser reads the winner's file.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return dict(json.loads(path.read_text()))
    with os.fdopen(fd, "w") as handle:
        json.dump(values, handle)
    return values


def load_secrets(*, dev_secrets_file: Path | None) -> tuple[str, list[str], str]:
    """Return (SECRET_KEY, FIELD_ENCRYPTION_KEYS, BLIND_INDEX_KEY).

    Without ``dev_secrets_file`` (production) every key must come from the
    environment.
    """
    fallback = _local_secrets(dev_secrets_file) if dev_secrets_file else {}
    secret_key = env_optional("REMOTEBANK_SECRET_KEY") or fallback.get("SECRET_KEY")
    field_keys = env_list("REMOTEBANK_FIELD_ENCRYPTION_KEYS", [])
    if not field_keys and "FIELD_ENCRYPTION_KEY" in fallback:
        field_keys = [fallback["FIELD_ENCRYPTION_KEY"]]
    blind_index_key = env_optional("REMOTEBANK_BLIND_INDEX_KEY") or fallback.get("BLIND_INDEX_KEY")
    missing = [
        name
        for name, value in (
            ("REMOTEBANK_SECRET_KEY", secret_key),
            ("REMOTEBANK_FIELD_ENCRYPTION_KEYS", field_keys),
            ("REMOTEBANK_BLIND_INDEX_KEY", blind_index_key),
        )
        if not value
    ]
    if missing:
        raise ImproperlyConfigured(f"Missing required secrets: {', '.join(missing)}")
    assert secret_key is not None and blind_index_key is not None
    return secret_key, field_keys, blind_index_key
