"""Masking of personal data wherever it is displayed or serialized.

Only these functions decide what a masked number or name looks like, so the
console, the API, exports and log lines all agree: the numbers one by one
(``mask_id_number``, ``mask_mobile``, ``mask_account_number``), names
(``mask_name``), and numbers and names found in free text or in the JSON of
audit data (``mask_text``, ``mask_data``, ``mask_json_text``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from apps.common.checksums import id_number_check_char

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


# --- Names, and personal data in free text and JSON ----------------------------------------

# Audit target types that are people: in their records a plain "name" key holds a
# personal name (a branch's or a queue's "name" is not personal data).
PERSON_TARGET_TYPES = frozenset(
    {
        "customers.customer",
        "customers.blacklistentry",
        "visits.visit",
        "verification.servicesession",  # the visit's label before it had its own app
        "staff.staffprofile",
        "auth.user",
    }
)

# Keys of audit ``data`` whose values are personal names wherever they occur. A plain
# "name" is a person's name only in records about people (``about_a_person``): a
# branch's or a queue's "name" is not personal data.
NAME_KEYS = frozenset(
    {"customer_name", "full_name", "display_name", "holder_name", "legal_representative", "agent_name"}
)
# Common single-character surnames (the most frequent ~250, covering well over
# 95 % of the population) and the compound ones. Free text has no markup
# saying "this is a name", so a name is recognized as a run of 2–4 Chinese
# characters standing alone (not inside a longer run) that starts with a
# surname. This over-masks a few ordinary words of that shape (e.g. 黄金) and
# misses names written inside a sentence; names under NAME_KEYS are masked
# whatever they look like.
_SINGLE_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫阎段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔"
    "向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕"
    "单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚"
    "娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池"
    "查麻苑迟邝"
)
_COMPOUND_SURNAMES = [
    "欧阳",
    "司马",
    "诸葛",
    "上官",
    "东方",
    "皇甫",
    "尉迟",
    "公孙",
    "慕容",
    "长孙",
    "宇文",
    "司徒",
    "夏侯",
    "轩辕",
    "令狐",
    "钟离",
    "端木",
    "独孤",
    "南宫",
    "西门",
    "百里",
    "呼延",
    "万俟",
    "申屠",
    "第五",
    "太史",
    "闻人",
    "澹台",
    "公冶",
    "宗政",
    "濮阳",
    "淳于",
    "单于",
    "赫连",
    "拓跋",
]
_HAN = "\u3400-\u4dbf\u4e00-\u9fff"
_NAME_IN_TEXT = re.compile(
    rf"(?<![{_HAN}])(?:(?P<compound>{'|'.join(_COMPOUND_SURNAMES)})|(?P<single>[{_SINGLE_SURNAMES}]))"
    rf"(?P<given>[{_HAN}]{{1,2}})(?![{_HAN}])"
)
# Digit runs that may be personal numbers: not glued to other letters or digits
# (so hashes and ids made of hex are left alone). 18 characters may end in X.
_NUMBER_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])(?:\d{17}[Xx]|\d{11,19})(?![0-9A-Za-z])")
_LONG_DIGITS = re.compile(r"\d{11}")
_ANY_HAN = re.compile(rf"[{_HAN}]")
# Any key that mask_data would treat as a name: every NAME_KEYS entry and "name" end in `name"`,
# except legal_representative.
_NAME_KEY_IN_JSON = re.compile(r'name":|"legal_representative":')


def mask_name(value: str) -> str:
    """``张三丰`` → ``张**``, ``欧阳娜娜`` → ``欧阳**``, ``John Smith`` → ``J*** *****``."""
    value = value.strip()
    if len(value) <= 1:
        return value
    keep = 2 if value[:2] in _COMPOUND_SURNAMES and len(value) > 2 else 1
    return value[:keep] + "".join(char if char.isspace() else MASK for char in value[keep:])


def _mask_number(number: str) -> str:
    if len(number) == 18 and (number[17] in "Xx" or id_number_check_char(number[:17]) == number[17]):
        return mask_id_number(number)
    if len(number) == 11 and number.startswith("1"):
        return mask_mobile(number)
    if len(number) == 13 and number.startswith("861"):
        return "86" + mask_mobile(number[2:])
    if 16 <= len(number) <= 19:
        return mask_account_number(number)
    return number


def mask_text(value: str) -> str:
    """Mask personal numbers and personal names found in free text.

    11-digit mobile numbers (starting with 1), 18-character ID numbers (a
    valid check character, or ending in X) and 16–19-digit card or account
    numbers are masked with the functions above; names as in
    ``_NAME_IN_TEXT``. Numbers already masked (``138****5678``) stay as they are.
    """
    if not value:
        return value
    # Cheap searches first: most texts (codes, masked values) need neither substitution.
    if _LONG_DIGITS.search(value):
        value = _NUMBER_IN_TEXT.sub(lambda match: _mask_number(match.group(0)), value)
    if _ANY_HAN.search(value):
        value = _NAME_IN_TEXT.sub(lambda match: mask_name(match.group(0)), value)
    return value


def mask_json_text(text: str, data: Any, *, about_a_person: bool) -> str:
    """Masked form of ``text``, the JSON dump of ``data``.

    Masking the dumped text in one pass is several times faster than walking
    the value; only a text with a name key needs the walk (and a new dump).
    """
    if _NAME_KEY_IN_JSON.search(text):
        return dump_json(mask_data(data, about_a_person=about_a_person))
    return mask_text(text)


_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def dump_json(data: Any) -> str:
    return _JSON_ENCODER.encode(data) if data else ""


def mask_data(value: Any, *, about_a_person: bool = False, key: str | None = None) -> Any:
    """Mask a JSON value from audit ``data`` (dicts and lists recursively).

    ``about_a_person``: the record's target is a person (the caller knows
    which target types are), so a plain "name" key holds a personal name.
    """
    if isinstance(value, dict):
        return {
            item_key: mask_data(item, about_a_person=about_a_person, key=str(item_key))
            for item_key, item in value.items()
        }
    if isinstance(value, list):
        return [mask_data(item, about_a_person=about_a_person, key=key) for item in value]
    if isinstance(value, str):
        if key in NAME_KEYS or (about_a_person and key == "name"):
            return mask_name(value)
        return mask_text(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**10:
        # A number stored as a JSON number (e.g. a mobile) is masked like text.
        masked = mask_text(str(value))
        return value if masked == str(value) else masked
    return value
