"""Gate 3's decision engine with the real model: the subject among several faces, card portraits, thresholds.

Nothing is replaced: dlib's detector, landmarks and recogniser from the
offline weights (deepface's pipeline too, where the old behaviour is the
point). Without the weights these tests skip locally and FAIL under CI=true.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings
from PIL import Image

from apps.gates.face_calibration import Photo, card_portrait, live_frame, load_photo
from apps.gates.integrations.face import (
    PIPELINE_DEEPFACE_CROP,
    DlibFaceEngine,
    FaceBox,
    FaceNotFound,
    MultipleFaces,
    UnusableImage,
    get_face_engine,
)
from tests.gates.conftest import require_face_weights

CI = os.environ.get("CI", "").lower() == "true"
FACES = Path(settings.FACES_DATASET_DIR)


@pytest.fixture(scope="module")
def engine() -> DlibFaceEngine:
    require_face_weights()
    face_engine = get_face_engine()
    face_engine.warm_up()
    return face_engine


def photo(relative: str) -> Photo:
    person, name = relative.split("/")
    return Photo(person, FACES / person / name, fold=1)


def with_background_face(main: str, background: str, width: int, engine: DlibFaceEngine) -> Image.Image:
    """``main`` with ``background``'s face pasted in its top-left corner, ``width`` px wide."""
    canvas = load_photo(FACES / main)
    other = load_photo(FACES / background)
    face = engine.subject(engine.detect_faces(other))
    margin = face.width * 0.6
    crop = other.crop(
        (
            round(face.left - margin),
            round(face.top - margin),
            round(face.left + face.width + margin),
            round(face.top + face.height + margin),
        )
    )
    scale = width / face.width
    canvas.paste(
        crop.resize((round(crop.width * scale), round(crop.height * scale)), Image.Resampling.LANCZOS), (10, 10)
    )
    return canvas


def test_a_small_background_face_no_longer_fails_a_registry_photo(engine: DlibFaceEngine) -> None:
    clean = load_photo(FACES / "kit_harington/2.jpg")
    crowded = with_background_face("kit_harington/2.jpg", "rose_leslie/1.jpg", 36, engine)
    old = DlibFaceEngine(deepface_home=engine.deepface_home, threshold=0.07, pipeline=PIPELINE_DEEPFACE_CROP)

    # The old pipeline (deepface's detector upsampled) sees the 36 px face and gives up.
    with pytest.raises(MultipleFaces):
        old.embed(crowded)
    embedding = engine.embed(crowded)

    assert engine.compare(embedding, engine.embed(clean)) < 0.005
    assert embedding.box == engine.embed(clean).box


def test_a_detected_face_under_the_ratio_is_ignored_and_the_largest_is_the_subject(engine: DlibFaceEngine) -> None:
    crowded = with_background_face("kit_harington/2.jpg", "rose_leslie/1.jpg", 85, engine)
    clean = engine.embed(load_photo(FACES / "kit_harington/2.jpg"))

    faces = engine.detect_faces(crowded)
    embedding = engine.embed(crowded)

    assert len(faces) == 2  # the background face is found, then ignored
    assert faces[1].width < engine.secondary_face_ratio * faces[0].width
    assert embedding.box == (faces[0].left, faces[0].top, faces[0].width, faces[0].height)
    assert engine.compare(embedding, clean) < 0.005


def test_a_second_face_of_comparable_size_is_still_multiple_faces(engine: DlibFaceEngine) -> None:
    crowded = with_background_face("kit_harington/2.jpg", "rose_leslie/1.jpg", 130, engine)

    with pytest.raises(MultipleFaces) as raised:
        engine.embed(crowded)
    assert raised.value.code == "multiple_faces"


@pytest.mark.parametrize(
    ("widths", "ratio", "subject_width"),
    [([200], 0.5, 200), ([200, 99], 0.5, 200), ([200, 36, 20], 0.5, 200), ([200, 150], 0.8, 200)],
)
def test_the_subject_is_the_largest_face_when_the_others_are_under_the_ratio(
    widths: list[int], ratio: float, subject_width: int
) -> None:
    engine = DlibFaceEngine(deepface_home=Path("/nonexistent"), threshold=0.08, secondary_face_ratio=ratio)
    faces = [FaceBox(left=0, top=0, width=width, height=width, score=1.0) for width in widths]

    assert engine.subject(faces).width == subject_width


@pytest.mark.parametrize(("widths", "ratio"), [([200, 100], 0.5), ([200, 190], 0.5), ([200, 150], 0.7)])
def test_a_rival_face_at_or_over_the_ratio_is_refused(widths: list[int], ratio: float) -> None:
    engine = DlibFaceEngine(deepface_home=Path("/nonexistent"), threshold=0.08, secondary_face_ratio=ratio)

    with pytest.raises(MultipleFaces):
        engine.subject([FaceBox(left=0, top=0, width=width, height=width, score=1.0) for width in widths])


def test_no_face_and_an_unusable_image_are_clear_errors(engine: DlibFaceEngine) -> None:
    with pytest.raises(FaceNotFound):
        engine.embed(Image.new("RGB", (400, 300), (180, 200, 220)))
    with pytest.raises(UnusableImage) as raised:
        engine.embed(Image.new("RGB", (20, 400), (180, 200, 220)))
    assert raised.value.code == "unusable_image"


def card_of(engine: DlibFaceEngine, relative: str) -> Image.Image:
    source = photo(relative)
    image = load_photo(source.path)
    box = engine.subject(engine.detect_faces(image))
    return card_portrait(image, (box.left, box.top, box.width, box.height), source, 0)


def live_of(relative: str) -> Image.Image:
    source = photo(relative)
    return live_frame(load_photo(source.path), source)


def test_a_genuine_set_with_a_degraded_card_portrait_passes_at_the_shipped_thresholds(engine: DlibFaceEngine) -> None:
    card = card_of(engine, "obama/3.jpg")
    assert 90 <= card.width <= 110 and 112 <= card.height <= 138  # about 100×125 px

    verdict = engine.verify_three(live_of("obama/2.jpg"), card, load_photo(FACES / "obama/1.jpg"))

    assert verdict.passed, verdict
    assert verdict.failed_comparisons == []


@pytest.mark.parametrize(
    ("live", "card", "registry", "failing"),
    [
        # Someone else at the camera, with the customer's own card.
        ("biden/2.jpg", "obama/3.jpg", "obama/1.jpg", {"live_vs_id", "live_vs_registry"}),
        # A forged card with the impostor's photo and the customer's number.
        ("biden/2.jpg", "biden/1.jpg", "obama/1.jpg", {"id_vs_registry", "live_vs_registry"}),
    ],
)
def test_an_impostor_set_with_a_degraded_card_portrait_fails_at_the_shipped_thresholds(
    engine: DlibFaceEngine, live: str, card: str, registry: str, failing: set[str]
) -> None:
    verdict = engine.verify_three(live_of(live), card_of(engine, card), load_photo(FACES / registry))

    assert not verdict.passed
    assert set(verdict.failed_comparisons) == failing
