"""The customer's page's position algorithm (``static/queueing/position.js``), mirrored in Python.

The benches' simulated customers run this; ``tests/queueing/test_position.py``
checks that it and the JavaScript give the same answers on the same message
streams (through node), and that both equal the entry's real place. Keep the
two in step: same names, same rules (read the JavaScript's header for the protocol).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


def place_before(a: list[float] | tuple[float, int], b: list[float] | tuple[float, int]) -> bool:
    return a[0] < b[0] or (a[0] == b[0] and a[1] < b[1])


@dataclass
class Snapshot:
    queue: int
    version: int
    key: float
    ticket: int
    state: str
    ahead: int
    waiting: int | None
    seconds_each: float | None


@dataclass
class Tracker:
    snapshot: Snapshot | None = None
    pending: dict[int, dict[str, Any]] = field(default_factory=dict)
    gap: bool = False
    heard_version: int = 0


def _apply(tracker: Tracker, message: dict[str, Any]) -> None:
    snap = tracker.snapshot
    assert snap is not None
    mine = (snap.key, snap.ticket)
    for place in message.get("removed") or ():
        if place_before(place, mine):
            snap.ahead -= 1
    for place in message.get("inserted") or ():
        if place_before(place, mine):
            snap.ahead += 1
    snap.version = message["version"]
    if isinstance(message.get("waiting"), int):
        snap.waiting = message["waiting"]
    if isinstance(message.get("seconds_each"), int | float):
        snap.seconds_each = message["seconds_each"]


def _drain(tracker: Tracker) -> None:
    snap = tracker.snapshot
    assert snap is not None
    while (following := tracker.pending.pop(snap.version + 1, None)) is not None:
        _apply(tracker, following)
    for version in [version for version in tracker.pending if version <= snap.version]:
        del tracker.pending[version]
    tracker.gap = bool(tracker.pending) or tracker.heard_version > snap.version


def position_step(tracker: Tracker, message: dict[str, Any]) -> Tracker:
    """``queuePositionStep``: apply one socket message."""
    if message.get("type") == "position":
        tracker.snapshot = Snapshot(
            queue=message["queue"],
            version=message["version"],
            key=message["key"],
            ticket=message["ticket"],
            state=message["state"],
            ahead=message["position"] - 1 if message["position"] > 0 else 0,
            waiting=message.get("waiting"),
            seconds_each=message.get("seconds_each"),
        )
        tracker.heard_version = max(tracker.heard_version, message["version"])
        tracker.pending = {v: m for v, m in tracker.pending.items() if m["queue"] == message["queue"]}
        _drain(tracker)
        return tracker
    if message.get("type") != "queue":
        return tracker
    snap = tracker.snapshot
    if snap is not None and message["queue"] != snap.queue:
        return tracker
    if snap is None:
        if not message.get("resync"):
            tracker.pending[message["version"]] = message
        return tracker
    tracker.heard_version = max(tracker.heard_version, message["version"])
    if isinstance(message.get("seconds_each"), int | float):
        snap.seconds_each = message["seconds_each"]
    if message["version"] > snap.version and not message.get("resync"):
        tracker.pending[message["version"]] = message
    _drain(tracker)
    return tracker


def position_view(tracker: Tracker) -> dict[str, Any]:
    """``queuePositionView``: what the page shows."""
    snap = tracker.snapshot
    if snap is None or snap.state != "waiting":
        return {"position": 0, "estimatedWaitSeconds": 0, "known": snap is not None}
    position = snap.ahead + 1
    return {
        "position": position,
        "estimatedWaitSeconds": math.floor(position * (snap.seconds_each or 0) + 0.5),  # JS Math.round
        "known": not tracker.gap,
        "waiting": snap.waiting,
    }
