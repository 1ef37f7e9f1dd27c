"""The SMS sandbox for Gate 1 tests: fast and without random failures (its failures are tested on their own)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from apps.verification.integrations.sms import sms_gateway_reset


@pytest.fixture(autouse=True)
def _quiet_sms_sandbox(settings: Any) -> Iterator[None]:
    settings.SMS_SANDBOX = {
        **settings.SMS_SANDBOX,
        "latency_min_ms": 1,
        "latency_max_ms": 5,
        "error_rate": 0.0,
        "rate_limit_per_window": 1000,
    }
    sms_gateway_reset()
    yield
    sms_gateway_reset()
