"""The Janus client library is loaded when a process starts, never inside a request's timeout.

The defect: importing janus-client took 3.6–5.9 s on a loaded machine, inside
the 5 s bound of the first Janus exchange, so the first call after a worker
started failed ``media_server_failed``. Here the import is made slow on
purpose and the exchange must still get the whole of its own time.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from celery.signals import worker_process_init

from apps.calls.integrations import janus
from apps.calls.integrations.janus import JanusServer, JanusUnavailable, JanusVideoRoom
from remotebank import warm_up
from remotebank.celery import app


@contextmanager
def _silent_server() -> Iterator[JanusServer]:
    """A Janus address that takes the TCP connection and then never answers (a stalled server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"ws://127.0.0.1:{listener.getsockname()[1]}"
        yield JanusServer(
            name="t", admin_ws_url=url, public_ws_url=url, api_secret="s", admin_key="k", token_secret="t"
        )


@pytest.fixture
def slow_import(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The library is not loaded yet in this process, and loading it takes 0.6 s more; lists each load's time."""
    real = janus._import_janus_client
    loads: list[float] = []

    def slow() -> Any:
        started = time.monotonic()
        time.sleep(0.6)
        module = real()
        loads.append(time.monotonic() - started)
        return module

    monkeypatch.setattr(janus, "_import_janus_client", slow)
    monkeypatch.setattr(janus, "_janus_client", None, raising=False)
    return loads


def test_loading_the_library_does_not_count_against_an_exchanges_timeout(slow_import: list[float]) -> None:
    with _silent_server() as server:
        room = JanusVideoRoom(server, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(JanusUnavailable, match=r"did not answer ping within 0\.5 s"):
            room.ping()
        first = time.monotonic() - started
        with pytest.raises(JanusUnavailable, match=r"did not answer ping within 0\.5 s"):
            room.ping()

    assert len(slow_import) == 1  # loaded once per process
    # The exchange had its whole 0.5 s after the load; inside the bound, the
    # load alone would have used it up.
    assert first >= slow_import[0] + 0.5 - 0.05


def test_a_worker_process_loads_the_janus_client_when_it_starts(slow_import: list[float]) -> None:
    # A worker started without -Q consumes the default queue, which carries the room tasks.
    assert list(app.amqp.queues.consume_from) == ["default"]

    worker_process_init.send(sender=None)

    assert len(slow_import) == 1
    assert janus._janus_client is not None


def test_each_worker_warms_what_its_queues_need() -> None:
    assert warm_up.warm_ups_for(["default"]) == ["janus"]
    assert warm_up.warm_ups_for(["ocr"]) == ["ocr"]
    assert warm_up.warm_ups_for(["face", "media", "reports"]) == ["face"]
    assert warm_up.warm_ups_for(["default", "ocr", "face", "media", "reports"]) == ["janus", "ocr", "face"]


def test_warming_up_reports_how_long_each_part_took(slow_import: list[float]) -> None:
    taken = warm_up.warm_up(["janus"])

    assert list(taken) == ["janus"]
    assert taken["janus"] >= 0.6
