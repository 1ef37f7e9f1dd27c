"""Calibrate Gate 3's per-comparison thresholds on labelled face photos.

Gate 3 compares three images: the live frame, the ID-card portrait and the
registry photo. From every photo of ``--faces-dir`` (one folder per person;
``multi/`` skipped) ``apps.gates.face_calibration`` makes a registry photo,
a live frame and two degraded ID-card portraits (~100×125 px, blur, JPEG
50–80), and forms, per comparison (live_vs_registry, live_vs_id,
id_vs_registry), every genuine pair (one person) and impostor pair (two).
For each candidate threshold t (a pair is accepted when its distance ≤ t):

- FAR(t) = impostor pairs accepted / impostor pairs;
- FRR(t) = genuine pairs rejected / genuine pairs.

An image in which the engine finds no usable face is a failure to acquire:
its genuine pairs count as rejected at every threshold (the customer would be
turned away), its impostor pairs are left out (nothing was compared). Small
and partial photos (obama/5_small, 6_partial) are kept on purpose.

Thresholds are chosen on the calibration fold (0) and reported on the
held-out fold (1), split by photo (see face_calibration). The recommendation
per comparison is the threshold with the lowest FRR among those with
FAR ≤ ``--target-far``, ties broken by the lower FAR and then by the middle
of the remaining plateau. The command then reports, on the held-out fold,
each comparison's FAR/FRR and the three-photo sets (all three comparisons
together) at the recommended and at the shipped thresholds.

``--replay`` measures the liveness replay rule instead: a live face closer
than ``LIVENESS_REPLAY_MAX_DISTANCE`` to the registry photo or the card
portrait is that picture shown to the camera, and the service ends. It
prints the distances of known pictures to video frames of themselves
(replays, to be caught) and of live frames of *other* pictures of the same
person to them (genuine customers, never to be called a replay), and
recommends half the lowest genuine distance: a margin of two, because one
wrong "replay" ends a real customer's service.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.gates.face_calibration import (
    CARD_VARIANTS,
    REPLAY_VARIANTS,
    build_images,
    comparison_pairs,
    distances_summary,
    embed_all,
    labelled_photos,
    replay_distances,
    three_photo_sets,
    threshold_rule,
)
from apps.gates.integrations.face import COMPARISONS, FaceThresholds, get_face_engine

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence


@dataclass(frozen=True)
class ErrorRates:
    threshold: float
    false_accepts: int
    impostor_pairs: int
    false_rejects: int
    genuine_pairs: int

    @property
    def far(self) -> float:
        return self.false_accepts / self.impostor_pairs if self.impostor_pairs else 0.0

    @property
    def frr(self) -> float:
        return self.false_rejects / self.genuine_pairs if self.genuine_pairs else 0.0


def error_rates(*, genuine: Sequence[float], impostor: Sequence[float], threshold: float) -> ErrorRates:
    """FAR/FRR at ``threshold``; a genuine distance of ``math.inf`` is a failure to acquire."""
    return ErrorRates(
        threshold=threshold,
        false_accepts=sum(1 for distance in impostor if distance <= threshold),
        impostor_pairs=len(impostor),
        false_rejects=sum(1 for distance in genuine if distance > threshold),
        genuine_pairs=len(genuine),
    )


def threshold_grid(*, step: float = 0.001, maximum: float = 0.2) -> list[float]:
    return [round(index * step, 6) for index in range(round(maximum / step) + 1)]


def recommend_threshold(
    *, genuine: Sequence[float], impostor: Sequence[float], target_far: float, candidates: Iterable[float]
) -> ErrorRates | None:
    """The recommended operating point (see module docstring); None if no candidate meets the target."""
    acceptable = [
        rates
        for rates in (error_rates(genuine=genuine, impostor=impostor, threshold=t) for t in sorted(candidates))
        if rates.far <= target_far
    ]
    if not acceptable:
        return None
    best_frr = min(rates.frr for rates in acceptable)
    best = [rates for rates in acceptable if rates.frr == best_frr]
    best_far = min(rates.far for rates in best)
    plateau = [rates for rates in best if rates.far == best_far]
    return plateau[len(plateau) // 2]


def dataset_photos(faces_dir: Path, people: Sequence[str] | None = None) -> list[tuple[str, Path]]:
    """(person, photo) for every photo, in a stable order; ``multi/`` skipped."""
    return [(photo.person, photo.path) for photo in labelled_photos(faces_dir, people)]


class Command(BaseCommand):
    help = "Measure FAR/FRR per Gate 3 comparison on card-portrait pairs and recommend the thresholds."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--faces-dir", type=Path, default=None, help="Default: settings.FACES_DATASET_DIR.")
        parser.add_argument("--target-far", type=float, default=0.0)
        parser.add_argument("--people", nargs="*", help="Only these person folders (a quick subset).")
        parser.add_argument("--table-step", type=float, default=0.01, help="Threshold step of the printed table.")
        parser.add_argument("--replay", action="store_true", help="Measure the liveness replay rule instead.")
        parser.add_argument(
            "--replay-variants", type=int, default=REPLAY_VARIANTS, help="Video frames made of each known picture."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        faces_dir = options["faces_dir"] or Path(settings.FACES_DATASET_DIR)
        if not faces_dir.is_dir():
            raise CommandError(f"{faces_dir} is not a directory")
        photos = labelled_photos(faces_dir, options["people"])
        if len({photo.person for photo in photos}) < 2:
            raise CommandError("need photos of at least two people")
        engine = get_face_engine()
        images = build_images(photos, engine)
        embedded = embed_all(engine, images)
        if options["replay"]:
            self._replay(engine, photos, embedded, images, options["replay_variants"])
            return
        self._thresholds(engine, photos, embedded, options)

    def _thresholds(self, engine: Any, photos: Sequence[Any], embedded: Any, options: dict[str, Any]) -> None:
        for failure in embedded.failures:
            self.stdout.write(f"  {failure} (failure to acquire)")
        folds = [sum(1 for photo in photos if photo.fold == fold) for fold in (0, 1)]
        self.stdout.write(
            f"photos: {len(photos)} (calibration fold {folds[0]}, held-out fold {folds[1]}), "
            f"people: {len({photo.person for photo in photos})}, card portraits per photo: {CARD_VARIANTS}"
        )

        calibration = comparison_pairs(engine, embedded, fold=0)
        held_out = comparison_pairs(engine, embedded, fold=1)
        target = options["target_far"]
        recommended: dict[str, float] = {}
        for name in COMPARISONS:
            pairs = calibration[name]
            self.stdout.write(
                f"\n== {name}, calibration fold: {len(pairs.genuine)} genuine, {len(pairs.impostor)} impostor pairs"
            )
            self.stdout.write(f"genuine  {distances_summary(pairs.genuine)}")
            self.stdout.write(f"impostor {distances_summary(pairs.impostor)}")
            self.stdout.write(f"{'threshold':>9}  {'FAR':>7} {'(FA)':>11}  {'FRR':>7} {'(FR)':>9}")
            for threshold in threshold_grid(step=options["table_step"], maximum=0.2):
                self._row(error_rates(genuine=pairs.genuine, impostor=pairs.impostor, threshold=threshold))
            chosen = recommend_threshold(
                genuine=pairs.genuine, impostor=pairs.impostor, target_far=target, candidates=threshold_grid()
            )
            if chosen is None:
                self.stdout.write(f"no threshold reaches FAR <= {target}")
                continue
            recommended[name] = chosen.threshold
            self.stdout.write(f"recommended {name} threshold for FAR <= {target}:")
            self._row(chosen)

        shipped = engine.thresholds
        self.stdout.write("\n== held-out fold, per comparison")
        for name in COMPARISONS:
            pairs = held_out[name]
            self.stdout.write(f"{name} held-out genuine  {distances_summary(pairs.genuine)}")
            self.stdout.write(f"{name} held-out impostor {distances_summary(pairs.impostor)}")
            points: list[tuple[str, float | None]] = [
                ("recommended", recommended.get(name)),
                ("shipped", getattr(shipped, name)),
            ]
            for label, point in points:
                if point is None:
                    continue
                self.stdout.write(f"{name} {label}:")
                self._row(error_rates(genuine=pairs.genuine, impostor=pairs.impostor, threshold=point))

        self.stdout.write("\n== three-photo sets (all three comparisons together)")
        candidates = [("shipped", shipped)]
        if len(recommended) == len(COMPARISONS):
            candidates.insert(0, ("recommended", FaceThresholds(**recommended)))
        for label, thresholds in candidates:
            for fold_label, fold in (("calibration fold", 0), ("held-out fold", 1), ("all", None)):
                rates = three_photo_sets(engine, embedded, threshold_rule(thresholds), fold=fold)
                self.stdout.write(
                    f"{label} {thresholds.as_dict()} {fold_label}: genuine accepted "
                    f"{rates.genuine_accepted}/{rates.genuine_sets} ({rates.genuine_acceptance:.2%}), "
                    f"impostor accepted {rates.impostor_accepted}/{rates.impostor_sets} ({rates.impostor_acceptance:.2%})"
                )
        self.stdout.write(f"shipped thresholds: {shipped.as_dict()}")

    def _replay(self, engine: Any, photos: Sequence[Any], embedded: Any, images: Any, variants: int) -> None:
        measured = replay_distances(engine, photos, embedded, images, variants)
        for failure in [*embedded.failures, *measured.failures]:
            self.stdout.write(f"  {failure} (no usable face, left out)")
        replays = [distance for distance, _ in measured.replays]
        distinct = [distance for distance, _ in measured.distinct]
        if not replays or not distinct:
            raise CommandError("need at least one replay and one pair of distinct photos of one person")
        self.stdout.write(f"replays (a known picture vs a video frame of it)  {distances_summary(replays)}")
        self.stdout.write(f"genuine (another picture of the same person)      {distances_summary(distinct)}")
        self.stdout.write("closest genuine pairs:")
        for distance, label in measured.distinct[:5]:
            self.stdout.write(f"  {distance:.4f} {label}")
        self.stdout.write("farthest replays:")
        for distance, label in measured.replays[-5:]:
            self.stdout.write(f"  {distance:.4f} {label}")
        recommended = math.floor(distinct[0] / 2 * 1000) / 1000
        shipped = float(settings.LIVENESS_REPLAY_MAX_DISTANCE)
        for label, threshold in (("recommended", recommended), ("shipped", shipped)):
            caught = sum(1 for distance in replays if distance < threshold)
            wrong = sum(1 for distance in distinct if distance < threshold)
            self.stdout.write(
                f"{label} {threshold:.3f}: replays caught {caught}/{len(replays)} ({caught / len(replays):.1%}), "
                f"genuine called a replay {wrong}/{len(distinct)}"
            )

    def _row(self, rates: ErrorRates) -> None:
        self.stdout.write(
            f"{rates.threshold:>9.3f}  {rates.far:>7.2%} {rates.false_accepts:>5}/{rates.impostor_pairs:<5}  "
            f"{rates.frr:>7.2%} {rates.false_rejects:>4}/{rates.genuine_pairs:<4}"
        )
