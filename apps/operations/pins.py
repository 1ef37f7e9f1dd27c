"""The PIN rules of R7.2: six digits, entered twice, not guessable.

A PIN is only ever held in memory for the request that carries it: checked
here, encrypted for core banking (``pin_block``) and handed to it.
Nothing here logs, stores or echoes it; error messages never contain it.
"""

from __future__ import annotations

import itertools
from datetime import date

from django.utils.translation import gettext_lazy as _

from apps.common.errors import ValidationFailed
from apps.customers.integrations.pin_block import pin_block_seal

PIN_LENGTH = 6


def _birth_date_forms(born: date) -> set[str]:
    """Six-digit forms of a birth date a customer might pick (and a thief would try)."""
    year2, year4 = f"{born:%y}", f"{born:%Y}"
    month, day = f"{born:%m}", f"{born:%d}"
    return {
        year2 + month + day,
        month + day + year2,
        day + month + year2,
        year4[2:] + month + day,
        month + day + year4[:2],
    }


def pin_check(*, pin: str, repeat: str, birth_date: date | None) -> None:
    """Refuse a PIN that is malformed, mistyped or weak, with a message that never repeats it."""
    if not isinstance(pin, str) or len(pin) != PIN_LENGTH or not pin.isascii() or not pin.isdigit():
        raise ValidationFailed(_("The PIN must be exactly six digits."), code="pin_format")
    if pin != repeat:
        raise ValidationFailed(_("The two PINs you entered differ. Please enter them again."), code="pin_mismatch")
    if len(set(pin)) == 1:
        raise ValidationFailed(_("This PIN is too easy to guess: all digits are the same."), code="pin_weak")
    steps = {int(b) - int(a) for a, b in itertools.pairwise(pin)}
    if steps in ({1}, {-1}):
        raise ValidationFailed(_("This PIN is too easy to guess: the digits are in sequence."), code="pin_weak")
    if birth_date is not None and pin in _birth_date_forms(birth_date):
        raise ValidationFailed(_("This PIN is too easy to guess: it is your date of birth."), code="pin_weak")


def pin_block(pin: str, *, account_number: str) -> str:
    """What core banking receives instead of the PIN: the PIN encrypted for it, bound to the account."""
    return pin_block_seal(pin, account_number=account_number)
