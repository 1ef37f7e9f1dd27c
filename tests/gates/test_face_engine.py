"""The real face engine (deepface + Dlib, offline weights) on the shared face photos.

Nothing is replaced here. The weights come from `manage.py face_weights_install`
(run by `make setup`); without them these tests skip locally and FAIL under
CI=true, where a missing model is a broken build, not an excuse.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from django.conf import settings
from PIL import Image

from apps.gates.integrations.face import (
    DlibFaceEngine,
    FaceEmbedding,
    FaceNotFound,
    MultipleFaces,
    assert_opencv_variant,
    decide,
    get_face_engine,
    missing_weights,
)
from tests.gates.conftest import require_face_weights

CI = os.environ.get("CI", "").lower() == "true"
FACES = Path(settings.FACES_DATASET_DIR)


def photo(relative: str) -> Image.Image:
    with Image.open(FACES / relative) as image:
        image.load()
        return image


@pytest.fixture(scope="module")
def engine() -> DlibFaceEngine:
    require_face_weights()
    face_engine = get_face_engine()
    face_engine.warm_up()
    return face_engine


def test_the_contrib_build_of_opencv_is_the_one_imported() -> None:
    assert_opencv_variant()


def test_engine_uses_the_calibrated_thresholds(engine: DlibFaceEngine) -> None:
    assert engine.thresholds.as_dict() == {
        "live_vs_id": pytest.approx(float(settings.FACE_THRESHOLD_LIVE_VS_ID)),
        "live_vs_registry": pytest.approx(float(settings.FACE_THRESHOLD_LIVE_VS_REGISTRY)),
        "id_vs_registry": pytest.approx(float(settings.FACE_THRESHOLD_ID_VS_REGISTRY)),
    }
    assert engine.threshold == engine.thresholds.live_vs_registry
    assert all(0.03 < value < 0.12 for value in engine.thresholds.as_dict().values())


def test_same_person_on_all_three_photos_passes(engine: DlibFaceEngine) -> None:
    verdict = engine.verify_three(photo("obama/2.jpg"), photo("obama/3.jpg"), photo("obama/1.jpg"))

    assert verdict.passed
    assert all(verdict.scores[name] <= verdict.thresholds[name] for name in verdict.scores)


@pytest.mark.parametrize(
    ("first", "second"), [("biden/1.jpg", "biden/2.jpg"), ("rose_leslie/1.jpg", "rose_leslie/2.jpg")]
)
def test_two_photos_of_one_person_are_within_the_threshold(engine: DlibFaceEngine, first: str, second: str) -> None:
    assert engine.compare(engine.embed(photo(first)), engine.embed(photo(second))) <= engine.thresholds.live_vs_registry


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("biden/1.jpg", "obama/1.jpg"),
        ("kit_harington/1.jpg", "rose_leslie/1.jpg"),
        ("alex_lacamoire/1.jpg", "lin_manuel_miranda/1.png"),
    ],
)
def test_two_different_people_are_beyond_the_threshold(engine: DlibFaceEngine, first: str, second: str) -> None:
    assert engine.compare(engine.embed(photo(first)), engine.embed(photo(second))) > engine.thresholds.live_vs_registry


def test_an_impostor_live_face_fails_even_when_card_and_registry_agree(engine: DlibFaceEngine) -> None:
    verdict = engine.verify_three(photo("biden/1.jpg"), photo("obama/3.jpg"), photo("obama/1.jpg"))

    assert not verdict.passed
    assert verdict.id_vs_registry <= verdict.thresholds["id_vs_registry"]
    assert verdict.live_vs_id > verdict.thresholds["live_vs_id"]
    assert verdict.live_vs_registry > verdict.thresholds["live_vs_registry"]
    assert verdict.failed_comparisons == ["live_vs_id", "live_vs_registry"]


def test_a_forged_card_with_the_impostors_photo_fails_on_the_registry_comparison(engine: DlibFaceEngine) -> None:
    verdict = engine.verify_three(photo("biden/1.jpg"), photo("biden/2.jpg"), photo("obama/1.jpg"))

    assert verdict.live_vs_id <= verdict.thresholds["live_vs_id"]
    assert verdict.id_vs_registry > verdict.thresholds["id_vs_registry"]
    assert not verdict.passed


def test_a_photo_without_a_face_raises_face_not_found(engine: DlibFaceEngine) -> None:
    with pytest.raises(FaceNotFound) as raised:
        engine.embed(Image.new("RGB", (400, 300), (180, 200, 220)))
    assert raised.value.code == "face_not_found"


@pytest.mark.parametrize("name", ["two_people.jpg", "obama_and_biden.jpg"])
def test_a_photo_with_two_faces_raises_multiple_faces(engine: DlibFaceEngine, name: str) -> None:
    with pytest.raises(MultipleFaces) as raised:
        engine.embed(photo(f"multi/{name}"))
    assert raised.value.code == "multiple_faces"


def test_concurrent_calls_from_threads_give_the_same_results(engine: DlibFaceEngine) -> None:
    names = ["obama/1.jpg", "biden/1.jpg", "rose_leslie/2.jpg", "kit_harington/1.jpg"]
    images = {name: photo(name) for name in names}
    expected = {name: engine.embed(image) for name, image in images.items()}
    results: dict[tuple[int, str], FaceEmbedding] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work(worker: int) -> None:
        try:
            start.wait()
            for name in names[worker:] + names[:worker]:
                results[(worker, name)] = engine.embed(images[name])
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert len(results) == 16
    for (_worker, name), embedding in results.items():
        assert embedding == expected[name]


def test_a_fresh_engine_loads_the_model_once_under_concurrent_first_calls(engine: DlibFaceEngine) -> None:
    fresh = DlibFaceEngine(deepface_home=engine.deepface_home, threshold=engine.threshold)
    loaded: list[object] = []
    start = threading.Barrier(3)

    def first_call() -> None:
        start.wait()
        loaded.append(fresh._load())

    threads = [threading.Thread(target=first_call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(loaded) == 3
    assert all(module is loaded[0] for module in loaded)


def test_missing_weights_are_reported_and_never_downloaded(tmp_path: Path) -> None:
    engine = DlibFaceEngine(deepface_home=tmp_path, threshold=0.07)

    assert len(missing_weights(tmp_path)) == 2
    with pytest.raises(RuntimeError, match="face_weights_install"):
        engine.embed(Image.new("RGB", (10, 10)))
    assert not (tmp_path / ".deepface" / "weights").exists()


@pytest.mark.parametrize(
    ("scores", "passed"),
    [
        ((0.05, 0.06, 0.07), True),
        ((0.05, 0.06, 0.0701), False),
        ((0.2, 0.01, 0.01), False),
        ((0.01, 0.01, 0.2), False),
    ],
)
def test_all_three_comparisons_must_be_within_the_threshold(scores: tuple[float, float, float], passed: bool) -> None:
    live_vs_id, live_vs_registry, id_vs_registry = scores
    verdict = decide(
        live_vs_id=live_vs_id, live_vs_registry=live_vs_registry, id_vs_registry=id_vs_registry, threshold=0.07
    )
    assert verdict.passed is passed
