"""Labelled face data for calibrating and measuring Gate 3's decision (face_calibrate, bench/face_bench.py).

From the shared face set (one folder per person) we make what Gate 3 really
compares:

- a **registry photo**: the original photo (the photo on file is a good photo);
- a **live frame**: the photo as a video frame of the customer's stream
  (at most 640 px long, JPEG 70–85);
- an **ID-card portrait**: what cropping the portrait out of a phone photo of
  an ID card yields: head and shoulders at about 100×125 px, blurred
  (Gaussian radius 0.4–1.1), JPEG 50–80.

Degradations are drawn from a seeded generator (crc32 of the photo's name and
the variant), so every run makes the same images.

Held-out split, by photo: each person's photos, in name order, go alternately
to fold 0 (calibration) and fold 1 (held out). A pair or a set belongs to the
fold of the photo its *probe* (the live frame or the card portrait, the
degraded side) was made from; card variants of the two folds also use
different seeds. Thresholds are chosen on fold 0 and reported on fold 1,
never tuned to fold 1 or to a list of cases.
"""

from __future__ import annotations

import io
import itertools
import random
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from apps.gates.integrations.face import COMPARISONS, DlibFaceEngine, FaceEmbedding, FaceError, FaceThresholds

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
SKIPPED_FOLDERS = {"multi"}
# Files of the set that are crops of one picture (the set's README: "5_small is tiny;
# 6_partial shows part of the face only"; seen side by side, both are cut from obama/1.jpg).
# Showing one of them to the camera IS replaying the other: never counted as two photos.
SAME_PICTURE = (frozenset({"obama/1.jpg", "obama/5_small.jpg", "obama/6_partial.jpg"}),)
REPLAY_VARIANTS = 6
CARD_VARIANTS = 2
LIVE_FRAME_SIDE = 640


@dataclass(frozen=True)
class Photo:
    person: str
    path: Path
    fold: int

    @property
    def name(self) -> str:
        return f"{self.person}/{self.path.name}"


def labelled_photos(faces_dir: Path, people: Sequence[str] | None = None) -> list[Photo]:
    """Every photo of the set, with its person and fold, in a stable order; ``multi/`` skipped."""
    photos = []
    for folder in sorted(path for path in faces_dir.iterdir() if path.is_dir()):
        if folder.name in SKIPPED_FOLDERS or (people and folder.name not in people):
            continue
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        photos += [Photo(folder.name, path, index % 2) for index, path in enumerate(files)]
    return photos


def _rng(photo: Photo, what: str, variant: int) -> random.Random:
    # Reproducible image degradations, not secrets.
    return random.Random(zlib.crc32(f"{photo.name}:{what}:{photo.fold}:{variant}".encode()))  # noqa: S311


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        decoded.load()
        return decoded


def load_photo(path: Path) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        return ImageOps.exif_transpose(image).convert("RGB")


def live_frame(image: Image.Image, photo: Photo) -> Image.Image:
    """The photo as one frame of a phone's video stream."""
    rng = _rng(photo, "live", 0)
    frame = image.copy()
    frame.thumbnail((LIVE_FRAME_SIDE, LIVE_FRAME_SIDE), Image.Resampling.BILINEAR)
    return _jpeg(frame, rng.randint(70, 85))


def card_portrait(image: Image.Image, face_box: tuple[int, int, int, int], photo: Photo, variant: int) -> Image.Image:
    """The portrait of an ID card holding this face, as a phone photo of the card yields it."""
    rng = _rng(photo, "card", variant)
    left, top, width, height = face_box
    centre_x, centre_y = left + width / 2, top + height / 2
    crop_width = width * rng.uniform(1.7, 2.1)  # head and shoulders, as on the card
    crop_height = crop_width * 1.25
    crop = image.crop(
        (
            round(centre_x - crop_width / 2),
            round(centre_y - crop_height * 0.45),
            round(centre_x + crop_width / 2),
            round(centre_y + crop_height * 0.55),
        )
    )
    card_width = rng.randint(92, 108)
    small = crop.resize((card_width, round(card_width * 1.25)), Image.Resampling.BILINEAR)
    blurred = small.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.1)))
    return _jpeg(blurred, rng.randint(50, 80))


@dataclass
class Embedded:
    """Embeddings of the three kinds of image per photo (None: no usable face, a failure to acquire)."""

    registry: dict[Photo, FaceEmbedding | None]
    live: dict[Photo, FaceEmbedding | None]
    cards: dict[tuple[Photo, int], FaceEmbedding | None]
    failures: list[str]


def _embed_or_none(engine: DlibFaceEngine, image: Image.Image, label: str, failures: list[str]) -> FaceEmbedding | None:
    try:
        return engine.embed(image)
    except FaceError as error:
        failures.append(f"{label}: {error.code}")
        return None


