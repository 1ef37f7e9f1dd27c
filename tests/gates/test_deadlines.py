"""No gate check runs for ever: a broken check ends as an error, and one past its deadline is ended by the sweeper."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse

from apps.gates.models import AttemptStatus, GateAttempt, GateProgress, GateState
from apps.gates.services import gate_attempts_expire
from apps.queueing.services.housekeeping import dispatcher_tick
from tests.gates.conftest import KIT, InCall, _gates, _post

pytestmark = pytest.mark.django_db


def _identity_url(in_call: InCall) -> str:
    return reverse("gates:call-gate-identity", args=[in_call.call.public_id])


def test_a_check_whose_task_breaks_ends_as_an_error_and_the_agent_can_try_again(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from apps.gates.integrations import identity_registry

    in_call = make_in_call(person=KIT)

    def broken(**kwargs: Any) -> Any:
        raise KeyError("a bug, not a registry error")

    # Only the breakage is undone afterwards: ``monkeypatch.undo()`` would also
    # undo the registry fixture's failure-free sandbox, and the default one
    # fails 4 % of checks (a flaky retry in CI on 2026-12-03).
    with monkeypatch.context() as patch:
        patch.setattr(identity_registry._registry_singleton, "verify", broken)
        assert _post(in_call, "identity", on_commit).status_code == 202
        attempt = GateAttempt.objects.get(progress__visit=in_call.visit)
        assert (attempt.status, attempt.result_code) == (AttemptStatus.ERROR, "internal_error")
        shown = _gates(in_call)["gates"][0]["attempts"][0]
        assert shown["status"] == "error"
        assert shown["message"] in {
            "The check could not be completed because of an internal error. Please try again.",
            "系统内部错误，核查未能完成，请重试。",
        }

    assert identity_registry._registry_singleton.error_rate == 0.0
    assert _post(in_call, "identity", on_commit).status_code == 202
    assert GateProgress.objects.get(visit=in_call.visit).state == GateState.FACE


def test_a_check_lost_with_its_worker_is_ended_by_the_sweeper_and_the_agent_can_try_again(
    make_in_call: Callable[..., InCall],
    on_commit: Callable[..., Any],
    django_capture_on_commit_callbacks: Callable[..., Any],
    settings: Any,
) -> None:
    settings.GATE_CHECK_DEADLINE_SECONDS = 60
    in_call = make_in_call(person=KIT)
    with django_capture_on_commit_callbacks(execute=False):  # the worker dies with the task
        response = in_call.staff_client.post(_identity_url(in_call), content_type="application/json")
    assert response.status_code == 202, response.content
    attempt = GateAttempt.objects.get(progress__visit=in_call.visit)
    assert attempt.status == AttemptStatus.RUNNING
    # While it runs, a second try is refused.
    assert _post(in_call, "identity", on_commit).json()["code"] == "gate_check_running"

    assert gate_attempts_expire(now=attempt.started_at + timedelta(seconds=59)) == 0
    with on_commit():
        dispatcher_tick(now=attempt.started_at + timedelta(seconds=61))
    attempt.refresh_from_db()
    assert (attempt.status, attempt.result_code) == (AttemptStatus.ERROR, "check_timed_out")
    assert _gates(in_call)["gates"][0]["attempts"][0]["message"] in {
        "The check did not finish in time. Please try again.",
        "核查未在时限内完成，请重试。",
    }

    assert _post(in_call, "identity", on_commit).status_code == 202
    assert GateAttempt.objects.get(progress__visit=in_call.visit, number=2).status == AttemptStatus.PASSED
    assert GateProgress.objects.get(visit=in_call.visit).state == GateState.FACE


def test_an_overdue_check_on_the_last_attempt_fails_the_gate_like_any_error(
    make_in_call: Callable[..., InCall], django_capture_on_commit_callbacks: Callable[..., Any], settings: Any
) -> None:
    settings.GATE_IDENTITY_MAX_ATTEMPTS = 1
    in_call = make_in_call(person=KIT)
    with django_capture_on_commit_callbacks(execute=False):
        in_call.staff_client.post(_identity_url(in_call), content_type="application/json")
    attempt = GateAttempt.objects.get(progress__visit=in_call.visit)
    with django_capture_on_commit_callbacks(execute=True):
        assert gate_attempts_expire(now=attempt.started_at + timedelta(seconds=3600)) == 1
    progress = GateProgress.objects.get(visit=in_call.visit)
    assert (progress.state, progress.failure_reason) == (GateState.FAILED, "attempts_exhausted")
