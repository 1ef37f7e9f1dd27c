"""Receivers of the platform's signals; each only calls a service."""

from __future__ import annotations

from typing import Any

from apps.common.signals import housekeeping_due


def on_housekeeping_due(sender: Any, now: Any, **kwargs: Any) -> None:
    from apps.gates.face_embeddings import face_embedding_cache_purge
    from apps.gates.services import gate_attempts_expire

    gate_attempts_expire(now=now)
    face_embedding_cache_purge(now=now)


def connect() -> None:
    housekeeping_due.connect(on_housekeeping_due, dispatch_uid="gates_expire_checks_on_housekeeping")
