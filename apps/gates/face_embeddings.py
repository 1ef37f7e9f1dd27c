"""Gate 3's embedding cache: the registry photo per customer, the ID-card portrait per visit.

Embedding a photo is most of a face check's cost, and two of Gate 3's three
photos come back unchanged: the registry returns the same photo on file for a
customer at every visit, and a visit's ID-card portrait stays the same when
the live image is retaken. Their embeddings are kept in
``FaceEmbeddingCacheEntry`` rows, one per scope, keyed by the photo's content
SHA-256 and the engine's pipeline: a hit needs both to match, so a changed
photo (a new registry photo, a corrected portrait) or a new engine is always
embedded afresh. A service module of its own (STYLE.md: every write through a
service) beside ``services.py``, which calls it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone

from apps.gates.integrations.face import DlibFaceEngine, FaceEmbedding, FaceError
from apps.gates.models import FaceEmbeddingCacheEntry

if TYPE_CHECKING:
    from collections.abc import Callable

    from PIL import Image


def registry_photo_scope(*, customer_id: int | None, visit_id: int) -> str:
    """A customer's registry photo is the same at every visit; a visit without a customer has its own."""
    if customer_id is not None:
        return f"registry_photo:customer:{customer_id}"
    return f"registry_photo:visit:{visit_id}"


def id_portrait_scope(*, visit_id: int) -> str:
    return f"id_portrait:visit:{visit_id}"


def _oldest_usable(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(days=int(settings.FACE_EMBEDDING_CACHE_DAYS))


def face_embedding_cache_purge(*, now: datetime | None = None) -> int:
    """Delete cached embeddings older than FACE_EMBEDDING_CACHE_DAYS (housekeeping); returns how many.

    They are biometric data derived from the photos, kept no longer than they
    save work; an expired entry is never used even before it is purged.
    """
    deleted, _per_model = FaceEmbeddingCacheEntry.objects.filter(computed_at__lt=_oldest_usable(now)).delete()
    return deleted


def face_embedding_get_or_compute(
    *,
    scope: str,
    photo_bytes: bytes,
    decode: Callable[[], Image.Image],
    engine: DlibFaceEngine,
    photo: str = "",
) -> FaceEmbedding:
    """The embedding of ``photo_bytes``: cached under ``scope`` if this very photo was embedded by this pipeline.

    ``decode`` is called only on a miss. A photo without a usable face raises
    the engine's ``FaceError`` (with ``photo`` set) and caches nothing, so a
    corrected photo is looked at again.
    """
    sha256 = hashlib.sha256(photo_bytes).hexdigest()
    entry = FaceEmbeddingCacheEntry.objects.filter(scope=scope, computed_at__gte=_oldest_usable()).first()
    if entry is not None and entry.content_sha256 == sha256 and entry.pipeline == engine.pipeline:
        return FaceEmbedding(
            vector=tuple(float(value) for value in entry.vector),
            box=(int(entry.box[0]), int(entry.box[1]), int(entry.box[2]), int(entry.box[3])),
            pipeline=entry.pipeline,
        )
    try:
        embedding = engine.embed(decode())
    except FaceError as error:
        error.photo = photo
        raise
    # One statement (INSERT … ON CONFLICT (scope) DO UPDATE): two workers
    # embedding the same photo at once both write the same row, neither fails.
    FaceEmbeddingCacheEntry.objects.bulk_create(
        [
            FaceEmbeddingCacheEntry(
                scope=scope,
                content_sha256=sha256,
                pipeline=engine.pipeline,
                vector=list(embedding.vector),
                box=list(embedding.box),
                computed_at=timezone.now(),
            )
        ],
        update_conflicts=True,
        unique_fields=["scope"],
        update_fields=["content_sha256", "pipeline", "vector", "box", "computed_at"],
    )
    return embedding
