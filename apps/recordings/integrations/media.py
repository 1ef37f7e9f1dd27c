"""janus-pp-rec and ffmpeg, as small typed functions (no models, no Django).

Everything runs as a subprocess with an argument list (never a shell) and a
time limit; a failure raises ``MediaToolError`` naming the tool, the file and
the tail of the tool's own message, so a failed post-processing explains
itself on the recording's page.

Alignment (docs/recordings.md): each Janus recording's header carries ``u``,
the wall-clock time in µs of the first packet written. Audio and video of one
participant, and different participants, start at different moments; the
difference of their ``u`` is the offset applied with ``-itsoffset`` (per
participant) or ``tpad``/``adelay`` (in the composite).

The pipeline of one call (docs/recordings.md, "Post-processing") is four
steps, each returning frozen values and writing only into the caller's
working folder: ``original_read`` (header and SHA-256 of a .mjr),
``original_convert`` (to .opus / .webm), ``feed_mux`` (one feed's tracks
probed, muxed and hashed) and ``call_compose`` (the evidence file). The
service (``apps.recordings.services.processing``) calls them in turn, stores
each output as soon as it exists, reports progress between the steps and
writes the rows and audit records.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from apps.common.hashing import sha256_of_file

CJK_FONT = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
# Each participant's tile in the composite evidence file.
TILE_WIDTH, TILE_HEIGHT, COMPOSITE_FPS = 480, 360, 15

# The composite's video encoder settings, by name (issue 18 item 4: bench/recording_bench.py
# measures them; docs/operations.md has the figures and the reason for the default).
# "vp8": libvpx in realtime mode; "h264*": libx264 (yuv420p, faststart, for MP4) at a preset.


def _x264(preset: str) -> list[str]:
    return ["-c:v", "libx264", "-preset", preset, "-crf", "26", "-pix_fmt", "yuv420p", "-threads", "2",
            "-movflags", "+faststart"]  # fmt: skip


COMPOSITE_CODECS: dict[str, tuple[str, list[str]]] = {
    "vp8": (".webm", ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "1M", "-threads", "2"]),
    "h264": (".mp4", _x264("ultrafast")),
    "h264-veryfast": (".mp4", _x264("veryfast")),
}
# H.264 because Debian's Chromium and the phone browsers decode it (readyState
# 4, frames decoded; Playwright; Opus audio in MP4 plays there too) and because
# it encodes cheaper than VP8 realtime. ultrafast because the target is 5 s of
# processing per minute of call: on a quiet 2-core machine (2026-12-03) the
# two-party composite took 3.5 s per 30 s of call at veryfast and 1.7 s at
# ultrafast, whose files are 1.8x larger at the same CRF (about 0.7 Mbit/s for
# the 960x360, 15 fps grid; docs/operations.md). A bank short of storage
# rather than CPU selects "h264-veryfast".
COMPOSITE_CODEC = "h264"


class MediaToolError(Exception):
    """A media tool failed or is missing; the message is meant for people."""


@dataclass(frozen=True)
class MjrHeader:
    kind: str  # "audio" or "video"
    codec: str  # "opus", "vp8", ...
    created_us: int  # "s": when Janus created the file
    first_write_us: int  # "u": when the first packet was written


@dataclass(frozen=True)
class CompositeInput:
    """One participant's tracks for the composite, with start offsets from the call's first packet."""

    label: str
    video: Path | None
    video_offset: float
    audio: Path | None
    audio_offset: float


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MediaToolError(f"`{name}` is not installed on this worker.")
    return path


def _run(arguments: list[str], *, what: str, timeout: float) -> str:
    try:
        # Argument list of our own (tool path from shutil.which, our file paths), never a shell.
        completed = subprocess.run(arguments, capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603
    except subprocess.TimeoutExpired as exc:
        raise MediaToolError(f"{what}: timed out after {timeout:.0f} s") from exc
    if completed.returncode != 0:
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
        raise MediaToolError(f"{what}: exit {completed.returncode}: {' | '.join(tail)}")
    return completed.stdout


def mjr_header(path: Path) -> MjrHeader:
    """The recording's JSON header (``janus-pp-rec -j``)."""
    output = _run([_tool("janus-pp-rec"), "-j", str(path)], what=f"janus-pp-rec -j {path.name}", timeout=30)
    try:
        header = json.loads(output.strip().splitlines()[-1])
        kind = {"a": "audio", "v": "video"}[header["t"]]
        return MjrHeader(kind=kind, codec=header["c"], created_us=int(header["s"]), first_write_us=int(header["u"]))
    except (IndexError, KeyError, TypeError, ValueError) as exc:
        raise MediaToolError(f"janus-pp-rec -j {path.name}: not a Janus recording header: {output[:200]!r}") from exc


