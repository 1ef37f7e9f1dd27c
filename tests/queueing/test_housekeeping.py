"""The dispatcher's round is the platform's clock: every app's sweepers hear it through one low signal."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.common.signals import housekeeping_due
from apps.queueing.services.housekeeping import dispatcher_tick

pytestmark = pytest.mark.django_db


def test_each_dispatcher_round_tells_every_app_the_time_it_is_for() -> None:
    heard: list[datetime] = []

    def receiver(sender: Any, now: datetime, **kwargs: Any) -> None:
        heard.append(now)

    later = timezone.now() + timedelta(minutes=5)
    housekeeping_due.connect(receiver, dispatch_uid="test_clock")
    try:
        dispatcher_tick(now=later)
    finally:
        housekeeping_due.disconnect(dispatch_uid="test_clock")
    assert heard == [later]


def test_one_app_whose_sweeper_fails_neither_stops_the_others_nor_the_round(caplog: pytest.LogCaptureFixture) -> None:
    heard: list[str] = []

    def broken(sender: Any, now: datetime, **kwargs: Any) -> None:
        raise RuntimeError("a bug in one sweeper")

    def working(sender: Any, now: datetime, **kwargs: Any) -> None:
        heard.append("working")

    housekeeping_due.connect(broken, dispatch_uid="test_broken")
    housekeeping_due.connect(working, dispatch_uid="test_working")
    try:
        done = dispatcher_tick()
    finally:
        housekeeping_due.disconnect(dispatch_uid="test_broken")
        housekeeping_due.disconnect(dispatch_uid="test_working")
    assert heard == ["working"]
    assert "offers" in done
    assert "a bug in one sweeper" in caplog.text
