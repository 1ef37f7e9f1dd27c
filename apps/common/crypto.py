"""Encryption at rest and blind indexes for personal numbers.

Encryption uses django-fernet-encrypted-fields, but with keys of our own
(``settings.FIELD_ENCRYPTION_KEYS``) rather than ones derived from SECRET_KEY,
so rotating the session-signing key never makes customer data unreadable.

Fernet ciphertexts are randomized, so an encrypted column cannot be searched.
Each searchable number therefore gets a *blind index*: an HMAC-SHA256 of the
normalized value under ``settings.BLIND_INDEX_KEY``, different per purpose so
that equal values in two columns cannot be linked. Equality search is then a
plain indexed lookup on the HMAC.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings
from django.db import models
from django.utils.functional import cached_property
from encrypted_fields.fields import EncryptedCharField as _LibraryEncryptedCharField


# CharField is already a base of the library's class; naming it again lets
# the type checker (which cannot see into the untyped library) type values as str.
class EncryptedCharField(_LibraryEncryptedCharField, models.CharField):
    """A CharField stored Fernet-encrypted, keyed by FIELD_ENCRYPTION_KEYS (newest first)."""

    @cached_property
    def keys(self) -> list[bytes]:
        return [key.encode() for key in settings.FIELD_ENCRYPTION_KEYS]

    @cached_property
    def f(self) -> Fernet | MultiFernet:
        # MultiFernet encrypts with the first key and decrypts with any: key rotation.
        return MultiFernet([Fernet(key) for key in self.keys])

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        # The library returns the ciphertext when decryption fails; a bank must
        # fail loudly instead (wrong or missing key), never show garbage.
        if value is None:
            return value
        return self.f.decrypt(value.encode()).decode()

    def deconstruct(self) -> Any:
        name, _path, args, kwargs = super().deconstruct()
        return name, "apps.common.crypto.EncryptedCharField", args, kwargs


def normalize_id_number(value: str) -> str:
    return value.strip().upper()


def normalize_mobile(value: str) -> str:
    digits = "".join(ch for ch in value if ch.isdigit())
    # +86 / 0086 prefixes name the same subscriber.
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    elif len(digits) == 15 and digits.startswith("0086"):
        digits = digits[4:]
    return digits


def normalize_account_number(value: str) -> str:
    return "".join(value.split())


def blind_index(value: str, *, purpose: str) -> str:
    """HMAC-SHA256 (hex) of an already-normalized value, domain-separated by ``purpose``."""
    key = settings.BLIND_INDEX_KEY.encode()
    message = f"{purpose}:{value}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def id_number_index(value: str) -> str:
    return blind_index(normalize_id_number(value), purpose="id_number")


def mobile_index(value: str) -> str:
    return blind_index(normalize_mobile(value), purpose="mobile")