def build_images(
    photos: Sequence[Photo], detector: DlibFaceEngine
) -> tuple[dict[Photo, Image.Image], dict[Photo, Image.Image], dict[tuple[Photo, int], Image.Image]]:
    """Registry photos, live frames and card portraits (made with ``detector``'s face boxes)."""
    registry: dict[Photo, Image.Image] = {}
    live: dict[Photo, Image.Image] = {}
    cards: dict[tuple[Photo, int], Image.Image] = {}
    for photo in photos:
        image = load_photo(photo.path)
        registry[photo] = image
        live[photo] = live_frame(image, photo)
        box = detector.subject(detector.detect_faces(image))
        for variant in range(CARD_VARIANTS):
            cards[(photo, variant)] = card_portrait(image, (box.left, box.top, box.width, box.height), photo, variant)
    return registry, live, cards


def embed_all(
    engine: DlibFaceEngine,
    images: tuple[dict[Photo, Image.Image], dict[Photo, Image.Image], dict[tuple[Photo, int], Image.Image]],
) -> Embedded:
    registry_images, live_images, card_images = images
    failures: list[str] = []
    return Embedded(
        registry={
            p: _embed_or_none(engine, image, f"{p.name} registry", failures) for p, image in registry_images.items()
        },
        live={p: _embed_or_none(engine, image, f"{p.name} live", failures) for p, image in live_images.items()},
        cards={
            key: _embed_or_none(engine, image, f"{key[0].name} card#{key[1]}", failures)
            for key, image in card_images.items()
        },
        failures=failures,
    )


INF = float("inf")


def _distance(engine: DlibFaceEngine, a: FaceEmbedding | None, b: FaceEmbedding | None) -> float:
    """Cosine distance; ``inf`` when either side had no usable face (rejected at every threshold)."""
    return INF if a is None or b is None else engine.compare(a, b)


@dataclass(frozen=True)
class PairDistances:
    genuine: list[float]
    impostor: list[float]


def comparison_pairs(engine: DlibFaceEngine, embedded: Embedded, fold: int | None) -> dict[str, PairDistances]:
    """Genuine and impostor distances per comparison of Gate 3, for probes of ``fold`` (None: all).

    live_vs_registry: live frame of photo a ↔ registry photo b (a ≠ b);
    id_vs_registry: card portrait of a ↔ registry photo b (a ≠ b);
    live_vs_id: card portrait of a ↔ live frame of b (a ≠ b).
    A pair whose image had no usable face counts as a rejected genuine pair
    and is left out of the impostor pairs (nothing was compared).
    """
    result: dict[str, PairDistances] = {name: PairDistances([], []) for name in COMPARISONS}

    def add(name: str, same: bool, distance: float) -> None:
        if same:
            result[name].genuine.append(distance)
        elif distance != INF:
            result[name].impostor.append(distance)

    photos = list(embedded.registry)
    for probe, reference in itertools.permutations(photos, 2):
        if fold is not None and probe.fold != fold:
            continue
        same = probe.person == reference.person
        add("live_vs_registry", same, _distance(engine, embedded.live[probe], embedded.registry[reference]))
        for variant in range(CARD_VARIANTS):
            card = embedded.cards[(probe, variant)]
            add("id_vs_registry", same, _distance(engine, card, embedded.registry[reference]))
            add("live_vs_id", same, _distance(engine, card, embedded.live[reference]))
    return result


@dataclass(frozen=True)
class SetRates:
    genuine_accepted: int
    genuine_sets: int
    impostor_accepted: int
    impostor_sets: int

    @property
    def genuine_acceptance(self) -> float:
        return self.genuine_accepted / self.genuine_sets if self.genuine_sets else 0.0

    @property
    def impostor_acceptance(self) -> float:
        return self.impostor_accepted / self.impostor_sets if self.impostor_sets else 0.0


def three_photo_sets(
    engine: DlibFaceEngine,
    embedded: Embedded,
    decide: Callable[[float, float, float], bool],
    fold: int | None = None,
) -> SetRates:
    """Every (live frame of i, card portrait of k, registry photo of j) with i ≠ j and i ≠ k.

    All three of one person: a genuine set; anything else (an impostor at the
    camera, a forged card, someone else's card, three people) an impostor
    set. ``k`` may be ``j``: the registry's photo is often the card's photo.
    A set belongs to the fold of its live frame's photo. A genuine set with an
    unusable image counts as rejected; an impostor set with one is left out.
    """
    photos = list(embedded.registry)
    genuine_accepted = genuine = impostor_accepted = impostor = 0
    distances: dict[tuple[str, object, object], float] = {}

    def cached(name: str, a_key: object, b_key: object, a: FaceEmbedding | None, b: FaceEmbedding | None) -> float:
        key = (name, a_key, b_key)
        if key not in distances:
            distances[key] = _distance(engine, a, b)
        return distances[key]

    for live_photo in photos:
        if fold is not None and live_photo.fold != fold:
            continue
        live = embedded.live[live_photo]
        for registry_photo in photos:
            if registry_photo == live_photo:
                continue
            live_vs_registry = cached("lr", live_photo, registry_photo, live, embedded.registry[registry_photo])
            for card_photo, variant in embedded.cards:
                if card_photo == live_photo:
                    continue
                card = embedded.cards[(card_photo, variant)]
                live_vs_id = cached("li", live_photo, (card_photo, variant), live, card)
                id_vs_registry = cached(
                    "ir", (card_photo, variant), registry_photo, card, embedded.registry[registry_photo]
                )
                finite = INF not in (live_vs_registry, live_vs_id, id_vs_registry)
                accepted = finite and decide(live_vs_id, live_vs_registry, id_vs_registry)
                if live_photo.person == registry_photo.person == card_photo.person:
                    genuine += 1
                    genuine_accepted += accepted
                elif finite:
                    impostor += 1
                    impostor_accepted += accepted
    return SetRates(genuine_accepted, genuine, impostor_accepted, impostor)


