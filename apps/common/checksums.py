"""Check characters: PRC resident ID numbers (GB 11643-1999) and bank card numbers (Luhn)."""

from __future__ import annotations

from datetime import date

from django.utils import timezone

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"


def id_number_check_char(first_seventeen: str) -> str:
    """The 18th character for 17 leading digits."""
    if len(first_seventeen) != 17 or not first_seventeen.isdigit():
        raise ValueError("Need exactly 17 digits.")
    total = sum(int(digit) * weight for digit, weight in zip(first_seventeen, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def id_number_birth_date(number: str) -> date:
    """Birth date encoded in digits 7–14; ValueError if it is not a real date."""
    return date(int(number[6:10]), int(number[10:12]), int(number[12:14]))


def id_number_is_valid(number: str, *, today: date | None = None) -> bool:
    """18 characters, a real birth date not in the future nor before 1900, and the right check character."""
    number = number.strip().upper()
    if len(number) != 18 or not number[:17].isdigit() or number[17] not in "0123456789X":
        return False
    try:
        born = id_number_birth_date(number)
    except ValueError:
        return False
    if not date(1900, 1, 1) <= born <= (today or timezone.localdate()):
        return False
    return id_number_check_char(number[:17]) == number[17]


def luhn_check_digit(partial: str) -> str:
    """The digit that makes ``partial`` + digit pass the Luhn check."""
    total = 0
    # Walking from the right, the digit next to the check digit is doubled first.
    for index, char in enumerate(reversed(partial)):
        digit = int(char)
        if index % 2 == 0:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return str((10 - total % 10) % 10)


def luhn_is_valid(number: str) -> bool:
    return len(number) >= 2 and number.isdigit() and luhn_check_digit(number[:-1]) == number[-1]


# The unified social credit code of an organisation (GB 32100-2015): 18
# characters from this alphabet (no I, O, S, V, Z); the last is a check
# character over the first 17 with these weights, modulo 31.
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def uscc_check_char(first_seventeen: str) -> str:
    total = sum(USCC_ALPHABET.index(char) * weight for char, weight in zip(first_seventeen, _USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def uscc_is_valid(code: str) -> bool:
    """True for an 18-character unified social credit code whose check character is right."""
    if len(code) != 18 or any(char not in USCC_ALPHABET for char in code):
        return False
    return uscc_check_char(code[:17]) == code[17]
