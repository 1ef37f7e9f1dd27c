"""Calibrate ``FACE_MATCH_THRESHOLD`` on labelled face photos.

Every photo of ``--faces-dir`` (one folder per person; ``multi/`` is skipped)
is embedded with the real engine; every pair of photos of one person is a
genuine pair, every pair across two people an impostor pair. For each
candidate threshold t (a pair is accepted when its cosine distance ≤ t):

- FAR(t) = impostor pairs accepted / impostor pairs;
- FRR(t) = genuine pairs rejected / genuine pairs.

A photo in which the engine finds no face (or several) is a failure to
acquire: its genuine pairs count as rejected at every threshold (the customer
would be turned away), its impostor pairs are left out (nothing was compared).
Small and partial photos (obama/5_small, 6_partial) are kept on purpose: they
are the hard cases a phone camera produces.

The recommendation is the threshold with the lowest FRR among those with
FAR ≤ ``--target-far``, ties broken by the lower FAR, and then by the middle
of the remaining plateau, which leaves the most margin on both sides.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from PIL import Image

from apps.gates.integrations.face import FaceEmbedding, FaceError, get_face_engine

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
SKIPPED_FOLDERS = {"multi"}


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
    photos = []
    for folder in sorted(path for path in faces_dir.iterdir() if path.is_dir()):
        if folder.name in SKIPPED_FOLDERS or (people and folder.name not in people):
            continue
        photos += [(folder.name, p) for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    return photos


class Command(BaseCommand):
    help = "Measure FAR/FRR of the face engine on labelled photos and recommend FACE_MATCH_THRESHOLD."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--faces-dir", type=Path, default=None, help="Default: settings.FACES_DATASET_DIR.")
        parser.add_argument("--target-far", type=float, default=0.01)
        parser.add_argument("--people", nargs="*", help="Only these person folders (a quick subset).")
        parser.add_argument("--table-step", type=float, default=0.01, help="Threshold step of the printed table.")

    def handle(self, *args: Any, **options: Any) -> None:
        faces_dir = options["faces_dir"] or Path(settings.FACES_DATASET_DIR)
        if not faces_dir.is_dir():
            raise CommandError(f"{faces_dir} is not a directory")
        photos = dataset_photos(faces_dir, options["people"])
        if len({person for person, _ in photos}) < 2:
            raise CommandError("need photos of at least two people")
        engine = get_face_engine()

        embeddings: dict[Path, FaceEmbedding | None] = {}
        for person, path in photos:
            with Image.open(path) as image:
                try:
                    embeddings[path] = engine.embed(image)
                except FaceError as error:
                    embeddings[path] = None
                    self.stdout.write(f"  {person}/{path.name}: {error.code} (failure to acquire)")

        genuine: list[float] = []
        impostor: list[float] = []
        for (person_a, path_a), (person_b, path_b) in itertools.combinations(photos, 2):
            a, b = embeddings[path_a], embeddings[path_b]
            if person_a == person_b:
                genuine.append(engine.compare(a, b) if a and b else math.inf)
            elif a and b:
                impostor.append(engine.compare(a, b))

        embedded = sum(1 for value in embeddings.values() if value is not None)
        self.stdout.write(
            f"photos: {len(photos)} ({embedded} embedded), people: {len({p for p, _ in photos})}, "
            f"genuine pairs: {len(genuine)}, impostor pairs: {len(impostor)}"
        )
        finite_genuine = [d for d in genuine if math.isfinite(d)]
        if finite_genuine and impostor:
            self.stdout.write(
                f"genuine distance max {max(finite_genuine):.4f} median {sorted(finite_genuine)[len(finite_genuine) // 2]:.4f}; "
                f"impostor distance min {min(impostor):.4f} median {sorted(impostor)[len(impostor) // 2]:.4f}"
            )

        self.stdout.write(f"{'threshold':>9}  {'FAR':>7} {'(FA)':>9}  {'FRR':>7} {'(FR)':>7}")
        for threshold in threshold_grid(step=options["table_step"], maximum=0.2):
            self._row(error_rates(genuine=genuine, impostor=impostor, threshold=threshold))

        target = options["target_far"]
        chosen = recommend_threshold(genuine=genuine, impostor=impostor, target_far=target, candidates=threshold_grid())
        if chosen is None:
            self.stdout.write(f"no threshold reaches FAR <= {target}")
            return
        self.stdout.write(f"recommended FACE_MATCH_THRESHOLD for FAR <= {target}:")
        self._row(chosen)
        self.stdout.write(f"current FACE_MATCH_THRESHOLD = {engine.threshold}")

    def _row(self, rates: ErrorRates) -> None:
        self.stdout.write(
            f"{rates.threshold:>9.3f}  {rates.far:>7.2%} {rates.false_accepts:>4}/{rates.impostor_pairs:<4}  "
            f"{rates.frr:>7.2%} {rates.false_rejects:>3}/{rates.genuine_pairs:<3}"
        )
