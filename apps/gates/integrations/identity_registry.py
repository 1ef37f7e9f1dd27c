"""Gate 2, networked identity check (联网核查), behind a small typed interface.

The real service (the PBOC citizen-identity channel) answers, for a name and
an ID number: the number is unknown, or it is known and the name does / does
not match; on a match it returns the photo on file. It is slow, and it fails:
errors and timeouts are part of the contract, and callers (the gate service)
count attempts and record the reason.

``SandboxPbocRegistry`` behaves the same way against a local register of
citizens: the seeded demo customers (apps/demo/seed.py, customers C0000001…),
each deterministically given one person of the shared face photos
(``../shared/datasets/faces``) as the photo on file. It touches no models: it
reads citizens through a ``lookup`` port (``CitizenLookup``) that the caller
wires to the bank's records (``apps.gates.selectors.citizen_on_file``).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

RegistryOutcome = Literal["match", "mismatch", "not_found"]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class RegistryError(Exception):
    """The registry could not answer; ``code`` is stable for APIs and the audit trail."""

    code = "registry_error"


class RegistryUnavailable(RegistryError):
    code = "registry_unavailable"


class RegistryTimeout(RegistryError):
    code = "registry_timeout"


@dataclass(frozen=True)
class RegistryResult:
    outcome: RegistryOutcome
    # The photo on file (JPEG/PNG bytes), only when ``outcome == "match"``.
    photo: bytes | None
    # The registry's reference of this enquiry, kept in the audit trail.
    reference: str


@dataclass(frozen=True)
class Citizen:
    """What the sandbox register knows about one person."""

    name: str
    customer_number: str


# The port through which the sandbox knows its citizens: the ID number in, the
# person on file (or None) out. The caller (apps.gates) wires it to the bank's
# customer records, so this integration touches no models.
CitizenLookup = Callable[[str], Citizen | None]


class IdentityRegistry(Protocol):
    def verify(self, *, name: str, id_number: str) -> RegistryResult:
        """Check name + ID number; raises RegistryUnavailable / RegistryTimeout."""
        ...


def face_people(faces_dir: Path) -> list[Path]:
    """The person folders of the face set in a stable order (``multi/`` excluded)."""
    return sorted(path for path in faces_dir.iterdir() if path.is_dir() and path.name != "multi")


def registry_photo_path(faces_dir: Path, customer_number: str) -> Path:
    """The photo on file for a customer: person ``(n - 1) mod people`` of the face set, photo ``1.*``.

    C0000001 → the first person folder in name order, C0000002 → the second, …
    Tests and the demo use the person's other photos as the live image and the
    ID-card portrait, so the registry photo is always the first one.
    """
    people = face_people(faces_dir)
    if not people:
        raise RegistryUnavailable(f"no face photos in {faces_dir}")
    # Only the digits count: demo customers are C0000001…, test factories T0000001….
    index = int("".join(ch for ch in customer_number if ch.isdigit()) or "0") - 1
    person = people[index % len(people)]
    photos = sorted(path for path in person.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
    return photos[0]


class SandboxPbocRegistry:
    """A local stand-in for the PBOC identity channel with its latency and failures.

    Each call first waits a uniformly drawn latency in
    [``latency_min_ms``, ``latency_max_ms``]; then, with probability
    ``timeout_rate``, it waits until ``timeout_seconds`` and raises
    RegistryTimeout (what the HTTP client of the real channel would do), or,
    with probability ``error_rate``, raises RegistryUnavailable. With ``seed``
    the draws are reproducible (tests); the random generator is shared by the
    threads of a process, so it is guarded by a lock.
    """

    def __init__(
        self,
        *,
        faces_dir: Path,
        latency_min_ms: int = 200,
        latency_max_ms: int = 800,
        error_rate: float = 0.02,
        timeout_rate: float = 0.02,
        timeout_seconds: float = 3.0,
        seed: int | None = None,
        lookup: CitizenLookup,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 <= latency_min_ms <= latency_max_ms:
            raise ValueError("need 0 <= latency_min_ms <= latency_max_ms")
        if not (0 <= error_rate <= 1 and 0 <= timeout_rate <= 1 and error_rate + timeout_rate <= 1):
            raise ValueError("error_rate and timeout_rate must be probabilities summing to at most 1")
        self.faces_dir = faces_dir
        self.latency_min_ms = latency_min_ms
        self.latency_max_ms = latency_max_ms
        self.error_rate = error_rate
        self.timeout_rate = timeout_rate
        self.timeout_seconds = timeout_seconds
        self._lookup = lookup
        self._sleep = sleep
        self._random = random.Random(seed)  # noqa: S311 - simulated latency, not security
        self._random_lock = threading.Lock()

    def verify(self, *, name: str, id_number: str) -> RegistryResult:
        with self._random_lock:
            latency_seconds = self._random.uniform(self.latency_min_ms, self.latency_max_ms) / 1000
            failure_draw = self._random.random()
            reference = f"PBOC-SBX-{uuid.UUID(int=self._random.getrandbits(128), version=4).hex[:16].upper()}"
        if failure_draw < self.timeout_rate:
            self._sleep(max(self.timeout_seconds, latency_seconds))
            raise RegistryTimeout(f"identity registry did not answer within {self.timeout_seconds:g} s")
        self._sleep(latency_seconds)
        if failure_draw < self.timeout_rate + self.error_rate:
            raise RegistryUnavailable("identity registry answered with a service error")

        citizen = self._lookup(id_number.strip().upper())
        if citizen is None:
            return RegistryResult(outcome="not_found", photo=None, reference=reference)
        if citizen.name.strip() != name.strip():
            return RegistryResult(outcome="mismatch", photo=None, reference=reference)
        photo = registry_photo_path(self.faces_dir, citizen.customer_number).read_bytes()
        return RegistryResult(outcome="match", photo=photo, reference=reference)


def build_identity_registry(
    adapter: str, options: dict[str, Any], *, faces_dir: Path, lookup: CitizenLookup
) -> IdentityRegistry:
    if adapter == "pboc_sandbox":
        return SandboxPbocRegistry(faces_dir=faces_dir, lookup=lookup, **options)
    raise ValueError(f"unknown identity registry adapter {adapter!r}")


_registry_singleton: IdentityRegistry | None = None
_singleton_lock = threading.Lock()


def get_identity_registry(*, lookup: CitizenLookup) -> IdentityRegistry:
    """The process-wide registry adapter chosen by ``settings.IDENTITY_REGISTRY_ADAPTER``.

    ``lookup`` is used when the adapter is first built (the sandbox's citizens).
    """
    global _registry_singleton  # noqa: PLW0603 - a deliberate per-process singleton
    if _registry_singleton is None:
        with _singleton_lock:
            if _registry_singleton is None:
                from django.conf import settings

                _registry_singleton = build_identity_registry(
                    settings.IDENTITY_REGISTRY_ADAPTER,
                    dict(settings.IDENTITY_REGISTRY_SANDBOX),
                    faces_dir=Path(settings.FACES_DATASET_DIR),
                    lookup=lookup,
                )
    return _registry_singleton
