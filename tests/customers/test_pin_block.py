"""The PIN on its way to core banking (apps/customers/integrations/pin_block.py) and what the sandbox keeps."""

from __future__ import annotations

from typing import Any

import pytest

from apps.customers.integrations.core_banking import CoreBankingRejected, SandboxCoreBanking
from apps.customers.integrations.pin_block import (
    PinBlockInvalid,
    pin_block_open,
    pin_block_seal,
    pin_verification_matches,
    pin_verification_value,
)

ACCOUNT = "6222020200112233445"
OTHER = "6222020200112233446"


def test_a_block_opens_to_its_pin_for_its_account_and_never_shows_it() -> None:
    first, second = pin_block_seal("739215", account_number=ACCOUNT), pin_block_seal("739215", account_number=ACCOUNT)
    assert "739215" not in first and first != second  # a fresh nonce: equal PINs give unlinkable blocks
    assert pin_block_open(first, account_number=ACCOUNT) == "739215"
    assert pin_block_open(second, account_number=ACCOUNT) == "739215"


@pytest.mark.parametrize(
    "block",
    [
        "739215",
        "aesgcm1$",
        "aesgcm1$not-base64!!",
        "pbkdf2_sha256$1000000$salt$hash",
    ],
)
def test_anything_but_a_block_is_refused(block: str) -> None:
    with pytest.raises(PinBlockInvalid):
        pin_block_open(block, account_number=ACCOUNT)


def test_a_block_made_for_one_account_or_altered_opens_for_none() -> None:
    block = pin_block_seal("739215", account_number=ACCOUNT)
    with pytest.raises(PinBlockInvalid):
        pin_block_open(block, account_number=OTHER)
    flipped = block[:-2] + ("A" if block[-2] != "A" else "B") + block[-1]
    with pytest.raises(PinBlockInvalid):
        pin_block_open(flipped, account_number=ACCOUNT)


def test_the_verification_value_is_keyed_per_account_and_checks_only_the_right_pin(settings: Any) -> None:
    stored = pin_verification_value("739215", account_number=ACCOUNT)
    assert "739215" not in stored
    assert pin_verification_matches(stored, "739215", account_number=ACCOUNT)
    assert not pin_verification_matches(stored, "739216", account_number=ACCOUNT)
    assert not pin_verification_matches(stored, "739215", account_number=OTHER)
    # Keyed: another installation's key gives another value for the same PIN and account.
    settings.BLIND_INDEX_KEY = "another-installation-key-000000000000000"
    assert pin_verification_value("739215", account_number=ACCOUNT) != stored


@pytest.mark.django_db
def test_the_sandbox_core_refuses_a_block_that_does_not_open_for_the_account() -> None:
    core = SandboxCoreBanking(error_rate=0, timeout_rate=0, latency_min_ms=0, latency_max_ms=0)
    with pytest.raises(CoreBankingRejected):
        core.account_pin_reset(
            account_number=ACCOUNT, pin_block=pin_block_seal("739215", account_number=OTHER), reference="r1"
        )
