"""`manage.py face_calibrate`: the FAR/FRR arithmetic on hand-made distances, and a real run."""

from __future__ import annotations

import math
import os
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from apps.gates.face_calibration import labelled_photos, same_picture
from apps.gates.management.commands.face_calibrate import (
    dataset_photos,
    error_rates,
    recommend_threshold,
    threshold_grid,
)
from tests.gates.conftest import require_face_weights

CI = os.environ.get("CI", "").lower() == "true"
GENUINE = [0.02, 0.03, 0.05, 0.08, math.inf]  # the inf: a photo with no face found
IMPOSTOR = [0.06, 0.09, 0.12, 0.15, 0.2, 0.25, 0.3, 0.3, 0.3, 0.4]


def test_rates_count_a_pair_at_exactly_the_threshold_as_accepted() -> None:
    rates = error_rates(genuine=GENUINE, impostor=IMPOSTOR, threshold=0.06)

    assert (rates.false_accepts, rates.impostor_pairs) == (1, 10)
    assert (rates.false_rejects, rates.genuine_pairs) == (2, 5)
    assert rates.far == pytest.approx(0.1)
    assert rates.frr == pytest.approx(0.4)


def test_a_failure_to_acquire_is_rejected_at_every_threshold() -> None:
    assert error_rates(genuine=GENUINE, impostor=IMPOSTOR, threshold=10.0).frr == pytest.approx(0.2)


def test_the_recommendation_has_the_lowest_frr_within_the_target_far() -> None:
    grid = threshold_grid(step=0.01, maximum=0.5)

    strict = recommend_threshold(genuine=GENUINE, impostor=IMPOSTOR, target_far=0.0, candidates=grid)
    lenient = recommend_threshold(genuine=GENUINE, impostor=IMPOSTOR, target_far=0.1, candidates=grid)

    # FAR 0 allows thresholds below 0.06; of those only 0.05 reaches FRR 2/5.
    assert strict is not None
    assert strict.threshold == pytest.approx(0.05)
    assert (strict.far, strict.frr) == (0.0, pytest.approx(0.4))
    # One impostor in ten allowed: only 0.08 accepts every finite genuine pair.
    assert lenient is not None
    assert lenient.threshold == pytest.approx(0.08)
    assert lenient.frr == pytest.approx(0.2)


def test_the_recommendation_is_the_middle_of_the_best_plateau() -> None:
    chosen = recommend_threshold(
        genuine=[0.01, 0.02], impostor=[0.1, 0.2], target_far=0.0, candidates=threshold_grid(step=0.01, maximum=0.3)
    )

    # FRR 0 and FAR 0 from 0.02 to 0.09: the middle leaves margin both ways.
    assert chosen is not None
    assert chosen.threshold == pytest.approx(0.06)


def test_no_recommendation_when_no_threshold_reaches_the_target() -> None:
    assert recommend_threshold(genuine=[0.1], impostor=[0.0], target_far=0.0, candidates=[0.05, 0.1]) is None


def test_multi_face_photos_are_left_out_and_hard_cases_kept() -> None:
    photos = dataset_photos(Path(settings.FACES_DATASET_DIR))
    names = {f"{person}/{path.name}" for person, path in photos}

    assert not any(person == "multi" for person, _ in photos)
    assert {"obama/5_small.jpg", "obama/6_partial.jpg"} <= names


def test_the_command_prints_a_table_and_a_recommendation_on_a_subset() -> None:
    require_face_weights()
    out = StringIO()

    call_command("face_calibrate", "--people", "biden", "kit_harington", "rose_leslie", stdout=out)

    text = out.getvalue()
    assert "photos: 7 (calibration fold 4, held-out fold 3), people: 3, card portraits per photo: 2" in text
    for name in ("live_vs_id", "live_vs_registry", "id_vs_registry"):
        assert f"== {name}, calibration fold:" in text
        recommendation = text.split(f"recommended {name} threshold for FAR <= 0.0:")[1].split()
        assert 0 < float(recommendation[0]) < 0.2
        assert recommendation[1] == "0.00%"  # FAR on the calibration fold
    # Held-out fold and the three comparisons together are reported for the shipped thresholds.
    assert "live_vs_id shipped:" in text
    sets = [line for line in text.splitlines() if line.startswith("shipped {") and "held-out fold:" in line]
    assert len(sets) == 1
    assert "impostor accepted 0/" in sets[0]


def test_crops_of_one_picture_are_the_same_picture_and_other_photos_are_not() -> None:
    photos = {photo.name: photo for photo in labelled_photos(Path(settings.FACES_DATASET_DIR))}

    assert same_picture(photos["obama/5_small.jpg"], photos["obama/1.jpg"])
    assert same_picture(photos["obama/3.jpg"], photos["obama/3.jpg"])
    assert not same_picture(photos["obama/3.jpg"], photos["obama/1.jpg"])
    assert not same_picture(photos["kit_harington/1.jpg"], photos["kit_harington/3.jpg"])


def test_the_replay_measure_separates_replays_from_other_photos_at_the_shipped_threshold() -> None:
    require_face_weights()
    out = StringIO()

    call_command(
        "face_calibrate", "--replay", "--replay-variants", "2", "--people", "biden", "kit_harington", stdout=out
    )

    text = out.getvalue()
    # 5 photos, each the registry photo and two card portraits, two video frames each.
    assert "replays (a known picture vs a video frame of it)  n=30 " in text
    # Every ordered pair of distinct photos of one person: 2 (biden) + 6 (kit), each vs registry and 2 cards.
    assert "genuine (another picture of the same person)      n=24 " in text
    shipped = next(line for line in text.splitlines() if line.startswith("shipped "))
    # The shipped rule calls no genuine customer a replay, and still catches some replays.
    assert shipped.endswith("genuine called a replay 0/24"), text
    assert " replays caught 0/" not in shipped, text
    recommended = float(next(line for line in text.splitlines() if line.startswith("recommended ")).split()[1][:-1])
    closest = float(text.split("closest genuine pairs:\n")[1].split()[0])
    assert recommended <= closest / 2
