"""Masking of personal numbers wherever they are displayed or serialized.

Only these functions decide what a masked number looks like, so the console,
the API, exports and log lines all agree.
"""

from __future__ import annotations

MASK = "*"


def _mask_middle(value: str, *, keep_start: int, keep_end: int) -> str:
    if not value:
        return ""
    if len(value) <= keep_start + keep_end:
        # Too short to show anything safely.
        return MASK * len(value)
    hidden = len(value) - keep_start - keep_end
    return value[:keep_start] + MASK * hidden + value[len(value) - keep_end :]


def mask_id_number(value: str | None) -> str:
    """``110101199001011237`` → ``1101**********1237``."""
    return _mask_middle(value or "", keep_start=4, keep_end=4)


def mask_mobile(value: str | None) -> str:
    """``13812345678`` → ``138****5678``."""
    return _mask_middle(value or "", keep_start=3, keep_end=4)


def mask_account_number(value: str | None) -> str:
    """``6217000010001234567`` → ``621700*********4567`` (bank BIN and last four kept)."""
    return _mask_middle(value or "", keep_start=6, keep_end=4)
