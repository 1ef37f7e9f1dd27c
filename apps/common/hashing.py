"""SHA-256 of files, read in chunks: the evidence hashes of recordings and of audit exports."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import IO

CHUNK_BYTES = 1024 * 1024


def sha256_of_stream(handle: IO[bytes]) -> tuple[str, int]:
    """SHA-256 (hex) and size in bytes of what is left to read in ``handle``, 1 MiB at a time.

    For files in Django's storage (``default_storage.open(name, "rb")``) as well as local ones.
    """
    digest = hashlib.sha256()
    size = 0
    while chunk := handle.read(CHUNK_BYTES):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def sha256_of_file(path: Path) -> tuple[str, int]:
    """SHA-256 (hex) and size in bytes of a local file."""
    with path.open("rb") as handle:
        return sha256_of_stream(handle)
