"""Measure the liveness decision's pass and fail rates over a folder of recorded challenge clips.

Each clip is a video file (``.webm``, ``.mkv``, ``.mp4``, ``.y4m``) with a
manifest beside it, ``<clip>.json``::

    {"live": true,                     # a real person doing the challenge (false: an attack)
     "challenge": {"steps": [{"action": "blink", "at": 1.4, "window": 3.5}, ...]},
     "offset": 0.0}                    # where in the clip the challenge was issued (s)

The recordings of real calls are such clips: the customer's post-processed
video (docs/recordings.md) with the attempt's ``LivenessCheck`` (challenge,
``issued_at``) against the recording's start. The frames are sampled at
LIVENESS_CAPTURE_FPS, measured with the 68-point landmarks and decided with
the current settings (each threshold can be overridden to try another), and
the command prints every clip's measures, then the live clips passed (the
genuine acceptance) and the attack clips passed (must be 0).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from PIL import Image

from apps.gates.integrations.liveness import (
    Challenge,
    Thresholds,
    liveness_decide,
    samples_measure,
    thresholds_from_settings,
)

VIDEO_SUFFIXES = (".webm", ".mkv", ".mp4", ".y4m")


def clip_frames(path: Path, *, fps: float, offset: float) -> list[tuple[float, Image.Image]]:
    """``(seconds after the challenge was issued, frame)`` every 1/fps s of the clip."""
    import av

    frames: list[tuple[float, Image.Image]] = []
    next_at = 0.0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if frame.time is None or frame.time < next_at:
                continue
            frames.append((float(frame.time) - offset, frame.to_image().convert("RGB")))
            next_at = float(frame.time) + 1.0 / fps
    return frames


class Command(BaseCommand):
    help = "Pass and fail rates of the liveness decision over recorded challenge clips (a folder with manifests)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("folder", type=Path)
        parser.add_argument("--fps", type=float, default=None, help="Frames sampled per second (LIVENESS_CAPTURE_FPS).")
        for name in Thresholds.__dataclass_fields__:
            parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=None, dest=name)
        parser.add_argument("--json", action="store_true", help="One JSON line per clip, then the totals.")

    def handle(self, *args: Any, **options: Any) -> None:
        folder: Path = options["folder"]
        if not folder.is_dir():
            raise CommandError(f"{folder} is not a folder")
        base = thresholds_from_settings()
        limits = Thresholds(
            **{
                name: options[name] if options[name] is not None else getattr(base, name)
                for name in Thresholds.__dataclass_fields__
            }
        )
        fps = float(options["fps"] or settings.LIVENESS_CAPTURE_FPS)
        clips = sorted(path for path in folder.iterdir() if path.suffix.lower() in VIDEO_SUFFIXES)
        totals = {"live": [0, 0], "attack": [0, 0]}
        cpu = 0.0
        for clip in clips:
            manifest_path = clip.with_suffix(".json")
            if not manifest_path.is_file():
                self.stderr.write(f"{clip.name}: no manifest {manifest_path.name}, skipped")
                continue
            manifest = json.loads(manifest_path.read_text())
            frames = clip_frames(clip, fps=fps, offset=float(manifest.get("offset", 0.0)))
            started = time.process_time()
            result = liveness_decide(samples_measure(frames), Challenge.from_dict(manifest["challenge"]), limits)
            cpu += time.process_time() - started
            kind = "live" if manifest.get("live") else "attack"
            totals[kind][0] += int(result.passed)
            totals[kind][1] += 1
            line = {"clip": clip.name, "kind": kind, "passed": result.passed, "reasons": result.reasons}
            line.update(result.measures)
            self.stdout.write(
                json.dumps(line)
                if options["json"]
                else f"{clip.name} [{kind}] passed={result.passed} {result.reasons} {result.measures}"
            )
        live_passed, live_total = totals["live"]
        attack_passed, attack_total = totals["attack"]
        summary = {
            "thresholds": limits.__dict__,
            "fps": fps,
            "live_clips": live_total,
            "genuine_acceptance": round(live_passed / live_total, 4) if live_total else None,
            "attack_clips": attack_total,
            "attack_acceptance": round(attack_passed / attack_total, 4) if attack_total else None,
            "landmark_cpu_seconds": round(cpu, 2),
        }
        if options["json"]:
            self.stdout.write(json.dumps(summary))
            return
        self.stdout.write(f"thresholds: {limits}")
        if live_total:
            self.stdout.write(
                f"live clips passed: {live_passed}/{live_total} (genuine acceptance {summary['genuine_acceptance']:.1%})"
            )
        else:
            self.stdout.write("no live clips: genuine acceptance not measured")
        if attack_total:
            self.stdout.write(f"attack clips passed: {attack_passed}/{attack_total} (must be 0)")
        self.stdout.write(f"landmark CPU: {cpu:.2f} s")