def mjr_convert(source: Path, target: Path) -> None:
    """Convert one .mjr into a playable file (.opus for audio, .webm for VP8 video)."""
    _run([_tool("janus-pp-rec"), str(source), str(target)], what=f"janus-pp-rec {source.name}", timeout=600)
    if not target.exists() or target.stat().st_size == 0:
        raise MediaToolError(f"janus-pp-rec {source.name}: produced no media (empty or damaged recording)")


def media_duration(path: Path) -> float:
    """Container duration in seconds (ffprobe)."""
    output = _run(
        [_tool("ffprobe"), "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        what=f"ffprobe {path.name}",
        timeout=60,
    )
    try:
        return float(output.strip())
    except ValueError as exc:
        raise MediaToolError(f"ffprobe {path.name}: no duration ({output.strip()!r})") from exc


def _ffmpeg() -> list[str]:
    # -nostdin: never wait on a terminal; -y: a retried attempt overwrites its own temp files.
    return [_tool("ffmpeg"), "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]


def mux_participant(
    *, audio: Path | None, audio_offset: float, video: Path | None, video_offset: float, target: Path
) -> None:
    """One participant's audio and video in one .mkv, each shifted by its offset (seconds), streams copied."""
    arguments = _ffmpeg()
    maps: list[str] = []
    for index, (path, offset) in enumerate(((video, video_offset), (audio, audio_offset))):
        if path is None:
            continue
        arguments += ["-itsoffset", f"{offset:.6f}", "-i", str(path)]
        maps += ["-map", f"{len(maps) // 2}:{'v' if index == 0 else 'a'}:0"]
    if not maps:
        raise MediaToolError("nothing to mux: no audio and no video")
    arguments += [*maps, "-c", "copy", str(target)]
    _run(arguments, what=f"ffmpeg mux {target.name}", timeout=600)


def compose(
    *,
    inputs: list[CompositeInput],
    duration: float,
    caption: str,
    epoch_seconds: float,
    target: Path,
    workdir: Path,
    font: Path = CJK_FONT,
    codec: str = COMPOSITE_CODEC,
) -> None:
    """The evidence file: participants side by side, all audio mixed, caption and wall-clock time burned in.

    Every tile starts at the call's first packet: a participant who started
    later is preceded by black (``tpad``) and silence (``adelay``), so the
    picture and the sound of everyone stay in step with the burned-in time.
    """
    if not inputs:
        raise MediaToolError("nothing to compose: no participant has media")
    if not font.exists():
        raise MediaToolError(f"the caption font {font} is missing (Debian package fonts-noto-cjk)")
    arguments = _ffmpeg()
    filters: list[str] = []
    video_labels: list[str] = []
    audio_labels: list[str] = []
    index = 0
    for number, item in enumerate(inputs):
        if item.video is not None:
            arguments += ["-i", str(item.video)]
            filters.append(
                # fps first: a 30 fps camera's frames are scaled at the composite's
                # 15 per second, not 30 (a fifth less filter time).
                f"[{index}:v]setpts=PTS-STARTPTS,fps={COMPOSITE_FPS},"
                f"scale={TILE_WIDTH}:{TILE_HEIGHT}:force_original_aspect_ratio=decrease,"
                f"pad={TILE_WIDTH}:{TILE_HEIGHT}:(ow-iw)/2:(oh-ih)/2,setsar=1,"
                f"tpad=start_duration={item.video_offset:.3f}:start_mode=add:color=black,"
                f"tpad=stop_duration={duration:.3f}:stop_mode=clone[v{number}]"
            )
            index += 1
        else:
            filters.append(
                f"color=c=black:s={TILE_WIDTH}x{TILE_HEIGHT}:r={COMPOSITE_FPS}:d={duration:.3f},setsar=1[v{number}]"
            )
        video_labels.append(f"[v{number}]")
        if item.audio is not None:
            arguments += ["-i", str(item.audio)]
            delay_ms = round(item.audio_offset * 1000)
            filters.append(
                f"[{index}:a]asetpts=PTS-STARTPTS,aresample=48000:async=1,adelay={delay_ms}:all=1[a{number}]"
            )
            audio_labels.append(f"[a{number}]")
            index += 1
    if len(video_labels) > 1:
        filters.append(f"{''.join(video_labels)}hstack=inputs={len(video_labels)}[grid]")
    else:
        filters.append(f"{video_labels[0]}null[grid]")
    # Caption and clock through text files: no filtergraph escaping of the
    # caption (any characters, Chinese included); the clock uses drawtext's
    # pts expansion from the call's first packet (UTC).
    caption_file = workdir / "caption.txt"
    caption_file.write_text(caption, encoding="utf-8")
    clock_file = workdir / "clock.txt"
    clock_file.write_text(f"%{{pts:gmtime:{epoch_seconds:.3f}:%Y-%m-%d %H\\:%M\\:%S}} UTC", encoding="utf-8")
    text_style = f"fontfile={font}:fontsize=20:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=6"
    filters.append(
        f"[grid]drawtext={text_style}:textfile={caption_file}:x=10:y=10,"
        f"drawtext={text_style}:textfile={clock_file}:x=10:y=h-th-16[video]"
    )
    maps = ["-map", "[video]"]
    if audio_labels:
        # The sound lasts as long as the picture (silence after the last
        # word): a file whose audio track ends before its video has two
        # durations, and a browser shows the shorter one (Chromium did, 9.9 s
        # for a 14.2 s file) while the record says the longer.
        mixed = (
            f"{''.join(audio_labels)}amix=inputs={len(audio_labels)}:duration=longest:normalize=0"
            if len(audio_labels) > 1
            else f"{audio_labels[0]}anull"
        )
        filters.append(f"{mixed},apad=whole_dur={duration:.3f}[audio]")
        maps += ["-map", "[audio]"]
    script = workdir / "composite.filter"
    script.write_text(";\n".join(filters), encoding="utf-8")
    arguments += ["-filter_complex_script", str(script), *maps, "-t", f"{duration:.3f}"]
    arguments += COMPOSITE_CODECS[codec][1]
    if audio_labels:
        # Mono: every participant's microphone is (WebRTC sends mono Opus), and
        # the mix encodes in 60 % of the CPU of stereo.
        arguments += ["-ac", "1", "-c:a", "libopus", "-b:a", "48k"]
    arguments += [str(target)]
    _run(arguments, what=f"ffmpeg composite {target.name}", timeout=3600)


# --- The pipeline of one call ------------------------------------------------------------


@dataclass(frozen=True)
class MediaFile:
    """A local file read or made by the pipeline: its SHA-256, size and (media outputs) duration."""

    path: Path
    sha256: str
    size_bytes: int
    duration_seconds: float | None = None


def _media_file(path: Path, *, duration_seconds: float | None = None) -> MediaFile:
    sha256, size = sha256_of_file(path)
    return MediaFile(path=path, sha256=sha256, size_bytes=size, duration_seconds=duration_seconds)


@dataclass(frozen=True)
class Original:
    """A Janus recording as written (hashed, never changed) and what its header says."""

    file: MediaFile
    kind: str  # "audio" or "video"
    first_write_us: int


@dataclass(frozen=True)
class Track:
    """One original converted to a playable file (.opus or .webm)."""

    path: Path
    kind: str  # "audio" or "video"
    first_write_us: int


@dataclass(frozen=True)
class FeedMedia:
    """One feed's outputs: its converted tracks (probed and hashed) and their mux, plus its tile of the composite."""

    audio: MediaFile | None
    video: MediaFile | None
    muxed: MediaFile
    composite_input: CompositeInput
    ends_at_seconds: float  # when its last track ends, counted from the call's first packet


def original_read(path: Path) -> Original:
    """The header and SHA-256 of one Janus recording."""
    header = mjr_header(path)
    return Original(file=_media_file(path), kind=header.kind, first_write_us=header.first_write_us)


def original_convert(original: Original, *, name: str, workdir: Path) -> Track:
    """Convert one original into ``workdir`` as ``<name>-<kind>.opus`` (audio) or ``.webm`` (video)."""
    target = workdir / f"{name}-{original.kind}.{'opus' if original.kind == 'audio' else 'webm'}"
    mjr_convert(original.file.path, target)
    return Track(path=target, kind=original.kind, first_write_us=original.first_write_us)


def feed_mux(*, tracks: Mapping[str, Track], name: str, label: str, call_start_us: int, workdir: Path) -> FeedMedia:
    """Probe one feed's tracks, mux them (in step) into ``<name>-<label>.mkv``, hash all three.

    Each track is shifted by its first write minus the feed's earliest one
    (``-itsoffset``); the composite tile is shifted from the call's first
    packet (``call_start_us``).
    """
    feed_start_us = min(track.first_write_us for track in tracks.values())
    audio = tracks.get("audio")
    video = tracks.get("video")
    audio_first = audio.first_write_us if audio is not None else feed_start_us
    video_first = video.first_write_us if video is not None else feed_start_us
    seconds: dict[str, float] = {}
    ends_at = 0.0
    for track in (audio, video):
        if track is not None:
            seconds[track.kind] = media_duration(track.path)
            ends_at = max(ends_at, (track.first_write_us - call_start_us) / 1e6 + seconds[track.kind])
    muxed = workdir / f"{name}-{label}.mkv"
    mux_participant(
        audio=audio.path if audio is not None else None,
        audio_offset=(audio_first - feed_start_us) / 1e6,
        video=video.path if video is not None else None,
        video_offset=(video_first - feed_start_us) / 1e6,
        target=muxed,
    )
    muxed_seconds = media_duration(muxed)
    return FeedMedia(
        audio=_media_file(audio.path, duration_seconds=seconds["audio"]) if audio is not None else None,
        video=_media_file(video.path, duration_seconds=seconds["video"]) if video is not None else None,
        muxed=_media_file(muxed, duration_seconds=muxed_seconds),
        composite_input=CompositeInput(
            label=label,
            video=video.path if video is not None else None,
            video_offset=(video_first - call_start_us) / 1e6,
            audio=audio.path if audio is not None else None,
            audio_offset=(audio_first - call_start_us) / 1e6,
        ),
        ends_at_seconds=ends_at,
    )


def call_duration(feeds: Sequence[FeedMedia]) -> float:
    """From the call's first packet to the end of its last track, in seconds."""
    return max([0.0, *(feed.ends_at_seconds for feed in feeds)])


def call_compose(
    *,
    feeds: Sequence[FeedMedia],
    duration: float,
    caption: str,
    call_start_us: int,
    target: Path,
    workdir: Path,
    codec: str = COMPOSITE_CODEC,
) -> MediaFile:
    """The evidence file of the call (``compose``, tiles in the order of ``feeds``), probed and hashed."""
    compose(
        inputs=[feed.composite_input for feed in feeds],
        duration=duration,
        caption=caption,
        epoch_seconds=call_start_us / 1e6,
        target=target,
        workdir=workdir,
        codec=codec,
    )
    return _media_file(target, duration_seconds=media_duration(target))
