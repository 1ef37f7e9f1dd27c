"""Masking of personal names and numbers, alone, in free text and in audit data."""

from __future__ import annotations

import pytest

from apps.common.masking import mask_data, mask_name, mask_text


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("13812345678", "138****5678"),
        ("手机 13812345678，请回电", "手机 138****5678，请回电"),
        ("+8613812345678", "+86138****5678"),
        ("110101199001011237", "1101**********1237"),
        ("证件 11010119900101123X", "证件 1101**********123X"),
        ("card 6217860000000000003", "card 621786*********0003"),
        ("6217860000000003", "621786******0003"),
        # Already masked values, and numbers that are no personal numbers, stay.
        ("138****5678 / 1101**********1237", "138****5678 / 1101**********1237"),
        ("sequence 123456789012, attempt 3", "sequence 123456789012, attempt 3"),
        ("hash 4f2a13812345678c9d", "hash 4f2a13812345678c9d"),
        # Names: a short run of Chinese characters starting with a surname.
        ("T0000001 张三丰", "T0000001 张**"),
        ("张三", "张*"),
        ("欧阳娜娜 visit", "欧阳** visit"),
        ("9001 测试支行", "9001 测试支行"),
        ("", ""),
    ],
)
def test_mask_text_hides_personal_numbers_and_names(text: str, masked: str) -> None:
    assert mask_text(text) == masked


def test_names_under_name_keys_are_masked_whatever_the_surname() -> None:
    assert mask_name("禤天") == "禤*"
    assert mask_name("John Smith") == "J*** *****"
    assert mask_data(
        {"after": {"name": "禤天"}, "mobile": 13812345678, "nested": [{"customer_name": "司马光"}], "ok": True, "n": 3},
        about_a_person=True,
    ) == {"after": {"name": "禤*"}, "mobile": "138****5678", "nested": [{"customer_name": "司马*"}], "ok": True, "n": 3}


def test_the_name_of_a_branch_or_queue_is_not_a_personal_name() -> None:
    assert mask_data({"after": {"name": "测试支行", "city": "滨海"}}) == {"after": {"name": "测试支行", "city": "滨海"}}
    # The surname heuristic still applies to free text there.
    assert mask_data({"note": "王芳"}) == {"note": "王*"}
