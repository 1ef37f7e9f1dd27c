"""A service in a connected call whose four gates passed (through the real registry sandbox and face model)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.urls import reverse

from apps.customers.integrations import core_banking
from apps.customers.integrations.core_banking import SandboxCoreBanking
from apps.gates.models import GateProgress, GateState
from tests.gates.conftest import (  # noqa: F401 - fixtures re-exported
    InCall,
    capture,
    janus_control,
    janus_settings,
    make_in_call,
    on_commit,
    person_photos,
    registry,
)

KIT = 2


@pytest.fixture
def core(monkeypatch: pytest.MonkeyPatch) -> Callable[..., SandboxCoreBanking]:
    """Install the core-banking sandbox with chosen failure rates (no latency unless asked)."""

    def install(**options: Any) -> SandboxCoreBanking:
        defaults = {"latency_min_ms": 0, "latency_max_ms": 0, "error_rate": 0.0, "timeout_rate": 0.0, "seed": 3}
        sandbox = SandboxCoreBanking(**{**defaults, **options})
        monkeypatch.setattr(core_banking, "_core_singleton", sandbox)
        return sandbox

    install()
    return install


def pass_gates(in_call: InCall, on_commit: Callable[..., Any], *, upto: str = "questions") -> None:  # noqa: F811
    """Take the service through gates 2–4 as agent and customer would (``upto`` stops early)."""
    client, call_id = in_call.staff_client, in_call.call.public_id
    with on_commit():
        assert client.post(reverse("gates:call-gate-identity", args=[call_id])).status_code == 202
    if upto == "identity":
        return
    snapshot = capture(in_call, person_photos(KIT)[2])
    with on_commit():
        response = client.post(
            reverse("gates:call-gate-face", args=[call_id]),
            {"snapshot": str(snapshot.public_id)},
            content_type="application/json",
        )
    assert response.status_code == 202
    if upto == "face":
        return
    with on_commit():
        assert client.post(reverse("gates:call-gate-questions", args=[call_id])).status_code == 201
    progress = GateProgress.objects.get(visit=in_call.visit)
    right = progress.attempts.get(gate="questions").question_draw.correct
    with on_commit():
        answered = in_call.customer_client.post(
            reverse("gates:visit-gate-answers"), {"answers": right}, content_type="application/json"
        )
    assert answered.status_code == 200
    assert GateProgress.objects.get(visit=in_call.visit).state == GateState.PASSED


# --- Shared by the operation tests ------------------------------------------------------

GOOD_PIN = "739215"


def _start(in_call: InCall, key: str = "key-00000001", **body: Any) -> Any:
    return in_call.staff_client.post(
        reverse("operations:call-operation-start", args=[in_call.call.public_id]),
        body,
        content_type="application/json",
        headers={"idempotency-key": key},
    )


def _pin(in_call: InCall, operation_id: str, pin: str, repeat: str | None = None) -> Any:
    return in_call.customer_client.post(
        reverse("operations:visit-operation-pin", args=[operation_id]),
        {"pin": pin, "pin_repeat": pin if repeat is None else repeat},
        content_type="application/json",
    )


@pytest.fixture
def activation(make_in_call: Callable[..., InCall], on_commit: Callable[..., Any], core: Any) -> InCall:  # noqa: F811
    in_call = make_in_call(person=KIT, business="activation")
    pass_gates(in_call, on_commit)
    return in_call
