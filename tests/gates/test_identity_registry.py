"""The sandbox PBOC identity registry (Gate 2): answers, photos, latency and failures.

The sandbox is the real adapter here (the PBOC channel is not reachable), so
it is tested as it runs, with real sleeps kept short by its latency settings.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.conf import settings

from apps.customers.models import Customer
from apps.gates.integrations.identity_registry import (
    Citizen,
    RegistryResult,
    RegistryTimeout,
    RegistryUnavailable,
    SandboxPbocRegistry,
    build_identity_registry,
    face_people,
    registry_photo_path,
)
from apps.gates.selectors import citizen_on_file

FACES = Path(settings.FACES_DATASET_DIR)
CITIZENS = {
    "110101199001011237": Citizen(name="张三", customer_number="C0000001"),
    "110101199001011253": Citizen(name="李四", customer_number="C0000002"),
}


def registry(**options: object) -> SandboxPbocRegistry:
    defaults: dict[str, object] = {
        "latency_min_ms": 0,
        "latency_max_ms": 0,
        "error_rate": 0.0,
        "timeout_rate": 0.0,
        "seed": 7,
        "lookup": CITIZENS.get,
    }
    return SandboxPbocRegistry(faces_dir=FACES, **{**defaults, **options})  # type: ignore[arg-type]


def test_matching_name_and_number_returns_the_photo_on_file() -> None:
    result = registry().verify(name="张三", id_number="110101199001011237")

    assert result.outcome == "match"
    assert result.photo == registry_photo_path(FACES, "C0000001").read_bytes()
    assert result.reference.startswith("PBOC-SBX-")


def test_a_different_name_for_a_known_number_is_a_mismatch_without_photo() -> None:
    result = registry().verify(name="王五", id_number="110101199001011237")

    assert result == RegistryResult(outcome="mismatch", photo=None, reference=result.reference)


def test_an_unknown_number_is_not_found() -> None:
    result = registry().verify(name="张三", id_number="110101199001011245")

    assert result.outcome == "not_found"
    assert result.photo is None


def test_each_customer_gets_one_person_of_the_face_set_in_turn() -> None:
    people = face_people(FACES)

    assert "multi" not in {person.name for person in people}
    for index in range(1, 2 * len(people) + 1):
        path = registry_photo_path(FACES, f"C{index:07d}")
        assert path.parent == people[(index - 1) % len(people)]
        assert path.stem == "1"
    assert registry_photo_path(FACES, "T0000003") == registry_photo_path(FACES, "C0000003")


def test_latency_stays_within_the_configured_bounds() -> None:
    sandbox = registry(latency_min_ms=30, latency_max_ms=80)
    for _ in range(5):
        started = time.monotonic()
        sandbox.verify(name="张三", id_number="110101199001011237")
        elapsed = time.monotonic() - started
        assert 0.03 <= elapsed < 0.3


def test_latency_draws_are_spread_over_the_range() -> None:
    slept: list[float] = []
    sandbox = registry(latency_min_ms=200, latency_max_ms=800, sleep=slept.append)
    for _ in range(50):
        sandbox.verify(name="张三", id_number="110101199001011237")

    assert all(0.2 <= seconds <= 0.8 for seconds in slept)
    assert min(slept) < 0.35
    assert max(slept) > 0.65


def test_a_timeout_waits_the_timeout_and_raises() -> None:
    sandbox = registry(timeout_rate=1.0, timeout_seconds=0.05)

    started = time.monotonic()
    with pytest.raises(RegistryTimeout) as raised:
        sandbox.verify(name="张三", id_number="110101199001011237")

    assert time.monotonic() - started >= 0.05
    assert raised.value.code == "registry_timeout"


def test_a_service_error_raises_registry_unavailable() -> None:
    with pytest.raises(RegistryUnavailable) as raised:
        registry(error_rate=1.0).verify(name="张三", id_number="110101199001011237")

    assert raised.value.code == "registry_unavailable"


def outcomes(sandbox: SandboxPbocRegistry, calls: int) -> list[str]:
    seen = []
    for _ in range(calls):
        try:
            seen.append(sandbox.verify(name="张三", id_number="110101199001011237").outcome)
        except RegistryTimeout:
            seen.append("timeout")
        except RegistryUnavailable:
            seen.append("error")
    return seen


def test_failures_occur_at_roughly_the_configured_rates_and_repeat_with_the_seed() -> None:
    slept: list[float] = []
    first = outcomes(registry(error_rate=0.2, timeout_rate=0.1, seed=42, sleep=slept.append), 400)
    second = outcomes(registry(error_rate=0.2, timeout_rate=0.1, seed=42, sleep=slept.append), 400)
    other_seed = outcomes(registry(error_rate=0.2, timeout_rate=0.1, seed=43, sleep=slept.append), 400)

    assert first == second
    assert first != other_seed
    assert 50 <= first.count("error") <= 110
    assert 20 <= first.count("timeout") <= 60
    assert first.count("match") == 400 - first.count("error") - first.count("timeout")


def test_rates_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="probabilities"):
        registry(error_rate=0.7, timeout_rate=0.5)
    with pytest.raises(ValueError, match="latency"):
        registry(latency_min_ms=900, latency_max_ms=100)


def test_the_adapter_is_chosen_by_name() -> None:
    chosen = build_identity_registry("pboc_sandbox", {"seed": 1}, faces_dir=FACES, lookup=CITIZENS.get)
    assert isinstance(chosen, SandboxPbocRegistry)
    with pytest.raises(ValueError, match="unknown"):
        build_identity_registry("nope", {}, faces_dir=FACES, lookup=CITIZENS.get)


@pytest.mark.django_db
def test_gates_wire_the_sandbox_to_the_bank_customers(customer: Customer) -> None:
    sandbox = SandboxPbocRegistry(
        faces_dir=FACES, lookup=citizen_on_file, latency_min_ms=0, latency_max_ms=0, error_rate=0, timeout_rate=0
    )

    result = sandbox.verify(name=customer.name, id_number=customer.id_number)

    assert result.outcome == "match"
    assert result.photo == registry_photo_path(FACES, customer.customer_number).read_bytes()
    assert sandbox.verify(name=customer.name + "某", id_number=customer.id_number).outcome == "mismatch"
