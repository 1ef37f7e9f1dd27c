"""The unified social credit code's check character (GB 32100-2015)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.common.checksums import USCC_ALPHABET, uscc_check_char, uscc_is_valid


# Codes published by the companies themselves (business licences on their websites).
@pytest.mark.parametrize("code", ["91330100799655058B", "9144030071526726XG", "91110108551385082Q"])
def test_published_codes_are_valid(code: str) -> None:
    assert uscc_is_valid(code)


@pytest.mark.parametrize(
    "code", ["91330100799655058C", "9144030071526726X", "91330100799655O58B", "91330100799655058b", ""]
)
def test_a_wrong_check_character_length_or_letter_is_invalid(code: str) -> None:
    assert not uscc_is_valid(code)


@given(st.text(alphabet=USCC_ALPHABET, min_size=17, max_size=17), st.integers(0, 16), st.sampled_from(USCC_ALPHABET))
def test_changing_any_one_character_is_detected(body: str, position: int, replacement: str) -> None:
    code = body + uscc_check_char(body)
    assert uscc_is_valid(code)
    changed = code[:position] + replacement + code[position + 1 :]
    assert uscc_is_valid(changed) == (changed == code)
