"""The liveness measures and decision on synthetic 68-point landmark sequences (issue 14, item 2).

A face is drawn as dlib's 68 points: jaw on an arc, eyes as six-point
ellipses whose height is the openness, the nose tip moved sideways by the
head's yaw. Sequences: a blink, a turn to either side, and nothing (a
frozen face, or one that only drifts a little).
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from apps.gates.integrations.liveness import (
    Challenge,
    Sample,
    Step,
    Thresholds,
    best_frame_index,
    challenge_draw,
    eye_aspect_ratio,
    face_ear,
    head_yaw,
    liveness_decide,
    open_eye_ear,
)

LIMITS = Thresholds(
    blink_closed_ear=0.17,
    blink_drop_ratio=0.65,
    turn_yaw=0.35,
    static_max_difference=1.5,
    min_face_ratio=0.6,
    slack_seconds=1.0,
)


def face(*, openness: float = 0.3, yaw: float = 0.0, left_openness: float | None = None) -> NDArray[np.float64]:
    """68 points of a face 200 px wide; ``openness`` = eye height / width; ``yaw`` -1..1 (customer's left > 0)."""
    points = np.zeros((68, 2))
    for i in range(17):  # jaw, from the image's left (customer's right) to the right
        angle = np.pi * i / 16
        points[i] = (100 - 100 * np.cos(angle), 120 + 80 * np.sin(angle))
    for i in range(27, 36):
        points[i] = (100, 90 + 5 * (i - 27))
    points[30] = (100 + 100 * yaw, 125)  # the nose tip: half the span times yaw from the middle
    for start, centre, eye_openness in ((36, 60.0, openness), (42, 140.0, left_openness)):
        half = 15.0
        height = (openness if eye_openness is None else eye_openness) * 2 * half / 2
        points[start] = (centre - half, 80)
        points[start + 1] = (centre - half / 3, 80 - height)
        points[start + 2] = (centre + half / 3, 80 - height)
        points[start + 3] = (centre + half, 80)
        points[start + 4] = (centre + half / 3, 80 + height)
        points[start + 5] = (centre - half / 3, 80 + height)
    return points


def sequence(
    frames: list[tuple[float, float]], *, fps: float = 8, difference: float = 4.0, wink: bool = False
) -> list[Sample]:
    """Samples from ``(openness, yaw)`` per frame, ``fps`` frames a second (``wink``: only the right eye closes)."""
    samples = []
    for i, (openness, yaw) in enumerate(frames):
        points = face(openness=openness, yaw=yaw, left_openness=0.3 if wink else None)
        samples.append(
            Sample(
                t=i / fps,
                face=True,
                ear=face_ear(points),
                yaw=head_yaw(points),
                difference=difference,
                ear_open_eye=open_eye_ear(points),
            )
        )
    return samples


def test_the_measures_on_one_face() -> None:
    assert eye_aspect_ratio(face(openness=0.3)[36:42]) == pytest.approx(0.3, abs=1e-6)
    assert face_ear(face(openness=0.05)) == pytest.approx(0.05, abs=1e-6)
    assert head_yaw(face(yaw=0.0)) == pytest.approx(0.0, abs=1e-6)
    assert head_yaw(face(yaw=0.5)) == pytest.approx(0.5, abs=1e-6)
    assert head_yaw(face(yaw=-0.5)) == pytest.approx(-0.5, abs=1e-6)


BLINK = Challenge(steps=(Step("blink", at=1.0, window=3.0),))
LEFT = Challenge(steps=(Step("turn_left", at=1.0, window=3.0),))
RIGHT_THEN_BLINK = Challenge(steps=(Step("turn_right", at=1.0, window=3.0), Step("blink", at=4.5, window=3.0)))


def _frames(seconds: float, fps: float = 8, **at: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    """Open eyes facing the camera, except (start, end, openness, yaw) spans."""
    out = []
    for i in range(int(seconds * fps)):
        t = i / fps
        value = (0.3, 0.02)
        for start, end, openness, yaw in at.values():
            if start <= t < end:
                value = (openness, yaw)
        out.append(value)
    return out


def test_a_blink_in_time_passes_and_nothing_fails() -> None:
    blink = liveness_decide(sequence(_frames(4.5, blink=(2.0, 2.25, 0.05, 0.02))), BLINK, LIMITS)
    assert blink.passed, blink
    assert blink.measures["steps"][0]["seen_at"] == pytest.approx(2.0)
    assert blink.measures["min_ear"] == pytest.approx(0.05, abs=1e-3)

    nothing = liveness_decide(sequence(_frames(4.5)), BLINK, LIMITS)
    assert not nothing.passed and nothing.reasons == ["challenge_not_met"]
    # Eyes a little narrower (a squint, a smile) are not a blink.
    squint = liveness_decide(sequence(_frames(4.5, squint=(2.0, 3.0, 0.24, 0.02))), BLINK, LIMITS)
    assert not squint.passed
    # One eye's landmarks collapsing (fitting noise on a moving photo, or a wink) is not a blink.
    one_eye = liveness_decide(sequence(_frames(4.5, blink=(2.0, 2.25, 0.05, 0.02)), wink=True), BLINK, LIMITS)
    assert one_eye.reasons == ["challenge_not_met"]


def test_a_turn_must_be_the_asked_side_and_from_the_resting_pose() -> None:
    left = liveness_decide(sequence(_frames(4.5, turn=(2.0, 3.0, 0.3, 0.6))), LEFT, LIMITS)
    assert left.passed, left
    wrong_side = liveness_decide(sequence(_frames(4.5, turn=(2.0, 3.0, 0.3, -0.6))), LEFT, LIMITS)
    assert wrong_side.reasons == ["challenge_not_met"]
    # A face turned from the start (a photo of a turned head) does not turn.
    turned_all_along = liveness_decide(sequence([(0.3, 0.6)] * 36), LEFT, LIMITS)
    assert turned_all_along.reasons == ["challenge_not_met"]
    # A small drift is not a turn.
    drift = liveness_decide(sequence(_frames(4.5, drift=(2.0, 3.0, 0.3, 0.25))), LEFT, LIMITS)
    assert not drift.passed


def test_steps_must_come_in_order_and_in_their_window() -> None:
    in_order = _frames(8, turn=(2.0, 2.8, 0.3, -0.6), blink=(5.5, 5.75, 0.05, 0.02))
    assert liveness_decide(sequence(in_order), RIGHT_THEN_BLINK, LIMITS).passed
    reversed_order = _frames(8, blink=(2.0, 2.25, 0.05, 0.02), turn=(5.5, 6.2, 0.3, -0.6))
    assert liveness_decide(sequence(reversed_order), RIGHT_THEN_BLINK, LIMITS).reasons == ["challenge_not_met"]
    too_late = _frames(12, turn=(2.0, 2.8, 0.3, -0.6), blink=(10.0, 10.25, 0.05, 0.02))
    assert liveness_decide(sequence(too_late), RIGHT_THEN_BLINK, LIMITS).reasons == ["challenge_not_met"]


def test_a_static_feed_fails_even_if_its_landmarks_would_pass() -> None:
    frozen = sequence(_frames(4.5, blink=(2.0, 2.25, 0.05, 0.02)), difference=0.4)
    result = liveness_decide(frozen, BLINK, LIMITS)
    assert "static_feed" in result.reasons and not result.passed
    # The encoder's first frames (a keyframe, then sharper ones) change a still picture too: not counted.
    ramp = [Sample(t=s.t, face=True, ear=s.ear, yaw=s.yaw, difference=5.0 if i < 3 else 0.4, ear_open_eye=s.ear_open_eye)
            for i, s in enumerate(frozen)]  # fmt: skip
    assert "static_feed" in liveness_decide(ramp, BLINK, LIMITS).reasons
    # One glitched frame (a lost packet) changes two differences: still static.
    glitch = [Sample(t=s.t, face=True, ear=s.ear, yaw=s.yaw, difference=9.0 if i in (20, 21) else 0.4, ear_open_eye=s.ear_open_eye)
              for i, s in enumerate(frozen)]  # fmt: skip
    assert "static_feed" in liveness_decide(glitch, BLINK, LIMITS).reasons
    # A movement over several frames (a turn takes half a second or more) is not.
    moving = [Sample(t=s.t, face=True, ear=s.ear, yaw=s.yaw, difference=5.0 if 20 <= i < 24 else 0.4, ear_open_eye=s.ear_open_eye)
              for i, s in enumerate(frozen)]  # fmt: skip
    assert "static_feed" not in liveness_decide(moving, BLINK, LIMITS).reasons


def test_too_few_frames_is_unusable_not_static() -> None:
    result = liveness_decide(sequence(_frames(0.5)), BLINK, LIMITS)
    assert "too_few_frames" in result.reasons and "static_feed" not in result.reasons


def test_too_few_frames_with_a_face_is_unusable() -> None:
    samples = [Sample(t=i / 8, face=False, difference=5.0) for i in range(30)]
    result = liveness_decide(samples, BLINK, LIMITS)
    assert "no_face" in result.reasons and not result.passed
    assert best_frame_index(samples) is None


def test_the_best_frame_is_frontal_with_open_eyes() -> None:
    samples = sequence([(0.3, 0.6), (0.05, 0.0), (0.3, 0.01), (0.3, -0.4)])
    assert best_frame_index(samples) == 2


def test_challenges_are_random_distinct_and_bounded() -> None:
    drawn = [challenge_draw(steps=2, window=3.5, first_delay=(1.0, 2.0), gap=(0.3, 1.2)) for _ in range(200)]
    orders = {tuple(step.action for step in challenge.steps) for challenge in drawn}
    assert len(orders) >= 4  # blink/turn in both orders, both turn sides
    for challenge in drawn:
        actions = [step.action for step in challenge.steps]
        assert len(actions) == 2 and len(set(actions)) == 2
        assert sum(action.startswith("turn") for action in actions) <= 1
        assert 1.0 <= challenge.steps[0].at <= 2.0
        assert challenge.steps[1].at >= challenge.steps[0].at + 3.5 + 0.3 - 0.01
        assert challenge.seconds <= 2.0 + 3.5 + 1.2 + 3.5 + 1e-6
    assert len({challenge.steps[0].at for challenge in drawn}) > 50  # timing random too (0.01 s steps)
