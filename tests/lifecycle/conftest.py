"""The cast and the boundaries of the lifecycle property test (tests/lifecycle/test_stateful.py).

The cast (branch, customers, staff with their skills, queues with mutual
overflow) is created once per test; each Hypothesis example then runs in a
savepoint of its own that is rolled back afterwards (see the machine).

What the machine controls instead of the real thing, and why:

- the clock: ``django.utils.timezone.now`` returns the machine's clock, so
  the services that read the time themselves (hang-up, invite, ``auto_now``
  fields, audit times) agree with the ``now`` passed to the others;
- the Celery broker: a task sent after commit is kept in a list instead of
  running eagerly, so the machine decides when a worker runs it, and whether
  the worker dies before acknowledging it (the task is then delivered again);
- the Janus video room integration (``apps.calls.services.JanusVideoRoom``):
  a stand-in that answers while the machine says the server is up and raises
  ``JanusError`` (no answer) while it is gone. The real Janus is exercised by
  tests/calls and tests/faults.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from celery.app.task import Task
from django.contrib.auth.models import User
from django.utils import timezone

from apps.calls import services as call_services
from apps.calls.integrations.janus import JanusError
from apps.customers.models import Branch, Customer
from apps.queueing.models import ServiceQueue
from apps.queueing.services.configuration import overflow_target_set, service_queue_upsert
from apps.staff.models import StaffProfile
from apps.staff.roles import Role
from apps.staff.services import agent_skill_set, staff_member_upsert
from tests.conftest import SYSTEM

# Each example starts at the same instant: runs are reproducible.
START = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class SentTask:
    task: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.task.name).rsplit(".", 1)[-1]

    def __repr__(self) -> str:
        return f"{self.name}{self.args}"


@dataclass
class Broker:
    """Tasks sent and not yet acknowledged by a worker, in the order they were sent."""

    pending: list[SentTask] = field(default_factory=list)


class FakeVideoRoom:
    """Stands in for ``JanusVideoRoom``: answers while ``up``, raises "no answer" while the server is gone."""

    up = True

    def __init__(self, server: Any, *, timeout: float = 5.0) -> None:
        self.server = server

    def _answer(self) -> None:
        if not FakeVideoRoom.up:
            raise JanusError(f"no answer from {self.server.name} (stopped by the lifecycle test)")

    def create_room(self, **kwargs: Any) -> None:
        self._answer()

    def destroy_room(self, **kwargs: Any) -> None:
        self._answer()

    def exists(self, **kwargs: Any) -> bool:
        self._answer()
        return True

    def ping(self) -> float:
        self._answer()
        return 0.001


@dataclass(frozen=True)
class Cast:
    customers: list[Customer]
    # Index order matters to the machine: 0, 1 agents; 2 an expert; 3 an agent without the activation skill.
    staff: list[StaffProfile]
    supervisor: User
    queues: list[ServiceQueue]


@pytest.fixture
def lifecycle_boundaries(
    settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[Clock, Broker]]:
    clock = Clock()
    broker = Broker()

    def send(task: Any, args: Any = None, kwargs: Any = None, *more: Any, **options: Any) -> None:
        broker.pending.append(SentTask(task, tuple(args or ()), dict(kwargs or {})))

    monkeypatch.setattr(timezone, "now", clock)
    monkeypatch.setattr(Task, "apply_async", send)
    monkeypatch.setattr(call_services, "JanusVideoRoom", FakeVideoRoom)
    settings.JANUS_SERVERS = [
        {
            "name": "lifecycle-janus",
            "ws_url": "ws://127.0.0.1:9",
            "api_secret": "s",
            "admin_key": "k",
            "token_secret": "t",
        }
    ]
    settings.JANUS_RECORDINGS_DIR = str(tmp_path / "recordings")
    FakeVideoRoom.up = True
    yield clock, broker
    FakeVideoRoom.up = True


@pytest.fixture
def cast(branch: Branch, make_customer: Callable[..., Customer]) -> Cast:
    numbers = itertools.count(1)

    def member(role: Role, skills: tuple[str, ...]) -> StaffProfile:
        number = next(numbers)
        staff = staff_member_upsert(
            actor=SYSTEM,
            username=f"life_{role.value}{number}",
            employee_number=f"LC{number:03d}",
            display_name=f"{role.label}{number}",
            role=role,
            branch=branch,
        )
        for business in skills:
            agent_skill_set(actor=SYSTEM, staff=staff, business_code=business, proficiency=3)
        return staff

    staff = [
        member(Role.AGENT, ("activation",)),
        member(Role.AGENT, ("activation", "password_reset")),
        member(Role.EXPERT, ("activation",)),
        member(Role.AGENT, ("password_reset",)),
    ]
    supervisor = member(Role.SUPERVISOR, ()).user
    # "activation" takes activation first, "general" password resets (lowest code
    # wins); "reset" is reached only by a move or a transfer. The first two
    # overflow into each other after 45 s of waiting (or beyond two waiting).
    activation = service_queue_upsert(
        actor=SYSTEM,
        code="activation",
        name="激活",
        businesses=["activation"],
        overflow_max_wait_seconds=45,
        overflow_max_waiting=2,
    )
    general = service_queue_upsert(
        actor=SYSTEM,
        code="general",
        name="综合",
        businesses=["activation", "password_reset"],
        overflow_max_wait_seconds=45,
    )
    reset = service_queue_upsert(actor=SYSTEM, code="reset", name="重置", businesses=["password_reset"])
    overflow_target_set(actor=SYSTEM, queue=activation, target=general, position=1)
    overflow_target_set(actor=SYSTEM, queue=general, target=activation, position=1)
    customers = [make_customer() for _ in range(3)]
    return Cast(customers=customers, staff=staff, supervisor=supervisor, queues=[activation, general, reset])
