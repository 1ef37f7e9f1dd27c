"""Benchmark of Gate 3's face verification: warm latency, memory, FAR/FRR.

Usage: .venv/bin/python bench/face_bench.py [--rounds 30] [--threshold 0.07]

Loads the real engine (deepface + Dlib, weights from `manage.py
face_weights_install` in $REMOTEBANK_DEEPFACE_HOME or var/deepface), warms it,
then times ``verify_three`` (three photos: detect + embed each, three cosine
distances) over same-person triples of the shared face set, rotating through
obama, alex_lacamoire and kit_harington. Prints p50/p95/max of verify_three
and of one embed, peak RSS, and FAR/FRR over every labelled pair at the
threshold (the figures of docs/face-verification.md).
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import resource
import statistics
import sys
import time
from pathlib import Path

# Run as a script from anywhere: make the repository importable.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from apps.gates.integrations.face import DlibFaceEngine  # noqa: E402
from apps.gates.management.commands.face_calibrate import dataset_photos, error_rates  # noqa: E402
from remotebank.settings import verification as verification_settings  # noqa: E402

TARGET_P95_SECONDS = 3.0  # one verify_three = three photos; the agent waits for it


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


def load(path: Path) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threshold", type=float, default=verification_settings.FACE_MATCH_THRESHOLD)
    parser.add_argument(
        "--faces-dir",
        type=Path,
        default=Path(os.environ.get("REMOTEBANK_FACES_DIR", ROOT.parent / "shared/datasets/faces")),
    )
    args = parser.parse_args()

    engine = DlibFaceEngine(deepface_home=verification_settings.DEEPFACE_HOME, threshold=args.threshold)
    started = time.perf_counter()
    engine.warm_up()
    print(f"model load: {time.perf_counter() - started:.2f} s")

    triples = [
        [load(args.faces_dir / person / name) for name in names]
        for person, names in (
            ("obama", ("2.jpg", "3.jpg", "1.jpg")),
            ("alex_lacamoire", ("3.jpg", "1.jpg", "2.png")),
            ("kit_harington", ("2.jpg", "3.jpg", "1.jpg")),
        )
    ]
    engine.verify_three(*triples[0])  # first call also warms dlib's buffers

    verify_seconds: list[float] = []
    embed_seconds: list[float] = []
    for round_index in range(args.rounds):
        live, id_portrait, registry = triples[round_index % len(triples)]
        started = time.perf_counter()
        engine.verify_three(live, id_portrait, registry)
        verify_seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        engine.embed(live)
        embed_seconds.append(time.perf_counter() - started)

    print(
        f"verify_three x{args.rounds} (warm): p50 {statistics.median(verify_seconds):.3f} s, "
        f"p95 {percentile(verify_seconds, 0.95):.3f} s, max {max(verify_seconds):.3f} s"
    )
    print(
        f"embed (one photo, warm): p50 {statistics.median(embed_seconds):.3f} s, "
        f"p95 {percentile(embed_seconds, 0.95):.3f} s"
    )
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")

    photos = dataset_photos(args.faces_dir)
    embeddings = {path: engine.embed(load(path)) for _, path in photos}
    genuine: list[float] = []
    impostor: list[float] = []
    for (person_a, path_a), (person_b, path_b) in itertools.combinations(photos, 2):
        (genuine if person_a == person_b else impostor).append(engine.compare(embeddings[path_a], embeddings[path_b]))
    rates = error_rates(genuine=genuine, impostor=impostor, threshold=args.threshold)
    print(
        f"threshold {args.threshold}: FAR {rates.far:.2%} ({rates.false_accepts}/{rates.impostor_pairs}), "
        f"FRR {rates.frr:.2%} ({rates.false_rejects}/{rates.genuine_pairs}) over {len(photos)} photos"
    )
    p95 = percentile(verify_seconds, 0.95)
    print(
        f"{'PASS' if p95 <= TARGET_P95_SECONDS else 'MISS'}: verify_three p95 {p95:.3f} s (target ≤ {TARGET_P95_SECONDS} s)"
    )


if __name__ == "__main__":
    main()
