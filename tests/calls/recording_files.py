"""Waiting for Janus to close a room's recordings, for the tests that read them."""

from __future__ import annotations

import time
from pathlib import Path


def closed_recordings(record_dir: Path, *, timeout: float) -> list[Path]:
    """The folder's files once Janus has closed every recording (``foo.mjr.tmp`` renamed ``foo.mjr``).

    Returns the files as they are at ``timeout`` if that does not happen in
    time (the caller asserts). A room's destroy (or the call's end) hangs up
    every publisher, but a publisher's recorder is closed when its handle's
    media is torn down, which may come after the answer (a peer on a lossy
    link, a browser already gone).
    """
    deadline = time.monotonic() + timeout
    while True:
        files = sorted(record_dir.iterdir()) if record_dir.is_dir() else []
        if (files and all(path.suffix == ".mjr" for path in files)) or time.monotonic() > deadline:
            return files
        time.sleep(0.2)
