"""Gate 3's embedding cache with the real model and PostgreSQL: hits, and misses when the photo changes."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from PIL import Image

from apps.common.images import load_untrusted_image
from apps.gates.face_embeddings import (
    face_embedding_get_or_compute,
    id_portrait_scope,
    registry_photo_scope,
)
from apps.gates.integrations.face import DlibFaceEngine, FaceEmbedding, FaceNotFound
from apps.gates.models import FaceEmbeddingCacheEntry, GateProgress
from tests.gates.conftest import KIT, InCall, _pass_face, _pass_identity, require_face_weights

CI = os.environ.get("CI", "").lower() == "true"
FACES = Path(settings.FACES_DATASET_DIR)

pytestmark = pytest.mark.django_db


class CountingEngine(DlibFaceEngine):
    """The real engine, counting how often it really embeds a photo."""

    embeds = 0

    def embed(self, image: Image.Image) -> FaceEmbedding:
        self.embeds += 1
        return super().embed(image)


@pytest.fixture(scope="module")
def engine() -> CountingEngine:
    home = require_face_weights()
    counting = CountingEngine(deepface_home=home, threshold=float(settings.FACE_THRESHOLD_LIVE_VS_REGISTRY))
    counting.warm_up()
    return counting


def get(engine: CountingEngine, scope: str, data: bytes) -> FaceEmbedding:
    return face_embedding_get_or_compute(
        scope=scope, photo_bytes=data, decode=lambda: load_untrusted_image(data), engine=engine, photo="registry_photo"
    )


def test_a_photo_seen_before_is_not_embedded_again(engine: CountingEngine) -> None:
    data = (FACES / "obama/1.jpg").read_bytes()
    scope = registry_photo_scope(customer_id=41, visit_id=7)
    before = engine.embeds

    first = get(engine, scope, data)
    second = get(engine, scope, data)

    assert engine.embeds == before + 1
    assert second == first
    assert first == engine.embed(load_untrusted_image(data))


def test_a_changed_photo_in_the_same_scope_is_embedded_afresh_and_replaces_the_entry(engine: CountingEngine) -> None:
    old = (FACES / "obama/1.jpg").read_bytes()
    new = (FACES / "biden/1.jpg").read_bytes()
    scope = registry_photo_scope(customer_id=42, visit_id=8)
    old_embedding = get(engine, scope, old)
    before = engine.embeds

    changed = get(engine, scope, new)

    assert engine.embeds == before + 1
    assert changed == engine.embed(load_untrusted_image(new))
    assert engine.compare(changed, old_embedding) > engine.thresholds.live_vs_registry
    entries = FaceEmbeddingCacheEntry.objects.filter(scope=scope)
    assert entries.count() == 1
    assert entries.get().vector == list(changed.vector)
    # And back: the old photo is no longer cached, it is embedded again (not served the new one's vector).
    before = engine.embeds
    assert get(engine, scope, old) == old_embedding
    assert engine.embeds == before + 1


def test_one_changed_byte_is_a_different_photo(engine: CountingEngine) -> None:
    image = load_untrusted_image((FACES / "rose_leslie/2.jpg").read_bytes())
    from io import BytesIO

    first, second = BytesIO(), BytesIO()
    image.save(first, "PNG")
    image.save(second, "PNG", compress_level=1)  # same pixels, other bytes
    scope = id_portrait_scope(visit_id=9)
    get(engine, scope, first.getvalue())
    before = engine.embeds

    get(engine, scope, second.getvalue())

    assert engine.embeds == before + 1


def test_an_entry_of_another_pipeline_is_a_miss(engine: CountingEngine) -> None:
    data = (FACES / "kit_harington/1.jpg").read_bytes()
    scope = registry_photo_scope(customer_id=43, visit_id=10)
    real = get(engine, scope, data)
    FaceEmbeddingCacheEntry.objects.filter(scope=scope).update(pipeline="deepface-crop-v1", vector=[0.0] * 128)
    before = engine.embeds

    assert get(engine, scope, data) == real
    assert engine.embeds == before + 1


def test_a_photo_without_a_face_raises_and_leaves_nothing_cached(engine: CountingEngine) -> None:
    from io import BytesIO

    blank = BytesIO()
    Image.new("RGB", (400, 300), (120, 130, 140)).save(blank, "JPEG")
    scope = id_portrait_scope(visit_id=11)

    with pytest.raises(FaceNotFound) as raised:
        get(engine, scope, blank.getvalue())

    assert raised.value.photo == "registry_photo"
    assert not FaceEmbeddingCacheEntry.objects.filter(scope=scope).exists()


def test_scopes_are_per_customer_for_the_registry_and_per_visit_for_the_portrait() -> None:
    assert registry_photo_scope(customer_id=5, visit_id=1) == registry_photo_scope(customer_id=5, visit_id=2)
    assert registry_photo_scope(customer_id=None, visit_id=1) != registry_photo_scope(customer_id=None, visit_id=2)
    assert id_portrait_scope(visit_id=1) != id_portrait_scope(visit_id=2)


def test_gate3_caches_the_portrait_per_visit_and_the_registry_photo_per_customer(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any]
) -> None:
    in_call = make_in_call(person=KIT)
    _pass_identity(in_call, on_commit)
    _pass_face(in_call, on_commit)

    progress = GateProgress.objects.get(visit=in_call.visit)
    with progress.registry_photo.open("rb") as handle:
        registry_sha256 = hashlib.sha256(handle.read()).hexdigest()
    with in_call.visit.verification.id_card_portrait.open("rb") as handle:
        portrait_sha256 = hashlib.sha256(handle.read()).hexdigest()
    registry = FaceEmbeddingCacheEntry.objects.get(scope=f"registry_photo:customer:{in_call.customer.pk}")
    portrait = FaceEmbeddingCacheEntry.objects.get(scope=f"id_portrait:visit:{in_call.visit.pk}")
    assert registry.content_sha256 == registry_sha256
    assert portrait.content_sha256 == portrait_sha256
    assert registry.pipeline == portrait.pipeline == "dlib-chip-v1"


def test_an_expired_entry_is_not_used_and_the_housekeeping_round_purges_it(
    engine: CountingEngine, settings: Any
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from apps.common.signals import housekeeping_due

    data = (FACES / "biden/2.jpg").read_bytes()
    old_scope = registry_photo_scope(customer_id=44, visit_id=12)
    fresh_scope = registry_photo_scope(customer_id=45, visit_id=13)
    get(engine, old_scope, data)
    get(engine, fresh_scope, data)
    expired_at = timezone.now() - timedelta(days=settings.FACE_EMBEDDING_CACHE_DAYS, minutes=1)
    FaceEmbeddingCacheEntry.objects.filter(scope=old_scope).update(computed_at=expired_at, vector=[0.0] * 128)
    before = engine.embeds

    assert get(engine, old_scope, data) == engine.embed(load_untrusted_image(data))  # not the stale vector
    assert engine.embeds == before + 2  # the miss, and the check's own embed
    FaceEmbeddingCacheEntry.objects.filter(scope=old_scope).update(computed_at=expired_at)
    housekeeping_due.send(sender=None, now=timezone.now())

    assert set(
        FaceEmbeddingCacheEntry.objects.filter(scope__in=[old_scope, fresh_scope]).values_list("scope", flat=True)
    ) == {fresh_scope}
