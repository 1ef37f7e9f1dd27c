"""Benchmark of Gate 3's face decision: old pipeline (deepface's crop) against the new one (dlib's aligned chip).

Usage: .venv/bin/python bench/face_bench.py [--rounds 30] [--old-rounds 5] [--skip-old]

From every photo of the shared face set (REMOTEBANK_FACES_DIR, default
../shared/datasets/faces) it makes a registry photo, a live video frame and
two ID-card portraits of about 100×125 px (blur, JPEG 50–80), as
apps/gates/face_calibration.py describes, and for each pipeline prints:

- genuine acceptance over every three-photo set of one person (live frame of
  photo i, card portrait of photo k, registry photo j; i ≠ j, i ≠ k);
- impostor acceptance over every set mixing people (impostor at the camera,
  forged card, someone else's card, three people);
- both again on the held-out fold only (the thresholds were chosen by
  `manage.py face_calibrate` on the other fold);
- CPU-seconds of one embed, and of one verify (three comparisons): for the new
  pipeline with the registry photo and ID portrait embeddings cached (as
  Gate 3 runs: only the live frame is embedded) and without caches.

CPU-seconds are time.process_time() of this process (all its threads), so a
loaded machine inflates them less than wall time; the load average is printed.
Targets (issue #14): genuine ≥ 95 %, impostors 0, verify ≤ 1 CPU-s p50 warm.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "remotebank.settings.local")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from apps.gates.face_calibration import (  # noqa: E402
    build_images,
    embed_all,
    labelled_photos,
    three_photo_sets,
    threshold_rule,
)
from apps.gates.integrations.face import (  # noqa: E402
    PIPELINE_CHIP,
    PIPELINE_DEEPFACE_CROP,
    DlibFaceEngine,
    FaceEmbedding,
    face_thresholds_from_settings,
)

TARGET_GENUINE = 0.95
TARGET_IMPOSTOR_ACCEPTED = 0
TARGET_VERIFY_CPU_SECONDS = 1.0


def cpu(function, *args):  # type: ignore[no-untyped-def]
    started = time.process_time()
    result = function(*args)
    return time.process_time() - started, result


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--old-rounds", type=int, default=5)
    parser.add_argument("--skip-old", action="store_true", help="Only the new pipeline (the old one takes ~2 min).")
    parser.add_argument("--faces-dir", type=Path, default=Path(settings.FACES_DATASET_DIR))
    args = parser.parse_args()

    print(f"load average at start: {os.getloadavg()}")
    home = Path(settings.DEEPFACE_HOME)
    new = DlibFaceEngine(
        deepface_home=home,
        threshold=float(settings.FACE_THRESHOLD_LIVE_VS_REGISTRY),
        thresholds=face_thresholds_from_settings(),
        secondary_face_ratio=float(settings.FACE_SECONDARY_FACE_RATIO),
        detect_max_side=int(settings.FACE_DETECT_MAX_SIDE),
    )
    engines = [("new: dlib aligned chip", new)]
    if not args.skip_old:
        old_threshold = float(settings.FACE_MATCH_THRESHOLD)
        old = DlibFaceEngine(deepface_home=home, threshold=old_threshold, pipeline=PIPELINE_DEEPFACE_CROP)
        engines.insert(0, ("old: deepface crop", old))
    for _, engine in engines:
        engine.warm_up()

    photos = labelled_photos(args.faces_dir)
    images = build_images(photos, new)
    registry_images, live_images, card_images = images
    print(
        f"{len(photos)} photos of {len({p.person for p in photos})} people -> {len(live_images)} live frames, "
        f"{len(card_images)} card portraits (sizes {sorted({image.size for image in card_images.values()})[:3]}...)"
    )

    results = {}
    for label, engine in engines:
        all_images = list(registry_images.values()) + list(live_images.values()) + list(card_images.values())
        started = time.process_time()
        embedded = embed_all(engine, images)
        embed_cpu = (time.process_time() - started) / len(all_images)
        rule = threshold_rule(engine.thresholds)
        every = three_photo_sets(engine, embedded, rule)
        held_out = three_photo_sets(engine, embedded, rule, fold=1)
        print(f"\n== {label} (thresholds {engine.thresholds.as_dict()})")
        if embedded.failures:
            print(f"failures to acquire ({len(embedded.failures)}): {', '.join(embedded.failures)}")
        print(f"embed: {embed_cpu:.3f} CPU-s per image (mean over {len(all_images)} images)")
        for name, rates in (("all sets", every), ("held-out fold", held_out)):
            print(
                f"{name}: genuine accepted {rates.genuine_accepted}/{rates.genuine_sets} "
                f"({rates.genuine_acceptance:.2%}), impostor accepted {rates.impostor_accepted}/{rates.impostor_sets} "
                f"({rates.impostor_acceptance:.2%})"
            )
        genuine_triples = [
            (live_images[i], card_images[(k, 0)], registry_images[j])
            for i in photos
            for j in photos
            for k in photos
            if i.person == j.person == k.person and i != j and k not in (i, j)
        ] or [(live_images[photos[0]], card_images[(photos[1], 0)], registry_images[photos[1]])]
        rounds = args.rounds if engine.pipeline == PIPELINE_CHIP else args.old_rounds
        cold: list[float] = []
        warm: list[float] = []
        for index in range(rounds):
            live, card, registry = genuine_triples[index % len(genuine_triples)]
            seconds, _ = cpu(engine.verify_three, live, card, registry)
            cold.append(seconds)
            if engine.pipeline == PIPELINE_CHIP:
                # Gate 3 with its caches warm: the card portrait's and the registry photo's embeddings
                # come from FaceEmbeddingCacheEntry rows (one indexed query each, not timed here).
                cached_card: FaceEmbedding = engine.embed(card)
                cached_registry: FaceEmbedding = engine.embed(registry)
                seconds, _ = cpu(engine.verify_three, live, cached_card, cached_registry)
                warm.append(seconds)
        print(
            f"verify, three images embedded: p50 {statistics.median(cold):.3f} CPU-s, max {max(cold):.3f} (x{rounds})"
        )
        if warm:
            print(
                f"verify, caches warm (live frame embedded): p50 {statistics.median(warm):.3f} CPU-s, max {max(warm):.3f}"
            )
        results[label] = (every, held_out, statistics.median(warm or cold))

    print(f"\npeak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print(f"load average at end: {os.getloadavg()}")
    every, held_out, verify_p50 = results["new: dlib aligned chip"]
    print("\nTargets, new pipeline (issue #14):")
    print(
        f"{verdict(every.genuine_acceptance >= TARGET_GENUINE)}: genuine acceptance {every.genuine_acceptance:.2%} "
        f"on {every.genuine_sets} three-photo sets with a ~100x125 px card portrait (target >= {TARGET_GENUINE:.0%}); "
        f"held-out fold {held_out.genuine_acceptance:.2%}"
    )
    print(
        f"{verdict(every.impostor_accepted <= TARGET_IMPOSTOR_ACCEPTED)}: impostor acceptance "
        f"{every.impostor_accepted}/{every.impostor_sets} impostor sets (target 0); "
        f"held-out fold {held_out.impostor_accepted}/{held_out.impostor_sets}"
    )
    print(
        f"{verdict(verify_p50 <= TARGET_VERIFY_CPU_SECONDS)}: verify p50 {verify_p50:.3f} CPU-s with caches warm "
        f"(target <= {TARGET_VERIFY_CPU_SECONDS} CPU-s)"
    )
    if "old: deepface crop" in results:
        old_every, _old_held_out, old_p50 = results["old: deepface crop"]
        print(
            f"old pipeline for comparison: genuine {old_every.genuine_acceptance:.2%}, impostors "
            f"{old_every.impostor_accepted}/{old_every.impostor_sets}, verify p50 {old_p50:.3f} CPU-s (no cache)"
        )


if __name__ == "__main__":
    main()
