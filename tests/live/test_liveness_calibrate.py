"""``manage.py liveness_calibrate``: pass and fail rates over a folder of challenge clips with manifests."""

from __future__ import annotations

import io
import json
from pathlib import Path

import av
import numpy as np
import pytest
from django.core.management import call_command
from PIL import Image

from tests.gates.conftest import KIT, person_photos

CHALLENGE = {"steps": [{"action": "blink", "at": 0.5, "window": 2.0}]}


def _clip(path: Path, photo: Path, *, shaken: bool, seconds: float = 3.0, fps: int = 15) -> Path:
    """A y4m clip of the photo: still, or held by a moving hand (drifting a few pixels)."""
    with Image.open(photo) as source:
        image = source.convert("RGB")
    height = round(image.height * 320 / image.width / 2) * 2
    pixels = np.asarray(image.resize((320, height)))
    with av.open(str(path), "w", format="yuv4mpegpipe") as container:
        stream = container.add_stream("rawvideo", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 320, height, "yuv420p"
        for index in range(int(seconds * fps)):
            frame_pixels = pixels
            if shaken:
                frame_pixels = np.roll(pixels, (int(5 * np.cos(index / 4)), int(6 * np.sin(index / 3))), axis=(0, 1))
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_pixels), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    path.with_suffix(".json").write_text(json.dumps({"live": False, "challenge": CHALLENGE, "offset": 0.0}))
    return path


@pytest.mark.django_db
def test_attack_clips_are_measured_and_none_passes(tmp_path: Path) -> None:
    photos = person_photos(KIT)
    _clip(tmp_path / "still.y4m", photos[0], shaken=False)
    _clip(tmp_path / "shaken.y4m", photos[2], shaken=True)
    (tmp_path / "no-manifest.y4m").write_bytes((tmp_path / "still.y4m").read_bytes())
    out, err = io.StringIO(), io.StringIO()

    call_command("liveness_calibrate", str(tmp_path), "--json", stdout=out, stderr=err)

    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    clips, summary = {line["clip"]: line for line in lines[:-1]}, lines[-1]
    assert set(clips) == {"still.y4m", "shaken.y4m"} and "no-manifest.y4m" in err.getvalue()
    assert summary["attack_clips"] == 2 and summary["attack_acceptance"] == 0.0
    assert summary["live_clips"] == 0 and summary["genuine_acceptance"] is None
    assert clips["still.y4m"]["reasons"][0] == "static_feed" and clips["still.y4m"]["sustained_change"] < 1.5
    assert "static_feed" not in clips["shaken.y4m"]["reasons"] and clips["shaken.y4m"]["face_frames"] > 20
    # A threshold can be tried from the command line: with no static check, the still clip fails on the challenge.
    out = io.StringIO()
    call_command("liveness_calibrate", str(tmp_path), "--json", "--static-max-difference", "0", stdout=out, stderr=err)
    still = next(json.loads(line) for line in out.getvalue().splitlines() if '"still.y4m"' in line)
    assert still["reasons"] == ["challenge_not_met"]