def threshold_rule(thresholds: FaceThresholds) -> Callable[[float, float, float], bool]:
    def rule(live_vs_id: float, live_vs_registry: float, id_vs_registry: float) -> bool:
        return (
            live_vs_id <= thresholds.live_vs_id
            and live_vs_registry <= thresholds.live_vs_registry
            and id_vs_registry <= thresholds.id_vs_registry
        )

    return rule


def distances_summary(values: Sequence[float]) -> str:
    finite = sorted(value for value in values if value != INF)
    if not finite:
        return "none"
    return (
        f"n={len(values)} min {finite[0]:.4f} median {float(np.median(finite)):.4f} max {finite[-1]:.4f}"
        f"{f' (+{len(values) - len(finite)} unusable)' if len(finite) < len(values) else ''}"
    )


def same_picture(a: Photo, b: Photo) -> bool:
    return a == b or any(a.name in group and b.name in group for group in SAME_PICTURE)


def replay_copy(image: Image.Image, photo: Photo, variant: int) -> Image.Image:
    """A known picture shown to the camera, as one video frame: rescaled, tilted, shifted, relit, compressed."""
    rng = _rng(photo, "replay", variant)
    frame = image.copy()
    side = rng.randint(320, 640)
    frame.thumbnail((side, side), Image.Resampling.BILINEAR)
    frame = frame.rotate(
        rng.uniform(-4.0, 4.0),
        resample=Image.Resampling.BILINEAR,
        translate=(rng.randint(-6, 6), rng.randint(-6, 6)),
        fillcolor=(128, 128, 128),
    )
    frame = ImageEnhance.Brightness(frame).enhance(rng.uniform(0.8, 1.2))
    return _jpeg(frame, rng.randint(40, 85))


@dataclass(frozen=True)
class ReplayDistances:
    """What the replay rule (``LIVENESS_REPLAY_MAX_DISTANCE``) must tell apart.

    ``replays``: a known picture (registry photo or card portrait) against a
    video frame of that same picture (``replay_copy``): each should be caught.
    ``distinct``: a registry photo or card portrait against the live frame of
    another picture of the same person: a genuine customer, who must never be
    called a replay. Each entry is (distance, label).
    """

    replays: list[tuple[float, str]]
    distinct: list[tuple[float, str]]
    failures: list[str]


def replay_distances(
    engine: DlibFaceEngine,
    photos: Sequence[Photo],
    embedded: Embedded,
    images: tuple[dict[Photo, Image.Image], dict[Photo, Image.Image], dict[tuple[Photo, int], Image.Image]],
    variants: int = REPLAY_VARIANTS,
) -> ReplayDistances:
    """The distances of ``ReplayDistances``, from ``build_images``' pictures and their embeddings."""
    registry_images, _live_images, card_images = images
    replays: list[tuple[float, str]] = []
    distinct: list[tuple[float, str]] = []
    failures: list[str] = []
    for photo in photos:
        known = [(f"{photo.name} registry", registry_images[photo], embedded.registry[photo])]
        known += [
            (f"{photo.name} card#{variant}", card_images[(photo, variant)], embedded.cards[(photo, variant)])
            for variant in range(CARD_VARIANTS)
        ]
        for label, image, original in known:
            if original is None:
                continue
            for variant in range(variants):
                copy = _embed_or_none(engine, replay_copy(image, photo, variant), f"{label} replay#{variant}", failures)
                if copy is not None:
                    replays.append((engine.compare(original, copy), f"{label} replay#{variant}"))
    for probe, reference in itertools.permutations(photos, 2):
        if probe.person != reference.person or same_picture(probe, reference):
            continue
        live = embedded.live[probe]
        if live is None:
            continue
        registry = embedded.registry[reference]
        if registry is not None:
            distinct.append((engine.compare(live, registry), f"{probe.name} live / {reference.name} registry"))
        for variant in range(CARD_VARIANTS):
            card = embedded.cards[(reference, variant)]
            if card is not None:
                distinct.append((engine.compare(live, card), f"{probe.name} live / {reference.name} card#{variant}"))
    return ReplayDistances(sorted(replays), sorted(distinct), failures)
