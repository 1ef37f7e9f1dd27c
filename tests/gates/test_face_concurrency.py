"""Face tasks run concurrently and are redelivered safely (R6.3: "safe to run concurrently").

Real threads, each with its own PostgreSQL connection, run the face service
for two services at once, plus a second delivery of one of them, as two
Celery workers would. Each attempt must finish exactly once, with the right
verdict. Needs PostgreSQL (row locks); SQLite's in-memory test database is
not shared between threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, connections
from django.urls import reverse

from apps.audit.models import AuditRecord
from apps.gates.models import AttemptStatus, GateAttempt
from apps.gates.services import gate_face_verify_run
from tests.conftest import CI
from tests.gates.conftest import InCall, capture, person_photos

pytestmark = pytest.mark.django_db(transaction=True)

KIT, OBAMA = 2, 4


def _started_face_attempt(in_call: InCall, on_commit: Callable[..., Any], photo: Any) -> GateAttempt:
    with on_commit():
        in_call.staff_client.post(reverse("gates:call-gate-identity", args=[in_call.call.public_id]))
    snapshot = capture(in_call, photo)
    # Started, but its task not delivered: the threads below are the workers.
    in_call.staff_client.post(
        reverse("gates:call-gate-face", args=[in_call.call.public_id]),
        {"snapshot": str(snapshot.public_id)},
        content_type="application/json",
    )
    return GateAttempt.objects.get(progress__visit=in_call.visit, gate="face")


def test_concurrent_and_redelivered_face_tasks_each_finish_once(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    if connection.vendor != "postgresql":
        if CI:
            pytest.fail("CI=true requires PostgreSQL for the concurrent face test")
        pytest.skip("needs PostgreSQL (DATABASE_URL)")
    same = make_in_call(person=KIT)
    other = make_in_call(person=KIT)
    from apps.gates import tasks

    # This test plays the broker: the face tasks are queued here, and the
    # threads below are the workers that receive them.
    delivered: list[int] = []
    monkeypatch.setattr(tasks.gate_face_verify_task, "delay", delivered.append)
    passing = _started_face_attempt(same, on_commit, person_photos(KIT)[2])
    failing = _started_face_attempt(other, on_commit, person_photos(OBAMA)[0])
    assert delivered == [passing.pk, failing.pk]
    assert passing.status == failing.status == AttemptStatus.RUNNING

    errors: list[BaseException] = []

    def worker(attempt_id: int) -> None:
        try:
            gate_face_verify_run(attempt_id=attempt_id)
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(attempt,)) for attempt in (passing.pk, failing.pk, passing.pk)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    passing.refresh_from_db()
    failing.refresh_from_db()
    assert (passing.status, failing.status) == (AttemptStatus.PASSED, AttemptStatus.FAILED)
    for attempt in (passing, failing):
        finished = AuditRecord.objects.filter(
            action="gates.attempt.finished", target_id=str(attempt.progress.visit_id), data__gate="face"
        )
        assert finished.count() == 1
