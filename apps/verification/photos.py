"""Customer photos (ID card, portrait, account) at rest: Fernet-encrypted files.

The storage (filesystem or S3, ``remotebank/settings/storage.py``) only ever
holds ciphertext: a copied disk or a leaked bucket shows no ID card. The keys
are the field-encryption keys (``settings.FIELD_ENCRYPTION_KEYS``, newest
first: ``MultiFernet`` encrypts with the first and decrypts with any, so a key
rotation keeps old photos readable). Files are purged with the retention
period (``verification_photos_purge``), like recordings.

``SealedFileField`` encrypts in ``FieldFile.save`` and decrypts in
``FieldFile.open``, so code that reads a photo (Gate 3's face comparison)
reads plaintext without knowing about the encryption, and nothing can write
one in clear by forgetting a helper.
"""

from __future__ import annotations

import io
from typing import Any

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.db import models
from django.db.models.fields.files import FieldFile


def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in settings.FIELD_ENCRYPTION_KEYS])


class SealedFieldFile(FieldFile):
    def save(self, name: str, content: File[Any], save: bool = True) -> None:
        content.seek(0)
        sealed = ContentFile(_fernet().encrypt(content.read()))
        super().save(name, sealed, save=save)

    def open(self, mode: str = "rb") -> File[Any]:  # type: ignore[override]
        """The decrypted photo as a read-only file (raises ``InvalidToken`` if tampered with)."""
        if "w" in mode or "a" in mode or "+" in mode:
            raise ValueError("sealed photos are written only through save()")
        if not self.name:
            raise ValueError(f"The '{self.field.name}' attribute has no file associated with it.")
        with self.storage.open(self.name, "rb") as handle:
            plain = _fernet().decrypt(handle.read())
        return File(io.BytesIO(plain), name=self.name)

    def read_plain(self) -> bytes:
        with self.open("rb") as handle:
            data: bytes = handle.read()
        return data


class SealedFileField(models.FileField):
    """A FileField whose stored content is Fernet ciphertext (see the module's docstring)."""

    attr_class = SealedFieldFile
