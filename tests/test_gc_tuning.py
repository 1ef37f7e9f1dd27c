"""Daphne's and the dispatcher's garbage collector is set up for a long-lived process, as configured.

Each case runs in a fresh interpreter: freezing and thresholds are
process-wide, and this test process must keep its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# What the new process prints: the thresholds it runs with and how many objects are frozen.
REPORT = "import gc, json; print(json.dumps([gc.get_threshold(), gc.get_freeze_count()]))"


def _run(code: str, thresholds: str | None) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ, DJANGO_SETTINGS_MODULE="remotebank.settings.test")
    environment.pop("REMOTEBANK_GC_THRESHOLDS", None)
    if thresholds is not None:
        environment["REMOTEBANK_GC_THRESHOLDS"] = thresholds
    return subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _report(code: str, thresholds: str | None) -> tuple[list[int], int]:
    finished = _run(code + "\n" + REPORT, thresholds)
    assert finished.returncode == 0, finished.stderr[-2000:]
    threshold, frozen = json.loads(finished.stdout.strip().splitlines()[-1])
    return threshold, frozen


def test_daphne_application_freezes_start_up_and_raises_the_thresholds() -> None:
    threshold, frozen = _report("import remotebank.asgi", None)
    assert threshold == [50000, 20, 100]
    # Django, the apps and the Janus client: far more than a bare interpreter holds.
    assert frozen > 50_000


def test_the_dispatcher_freezes_its_start_up_before_its_first_round() -> None:
    # The first round reports what the collector looks like by then, and ends the command.
    code = "\n".join(
        [
            "import django, sys",
            "django.setup()",
            "from apps.queueing.management.commands import run_dispatcher as command",
            "def first_round():",
            "    " + REPORT.replace("; ", "\n    "),
            "    sys.exit(0)",
            "command.dispatcher_tick = first_round",
            "command.Command().handle(interval=0, figures_every=2.0, resync_every=15.0, rounds=1)",
        ]
    )
    finished = _run(code, None)
    assert finished.returncode == 0, finished.stderr[-2000:]
    threshold, frozen = json.loads(finished.stdout.strip().splitlines()[-1])
    assert threshold == [50000, 20, 100]
    assert frozen > 50_000


def test_thresholds_come_from_the_environment() -> None:
    threshold, frozen = _report("import remotebank.asgi", "2000,5,7")
    assert threshold == [2000, 5, 7]
    assert frozen > 50_000


def test_off_keeps_pythons_own_collector() -> None:
    threshold, frozen = _report("import remotebank.asgi", "off")
    assert threshold == [700, 10, 10]
    assert frozen == 0


@pytest.mark.parametrize("value", ["50000,20", "a,b,c", "50000,0,100", "1,2,3,4"])
def test_a_malformed_setting_stops_the_start(value: str) -> None:
    finished = _run("import django; django.setup()", value)
    assert finished.returncode != 0
    assert "REMOTEBANK_GC_THRESHOLDS" in finished.stderr
