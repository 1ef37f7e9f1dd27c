"""Liveness decision time (issue 14 target: decided <= 2 s after the challenge ends).

Feeds a burst like the one Gate 3 captures (8 fps over a two-step challenge,
about 9.5 s: 76 frames of a face-set photo moved by a "hand", 480 px wide as
the peer publishes) through the same code the gate runs: frames are measured
one by one as they arrive (BurstMeasure), so after the last frame only that
frame and the decision remain. Prints the per-frame landmark CPU, the time
from the last frame to the decision, and PASS/MISS against 2 s, with the
load average (the machine is shared: CPU-seconds are the steadier figure).
The face comparison that follows (verify_three) is the engine's and is
measured in bench/face_bench.py.

    python bench/liveness_bench.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import django
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "remotebank.settings.local")
django.setup()

from django.conf import settings  # noqa: E402
from PIL import Image  # noqa: E402

from apps.gates.integrations.liveness import (  # noqa: E402
    BurstMeasure,
    challenge_draw,
    get_landmark_model,
    liveness_decide,
    thresholds_from_settings,
)

TARGET_SECONDS = 2.0


def main() -> None:
    photo = sorted((Path(settings.FACES_DATASET_DIR) / "kit_harington").glob("*.jpg"))[2]
    with Image.open(photo) as source:
        image = source.convert("RGB")
    width = 480
    pixels = np.asarray(image.resize((width, round(image.height * width / image.width / 2) * 2)))
    challenge = challenge_draw(steps=2, window=3.5, first_delay=(1.0, 2.0), gap=(0.3, 1.2))
    fps = int(settings.LIVENESS_CAPTURE_FPS)
    count = int((challenge.seconds + float(settings.LIVENESS_SLACK_SECONDS)) * fps)
    frames = [
        Image.fromarray(np.roll(pixels, (int(5 * np.cos(i / 4)), int(6 * np.sin(i / 3))), axis=(0, 1)))
        for i in range(count)
    ]
    load_started = time.process_time()
    get_landmark_model().points(frames[0])  # model load, once per worker process
    load_cpu = time.process_time() - load_started

    burst = BurstMeasure()
    per_frame = []
    for index, frame in enumerate(frames[:-1]):
        started = time.process_time()
        burst.add(index / fps, frame)
        per_frame.append(time.process_time() - started)
    # The last frame arrives: what is left between the end of the challenge and the decision.
    wall, cpu = time.perf_counter(), time.process_time()
    burst.add((count - 1) / fps, frames[-1])
    result = liveness_decide(burst.samples, challenge, thresholds_from_settings())
    after_wall, after_cpu = time.perf_counter() - wall, time.process_time() - cpu

    per_frame.sort()
    print(f"load average: {os.getloadavg()}")
    print(f"burst: {count} frames at {fps} fps over {challenge.seconds:.1f} s; model load {load_cpu:.2f} CPU-s (once)")
    print(
        f"per frame (landmarks, measured while the burst runs): p50 {statistics.median(per_frame) * 1000:.0f} ms, "
        f"p95 {per_frame[int(len(per_frame) * 0.95)] * 1000:.0f} ms CPU; total {sum(per_frame):.2f} CPU-s "
        f"over {challenge.seconds:.1f} s of challenge"
    )
    print(f"decision (a photo: {result.reasons}) after the last frame: {after_wall:.3f} s wall, {after_cpu:.3f} CPU-s")
    keeps_up = sum(per_frame) / len(per_frame) < 1.0 / fps
    print(f"measuring keeps up with {fps} fps: {'yes' if keeps_up else 'NO'}")
    verdict = "PASS" if after_wall <= TARGET_SECONDS and keeps_up else "MISS"
    print(f"{verdict}: liveness decided {after_wall:.2f} s after the challenge ends (target <= {TARGET_SECONDS:.0f} s)")


if __name__ == "__main__":
    main()
