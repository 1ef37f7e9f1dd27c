"""The evidence file's streams, made by ffmpeg from real encoded tracks (no Janus needed).

A participant's sound may stop before the call ends (they went quiet, their
microphone track ended, their recording's audio is shorter): the composite's
audio track must still last as long as its picture, or the file has two
durations and a browser shows the shorter one (seen in the browser
end-to-end test, 2026-12-03: 9.9 s played, 14.2 s on record).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from apps.recordings.integrations.media import CompositeInput, compose
from tests.recordings.conftest import require_tool
from tests.recordings.test_post_processing import _stream_times


def _encode(tmp_path: Path, name: str, source: str, seconds: float, codec: list[str]) -> Path:
    target = tmp_path / name
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"{source}:duration={seconds}", *codec, str(target)],
        check=True,
    )
    return target


def test_the_evidence_files_sound_lasts_as_long_as_its_picture_when_a_participants_audio_ends_early(
    tmp_path: Path,
) -> None:
    require_tool("ffmpeg")
    video = _encode(tmp_path, "v.webm", "testsrc=size=320x240:rate=15", 6, ["-c:v", "libvpx", "-b:v", "300k"])
    short_audio = _encode(tmp_path, "a.opus", "sine=frequency=440:sample_rate=48000", 2.5, ["-c:a", "libopus"])
    late_video = _encode(tmp_path, "v2.webm", "testsrc2=size=320x240:rate=15", 3, ["-c:v", "libvpx", "-b:v", "300k"])
    target = tmp_path / "call.mp4"
    compose(
        inputs=[
            CompositeInput(label="customer", video=video, video_offset=0.0, audio=short_audio, audio_offset=0.5),
            CompositeInput(label="agent", video=late_video, video_offset=2.0, audio=None, audio_offset=0.0),
        ],
        duration=6.0,
        caption="测试 test",
        epoch_seconds=1_796_000_000.0,
        target=target,
        workdir=tmp_path,
    )
    times = _stream_times(target.read_bytes(), ".mp4", tmp_path)
    assert abs(times["video"][1] - 6.0) < 0.15, times
    # The sound (0.5 s of silence, 2.5 s of tone) is padded with silence to the end of the picture.
    assert abs(times["audio"][1] - times["video"][1]) < 0.1, times
    assert abs(times["audio"][0] - times["video"][0]) < 0.1, times
