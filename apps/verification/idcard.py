"""Reading a PRC resident identity card (front) and a bank card from OCR lines.

Pure domain code: no Django, no models, no OCR engine. It takes the lines an
``OcrEngine`` produced and returns typed values or raises an exception whose
``code`` tells the customer what to do (retake, un-blur, show the other side).

The card front ("portrait side") carries, top to bottom on the left:
姓名 (name) / 性别 (sex) 民族 (ethnicity) / 出生 (birth: YYYY年M月D日) /
住址 (address, up to three lines) and at the bottom 公民身份号码 followed by the
18-character citizen ID number (GB 11643-1999). The portrait is on the right.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Final, Literal
from zoneinfo import ZoneInfo

import opencc
from PIL import Image, ImageOps

from apps.common.images import edge_sharpness

if TYPE_CHECKING:
    from collections.abc import Sequence

    from apps.verification.integrations.ocr import OcrEngine, OcrLine

Sex = Literal["M", "F"]
IdCardUnreadableCode = Literal[
    "not_id_card",
    "cut_off",
    "blurred",
    "bad_checksum",
    "inconsistent",
    "ethnicity_unreadable",
    "address_unreadable",
]

# --- GB 11643 citizen ID number -------------------------------------------------

_ID_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK_CHARACTERS: Final = "10X98765432"
_ID_SHAPE: Final = re.compile(r"\d{17}[\dX]")
_EARLIEST_BIRTH: Final = date(1900, 1, 1)
_CHINA_TIME: Final = ZoneInfo("Asia/Shanghai")


def _today_in_china() -> date:
    # The birth date on the card is a Chinese calendar date; comparing it with
    # the UTC date would reject a baby registered this morning in Beijing.
    return datetime.now(_CHINA_TIME).date()


def _id_check_character(first_17_digits: str) -> str:
    total = sum(int(digit) * weight for digit, weight in zip(first_17_digits, _ID_WEIGHTS, strict=True))
    return _ID_CHECK_CHARACTERS[total % 11]


def _birth_date_in_number(number: str) -> date | None:
    try:
        return date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return None


def id_number_is_valid(number: str) -> bool:
    """True for a well-formed 18-character number: shape, birth date, checksum.

    Expects the canonical form (digits, upper-case final X); OCR clean-up
    (x → X, O → 0) is the parser's job, not this check's.
    """
    if not _ID_SHAPE.fullmatch(number):
        return False
    birth = _birth_date_in_number(number)
    if birth is None or not (_EARLIEST_BIRTH <= birth <= _today_in_china()):
        return False
    return _id_check_character(number[:17]) == number[17]


@dataclass(frozen=True)
class IdNumberFacts:
    """What the number itself says: 6-digit region code, birth date, sex."""

    region_code: str
    birth_date: date
    sex: Sex


def id_number_facts(number: str) -> IdNumberFacts:
    """Decode a valid ID number; raises ValueError when ``id_number_is_valid`` is False."""
    if not id_number_is_valid(number):
        raise ValueError("not a valid citizen ID number")
    birth = _birth_date_in_number(number)
    assert birth is not None  # guaranteed by id_number_is_valid
    # The 17th character is the sequence code: odd for men, even for women.
    sex: Sex = "M" if int(number[16]) % 2 == 1 else "F"
    return IdNumberFacts(region_code=number[:6], birth_date=birth, sex=sex)


# --- The card front -------------------------------------------------------------


@dataclass(frozen=True)
class IdCardFront:
    name: str
    sex: Sex
    ethnicity: str
    birth_date: date
    address: str
    id_number: str
    # Positions in ``name`` of characters the recogniser was not sure of
    # (``MIN_CHARACTER_CONFIDENCE``): a rare character (劼, 湉) and its
    # common look-alike (劫) score alike, so such a name is not refused but
    # must be confirmed by the bank's record, and the customer is shown which
    # character to check.
    name_uncertain: tuple[int, ...] = ()
    # The recogniser's score of each character of ``name`` (the second read
    # of a doubtful name compares its own against them).
    name_scores: tuple[float, ...] = dataclasses.field(default=(), compare=False, repr=False)


_UNREADABLE_MESSAGES: Final[dict[IdCardUnreadableCode, str]] = {
    "not_id_card": "No ID card front was found in the photo. Photograph the side with your portrait.",
    "cut_off": "Part of the ID card is missing from the photo. Fit the whole card inside the frame.",
    "blurred": "The photo of the ID card is blurred. Hold the phone still and retake it.",
    "bad_checksum": "The ID number could not be read reliably. Retake the photo in better light.",
    "inconsistent": "The birth date or sex printed on the card does not match the ID number.",
    "ethnicity_unreadable": "The ethnicity on the card could not be read. Retake the photo in better light.",
    "address_unreadable": "The address on the card could not be read. Retake the photo in better light.",
}


class IdCardUnreadable(Exception):
    """The photo cannot be turned into an ``IdCardFront``; ``code`` says why."""

    def __init__(self, code: IdCardUnreadableCode, message: str | None = None) -> None:
        self.code: IdCardUnreadableCode = code
        self.message = message or _UNREADABLE_MESSAGES[code]
        # What OCR read, for a benchmark's or an operator's diagnosis (never shown to the customer).
        self.lines: Sequence[OcrLine] = ()
        super().__init__(self.message)


# The 56 officially recognised ethnic groups as printed on the card (without 族).
ETHNICITIES: Final = (
    "汉", "蒙古", "回", "藏", "维吾尔", "苗", "彝", "壮", "布依", "朝鲜", "满", "侗", "瑶", "白",
    "土家", "哈尼", "哈萨克", "傣", "黎", "傈僳", "佤", "畲", "高山", "拉祜", "水", "东乡", "纳西",
    "景颇", "柯尔克孜", "土", "达斡尔", "仫佬", "羌", "布朗", "撒拉", "毛南", "仡佬", "锡伯", "阿昌",
    "普米", "塔吉克", "怒", "乌孜别克", "俄罗斯", "鄂温克", "德昂", "保安", "裕固", "京", "塔塔尔",
    "独龙", "鄂伦春", "赫哲", "门巴", "珞巴", "基诺",
)  # fmt: skip


# Label patterns, tolerant of a few plausible confusions between similar glyphs
# (址/趾/扯, 码/玛, 份/分) and of a partially read number label. OCR spaces
# inside labels ("姓  名") are already gone after normalisation. A label may be
# split across two OCR boxes ("姓" | "名刘军"), which the stream joins with a
# line break: every gap between two characters of a label may be one.
def _label_pattern(*alternatives: str) -> re.Pattern[str]:
    """Alternatives written as sequences of single characters or [classes], with ? allowed after one."""
    token = re.compile(r"\[[^\]]+\]\??|.\??")
    return re.compile("|".join("\n?".join(token.findall(alternative)) for alternative in alternatives))


_LABELS: Final[dict[str, re.Pattern[str]]] = {
    "name": _label_pattern("姓名"),
    "sex": _label_pattern("性别"),
    "ethnicity": _label_pattern("民族"),
    "birth": _label_pattern("出生"),
    "address": _label_pattern("住[址趾扯]"),
    "number": _label_pattern("公民身[份分]号?[码玛]?", "身[份分]号码"),
}

# Below this per-character recognition score (``OcrLine.char_scores``) a
# character of the name is "uncertain". The line's score is only a mean:
# 龚劼霞 read as 龚劫霞 scored 0.83 as a line with 劫 alone at 0.50. On the
# phone-photo bench's development seed (2027, straightened cards, detector
# at 736 px) the 94 characters of common names read scored ≥ 0.98, while rare
# characters read right scored 0.51–1.0; every misread one seen on the
# development and held-out seeds (湉 → 活, 劼 → 劫) scored below 0.90. The
# score flags a doubtful character but cannot tell right from wrong. So an uncertain character is marked (``IdCardFront.name_uncertain``)
# for the bank's record to confirm, never refused nor trusted on its own.
MIN_CHARACTER_CONFIDENCE: Final = 0.90

# Below this a digit of the ID number means a retake (``bad_checksum``):
# the checksum lets one wrong digit in eleven through. Lower than for the
# name because the number has more checks (checksum, the printed birth date
# and sex) and sound digits of a noisy photo (noise σ 14) score 0.89–0.99.
MIN_ID_DIGIT_CONFIDENCE: Final = 0.75

# A real address names at least a city and a district; fewer characters read means lost text.
_MIN_ADDRESS_CHARACTERS: Final = 4

# Words on the *back* of the card (the national-emblem side).
_BACK_SIDE_WORDS: Final = ("居民身份证", "签发机关", "有效期限", "中华人民共和国")

# OCR look-alikes inside a run that should be all digits.
_DIGIT_LOOKALIKES: Final = str.maketrans(
    {"O": "0", "o": "0", "Q": "0", "D": "0", "I": "1", "l": "1", "|": "1", "i": "1", "L": "1",
     "Z": "2", "z": "2", "S": "5", "s": "5", "B": "8", "G": "6", "b": "6", "x": "X"}
)  # fmt: skip
_NUMBER_RUN: Final = re.compile(r"[0-9OoQDIl|iLZzSsBGbXx]+")
# Every CJK ideograph a name may hold: the URO, Extension A and the
# supplementary planes' Extensions B–H (U+20000–U+323AF; the 2013 standard list
# puts 𬀩 and 𬱟 there), and the middle dot of transliterated minority names.
# A character outside these is dropped from a name only as OCR noise (a
# stray Latin letter or symbol), never because it is rare.
_CJK_RANGES: Final = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U000323af"
_CJK_OR_MIDDLE_DOT: Final = re.compile(f"[{_CJK_RANGES}·]+")
_DATE_IN_WORDS: Final = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日?")
_DATE_LOOSE: Final = re.compile(r"(\d{4})\D{1,2}(\d{1,2})\D{1,2}(\d{1,2})")


# Characters outside GB 2312 that the 2013 standard list (通用规范汉字表) keeps
# for names; OpenCC would "simplify" them (昇 → 升). Extend when one turns up.
_STANDARD_NAME_CHARACTERS_OUTSIDE_GB2312: Final = frozenset("昇")


@cache
def _traditional_to_simplified() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def _is_gb2312(character: str) -> bool:
    try:
        character.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


@lru_cache(maxsize=8192)
def _simplified_character(character: str) -> str:
    """The simplified form of a character the recogniser read as traditional.

    PP-OCR's dictionary holds both scripts and now and then reads 强 as 強 or
    汉 as 漢, while the card is always printed in simplified characters. Only
    characters outside GB 2312 (the simplified character set) are converted,
    and only *into* GB 2312: OpenCC would also turn 乾 into 干 and 於 into 于
    (both legitimate in names), and it maps rare name characters such as 暐
    and 頔 to Extension-B forms (U+2C029, U+2CC56) that neither the card font
    nor the bank's record need agree on; those stay as read, and
    ``names_equivalent`` treats both forms as one when matching the record.
    """
    if not ("\u3400" <= character <= "\u9fff") or _is_gb2312(character):
        return character
    if character in _STANDARD_NAME_CHARACTERS_OUTSIDE_GB2312:
        return character
    converted = _traditional_to_simplified().convert(character)
    return converted if len(converted) == 1 and _is_gb2312(converted) else character


@lru_cache(maxsize=8192)
def _name_character_key(character: str) -> str:
    """One key for the traditional and simplified forms of a character (暐 and 𬀩 alike)."""
    converted = _traditional_to_simplified().convert(character)
    return converted if len(converted) == 1 else character


def names_equivalent(read: str, recorded: str) -> bool:
    """True when two names are the same name: same characters, up to script form and spacing.

    Every character must correspond one to one; 暐 on the card and 𬀩 in the
    bank's record (the same character in traditional and simplified form) are
    the same, 劫 and 劼 are not.
    """
    first = [_name_character_key(c) for c in unicodedata.normalize("NFKC", read) if not c.isspace()]
    second = [_name_character_key(c) for c in unicodedata.normalize("NFKC", recorded) if not c.isspace()]
    return first == second


def _normalise(text: str) -> str:
    """Full-width → ASCII (NFKC), no whitespace, one middle dot, simplified script."""
    return _normalise_scored(text, (1.0,) * len(text))[0]


@lru_cache(maxsize=4096)
def _normalise_character(character: str) -> str:
    text = unicodedata.normalize("NFKC", character)
    text = re.sub(r"\s+", "", text)
    # Minority names are written with a middle dot; OCR returns any of these.
    text = re.sub(r"[•・‧∙⋅.]", "·", text)
    return "".join(_simplified_character(piece) for piece in text)


def _normalise_scored(text: str, scores: Sequence[float]) -> tuple[str, list[float]]:
    """``text`` normalised character by character, each output character keeping its source's score."""
    pieces: list[str] = []
    kept_scores: list[float] = []
    for character, score in zip(text, scores, strict=True):
        piece = _normalise_character(character)
        pieces.append(piece)
        kept_scores.extend([score] * len(piece))
    return "".join(pieces), kept_scores


@dataclass(frozen=True)
class _IdCandidate:
    number: str
    position: int


def _id_number_candidates(stream: str) -> list[_IdCandidate]:
    """18-character windows of digit-like runs, O/0 and I/1 confusions undone.

    A run must contain at least 12 true digits so that Latin words in other
    text (or a noisy label) are never "corrected" into a number.
    """
    candidates: list[_IdCandidate] = []
    for match in _NUMBER_RUN.finditer(stream):
        run = match.group()
        if sum(character.isdigit() for character in run) < 12 or len(run) < 18:
            continue
        mapped = run.translate(_DIGIT_LOOKALIKES)
        for start in range(len(mapped) - 17):
            window = mapped[start : start + 18]
            if _ID_SHAPE.fullmatch(window):
                candidates.append(_IdCandidate(window, match.start() + start))
    return candidates


def _label_positions(stream: str) -> list[tuple[int, int, str]]:
    """(start, end, field) of the first occurrence of each label, in stream order."""
    found: list[tuple[int, int, str]] = []
    for field, pattern in _LABELS.items():
        match = pattern.search(stream)
        if match:
            found.append((match.start(), match.end(), field))
    return sorted(found)


def _field_values(stream: str, labels: list[tuple[int, int, str]]) -> dict[str, tuple[str, int]]:
    """(text, offset in stream) between each label and the next label (may span lines)."""
    values: dict[str, tuple[str, int]] = {}
    for index, (_start, end, field) in enumerate(labels):
        stop = labels[index + 1][0] if index + 1 < len(labels) else len(stream)
        values[field] = (stream[end:stop], end)
    return values


def _clean_name(value: str) -> tuple[str, int] | None:
    """(name, offset in value) from the first line of the value that has CJK text.

    Stray symbols and Latin letters around the name are dropped.
    """
    offset = 0
    for segment in value.split("\n"):
        parts = _CJK_OR_MIDDLE_DOT.findall(segment)
        if parts:
            name = "".join(parts).strip("·")
            # Han names are 2–4 characters; transliterated minority names are longer.
            return (name, offset) if 2 <= len(name) <= 30 else None
        offset += len(segment) + 1
    return None


def _clean_sex(value: str) -> Sex | None:
    for character in value:
        if character == "男":
            return "M"
        if character == "女":
            return "F"
    return None


def _clean_ethnicity(value: str) -> str | None:
    """One of the 56 official names, or None when the text is none of them.

    Never the raw text: what is not an ethnic group is a misread (or a stray
    neighbour, such as the start of the birth date line), and it must be
    retaken, not stored (``read_ethnicity`` holds at most a few characters).
    """
    text = "".join(_CJK_OR_MIDDLE_DOT.findall(value))
    text = text.removesuffix("族")
    # Longest first so that 土家 wins over 土, 维吾尔 is not read as 维.
    for ethnicity in sorted(ETHNICITIES, key=len, reverse=True):
        if text.startswith(ethnicity):
            return ethnicity
    return None


def _parse_card_date(value: str) -> tuple[date | None, int]:
    """(date, end offset of the date in ``value``); (None, 0) when absent or impossible."""
    digits_fixed = value.translate(str.maketrans("OoIl|", "00111"))
    match = _DATE_IN_WORDS.search(digits_fixed) or _DATE_LOOSE.search(digits_fixed)
    if not match:
        return None, 0
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3))), match.end()
    except ValueError:
        return None, 0


# What may stay in an address besides ideographs, letters and digits: the
# hyphen of "3-2-101", "#" and brackets. Everything else that OCR returns
# around or inside it (commas, colons, quotes, dots from the guilloche) is noise.
_ADDRESS_NOISE: Final = re.compile(f"[^{_CJK_RANGES}0-9A-Za-z\\-#()（）]")


def _clean_address(value: str) -> str:
    # Cut before an ID number that ended up in the address (label missed by OCR).
    digits = re.search(r"[0-9Xx]{15,}", value)
    if digits:
        value = value[: digits.start()]
    value = _ADDRESS_NOISE.sub("", value.replace("\n", ""))
    return value.strip("-#")


# Where the name line sits on a straightened card front, as fractions of its
# width and height (cardfinder.CARD_WORKING_SIZE): the first text row, left
# of the portrait. It starts at the card's left edge, not right of the 姓名
# label: a label split in two ("姓" lost in glare, "名陈暐") leaves 名 glued
# to the name, and that line starts between the label and the value column
# (0.09 of the width on the development seed 4242, just left of the 0.10
# the band started at before: the name was then not found, ``cut_off``).
# Label characters are stripped from the line anyway.
NAME_BAND: Final = (0.0, 0.04, 0.62, 0.20)


def _name_by_position(lines: Sequence[OcrLine], card_size: tuple[int, int]) -> tuple[str, list[float]] | None:
    """(name, one score per character) of the line in the name's place on a straightened card.

    Label characters are removed.
    """
    width, height = card_size
    left, top, right, bottom = NAME_BAND
    for line in lines:
        if not line.box:
            continue
        center_y = (line.top + line.bottom) / 2
        if top * height <= center_y <= bottom * height and left * width <= line.left < right * width:
            text, scores = _normalise_scored(line.text, line.character_scores())
            label = re.match(r"^[姓名]*", text)
            skip = label.end() if label else 0
            text, scores = text[skip:], scores[skip:]
            found = _clean_name(text)
            if found is not None:
                name, offset = found
                return name, _name_character_scores(text, scores, offset)
    return None


def _name_character_scores(text: str, scores: Sequence[float], offset: int) -> list[float]:
    """One score per character of the name ``_clean_name`` takes from the line of ``text`` at ``offset``."""
    end = text.find("\n", offset)
    end = len(text) if end < 0 else end
    kept = [
        (character, score)
        for character, score in zip(text[offset:end], scores[offset:end], strict=True)
        if _CJK_OR_MIDDLE_DOT.fullmatch(character)
    ]
    # ``_clean_name`` strips middle dots from both ends.
    while kept and kept[0][0] == "·":
        kept.pop(0)
    while kept and kept[-1][0] == "·":
        kept.pop()
    return [score for _character, score in kept]


def _read_name(
    fields: dict[str, tuple[str, int]],
    stream: str,
    *,
    stream_scores: list[float],
    lines: Sequence[OcrLine],
    card_size: tuple[int, int] | None,
) -> tuple[str, list[float]]:
    """(name, one recognition score per character): after the 姓名 label, else by position on a straightened card."""
    if "name" in fields:
        name_value, name_value_offset = fields["name"]
        found = _clean_name(name_value)
        if found is not None:
            name, offset_in_value = found
            start = name_value_offset + offset_in_value
            return name, _name_character_scores(stream, stream_scores, start)
    # The 姓名 label was not read (glare, a fold): on a straightened card the
    # name is still where every card prints it.
    by_position = _name_by_position(lines, card_size) if card_size is not None else None
    if by_position is None:
        raise IdCardUnreadable("cut_off")
    return by_position


def _text_stream(lines: Sequence[OcrLine]) -> tuple[str, list[float]]:
    """The normalised non-empty lines joined by line breaks, and one score per character of it (breaks: 1.0)."""
    texts: list[str] = []
    stream_scores: list[float] = []
    for line in lines:
        text, scores = _normalise_scored(line.text, line.character_scores())
        if text:
            if texts:
                stream_scores.append(1.0)
            texts.append(text)
            stream_scores.extend(scores)
    return "\n".join(texts), stream_scores


def _read_id_number(stream: str, labels: list[tuple[int, int, str]], stream_scores: list[float]) -> str:
    """The citizen ID number: the first valid one, after the number's label when it was read."""
    number_label_end = next((end for _start, end, field in labels if field == "number"), None)
    candidates = _id_number_candidates(stream)
    if number_label_end is not None:
        # Prefer what follows the label; a number elsewhere is a fallback
        # (the label itself is sometimes misread, the number rarely).
        after_label = [candidate for candidate in candidates if candidate.position >= number_label_end]
        candidates = after_label or candidates
    if not candidates:
        raise IdCardUnreadable("cut_off")
    valid = [candidate for candidate in candidates if id_number_is_valid(candidate.number)]
    if not valid:
        raise IdCardUnreadable("bad_checksum")
    # The checksum lets one wrong digit in eleven through: a digit the
    # recogniser itself doubted is not left to that chance.
    if min(stream_scores[valid[0].position : valid[0].position + 18]) < MIN_ID_DIGIT_CONFIDENCE:
        raise IdCardUnreadable("bad_checksum")
    return valid[0].number


def parse_id_card_front(lines: Sequence[OcrLine], *, card_size: tuple[int, int] | None = None) -> IdCardFront:
    """Parse OCR lines (reading order) of an ID card front, or raise IdCardUnreadable.

    Fields are found by their labels; with ``card_size`` (the lines come from
    a straightened card, ``cardfinder.rectify_card``) the name is also found
    by its position when its label was not read.

    Decisions, in order:
    - no front-side label at all → ``not_id_card`` (also for the card's back);
    - labels but no 18-character number, or no name → ``cut_off``;
    - a number whose checksum/birth date is wrong → ``bad_checksum``;
    - an ID number with a digit scored below ``MIN_ID_DIGIT_CONFIDENCE``
      → ``bad_checksum``; a name with every character below it → ``blurred``
      (a wrong name would pass every other check); some below it → their
      positions in ``name_uncertain``, for the bank's record to confirm;
    - birth date or sex printed on the card disagree with the number →
      ``inconsistent``. When OCR could not read the printed sex or birth date
      at all, the number's (checksummed) value is used instead.
    - an address shorter than a real one (both labels missed) →
      ``address_unreadable``; an ethnicity that is none of the 56 →
      ``ethnicity_unreadable`` (never stored as read).
    """
    stream, stream_scores = _text_stream(lines)
    labels = _label_positions(stream)
    if not labels:
        if any(word in stream for word in _BACK_SIDE_WORDS):
            raise IdCardUnreadable(
                "not_id_card", "This is the back of the ID card. Photograph the side with your portrait."
            )
        raise IdCardUnreadable("not_id_card")

    fields = _field_values(stream, labels)
    values = {field: text for field, (text, _offset) in fields.items()}
    id_number = _read_id_number(stream, labels, stream_scores)
    facts = id_number_facts(id_number)

    name, name_scores = _read_name(fields, stream, stream_scores=stream_scores, lines=lines, card_size=card_size)
    # The name has no checksum: a blurred photo can yield a wrong but
    # plausible name (邱淑贞 read as 邱源贞), and a rare character a common
    # look-alike (劼 → 劫). The recognition scores are the only warning:
    # every character doubtful is a blurred photo (retake); some doubtful
    # are marked for the bank's record to confirm (never a guess accepted).
    name_uncertain = tuple(index for index, score in enumerate(name_scores) if score < MIN_CHARACTER_CONFIDENCE)
    if len(name_scores) != len(name) or len(name_uncertain) == len(name):
        raise IdCardUnreadable("blurred")

    printed_sex = _clean_sex(values.get("sex", ""))
    printed_birth, birth_end = _parse_card_date(values.get("birth", ""))
    if (printed_sex is not None and printed_sex != facts.sex) or (
        printed_birth is not None and printed_birth != facts.birth_date
    ):
        raise IdCardUnreadable("inconsistent")

    if "address" in values:
        address = _clean_address(values["address"])
    else:
        # OCR missed the 住址 label: the address then trails the birth date.
        address = _clean_address(values.get("birth", "")[birth_end:]) if printed_birth else ""
    # Every card has an address of several characters; none read means the
    # photo lost it (both labels missed, glare), not that there is none.
    if len(address) < _MIN_ADDRESS_CHARACTERS:
        raise IdCardUnreadable("address_unreadable")

    ethnicity = _clean_ethnicity(values.get("ethnicity", ""))
    if ethnicity is None:
        raise IdCardUnreadable("ethnicity_unreadable")

    return IdCardFront(
        name=name,
        sex=printed_sex or facts.sex,
        ethnicity=ethnicity,
        birth_date=printed_birth or facts.birth_date,
        address=address,
        id_number=id_number,
        name_uncertain=name_uncertain,
        name_scores=tuple(name_scores),
    )


# The text detector's working size on a straightened card (856 px wide):
# about 0.74 of the pixels of the card's own size (and of the detector's
# cost). Not smaller: at 640 px the detector merged the 姓名 label and the
# name into one box on 3 % of the development seed's cards, and the
# recogniser then read a rare character after the gap as a look-alike
# (湉 → 活); at 736 px they stay apart.
STRAIGHTENED_DETECTION_SIDE: Final = 736


@dataclass(frozen=True)
class CardReading:
    """A card front read from a photo, and the image it was read from (the portrait is cut from it)."""

    front: IdCardFront
    image: Image.Image


def read_id_card_front(engine: OcrEngine, image: Image.Image, *, straightened: bool) -> CardReading:
    """Sharpness gate → OCR → parse, for a photo or a straightened card (``cardfinder.rectify_card``).

    A straightened card is read without the recogniser's per-line 180°
    check (a card upside down would then be read line by line but in reverse
    order): when no front-side label is read at all, the card is turned
    180° and read once more. Raises ``IdCardUnreadable`` (its ``lines`` hold
    what was read).
    """
    ensure_card_photo_is_sharp(image)
    if straightened:
        reading = _read_straightened_quickly(engine, image)
        if reading is not None:
            return reading
    card_size = image.size if straightened else None
    detection_side = STRAIGHTENED_DETECTION_SIDE if straightened else None
    lines = engine.read(image, detection_side=detection_side, upright=straightened)
    try:
        return CardReading(_parsed_front(engine, image, lines, card_size=card_size), image)
    except IdCardUnreadable as error:
        error.lines = lines
        if not straightened or error.code != "not_id_card":
            raise
        upright_error = error
    turned = image.rotate(180)
    turned_lines = engine.read(turned, detection_side=detection_side, upright=True)
    try:
        return CardReading(_parsed_front(engine, turned, turned_lines, card_size=card_size), turned)
    except IdCardUnreadable as error:
        if error.code == "not_id_card":
            raise upright_error from None  # e.g. "this is the back of the card"
        error.lines = turned_lines
        raise


def _parsed_front(
    engine: OcrEngine, image: Image.Image, lines: Sequence[OcrLine], *, card_size: tuple[int, int] | None
) -> IdCardFront:
    """The front parsed from ``image``'s lines, a doubtful name read once more (``_reread_name``)."""
    front = parse_id_card_front(lines, card_size=card_size)
    return _reread_name(engine, image, lines, front) if front.name_uncertain else front


def _read_straightened_quickly(engine: OcrEngine, image: Image.Image) -> CardReading | None:
    """A straightened card read the quick way, its name's line read again exactly; None when that does not settle it.

    The quick read (``OcrEngine.read(quick=True)``) costs about a sixth
    less CPU per card (0.58 → 0.50 s p50 on the phone bench); the name, the one field whose rare characters it can
    read differently, is then read as the standard read would have read it.
    Anything it leaves unsettled (a field not found, the name's line not
    found, that line no longer read) returns None and the card is read the
    standard way, so a quick read never turns a card away.
    """
    lines = engine.read(image, detection_side=STRAIGHTENED_DETECTION_SIDE, upright=True, quick=True)
    try:
        front = parse_id_card_front(lines, card_size=image.size)
    except IdCardUnreadable:
        return None
    name_line = _name_line(lines, front.name)
    exact = engine.reread_exactly(name_line) if name_line is not None else None
    if exact is None:
        return None
    lines = [exact if line is name_line else line for line in lines]
    try:
        return CardReading(_parsed_front(engine, image, lines, card_size=image.size), image)
    except IdCardUnreadable:
        return None


# The second read of a doubtful name: its line cut from the image with this
# margin (fractions of the line's height) and scaled to this height before
# the recogniser (which reads lines 48 px high).
NAME_REREAD_MARGIN: Final = 0.15
NAME_REREAD_HEIGHT: Final = 96


def _name_line(lines: Sequence[OcrLine], name: str) -> OcrLine | None:
    """The line the name was read from: the first whose text holds it."""
    for line in lines:
        text, _scores = _normalise_scored(line.text, line.character_scores())
        if name in text:
            return line
    return None


def _reread_name(engine: OcrEngine, image: Image.Image, lines: Sequence[OcrLine], front: IdCardFront) -> IdCardFront:
    """A name with doubtful characters, read once more from its line alone, cut tighter and sharper.

    Only the doubtful characters may change, to what the second read is more
    confident of than the first, and they stay marked doubtful: the second read offers a better
    candidate for the bank's record to confirm (湉 rather than its look-alike
    活), it never turns a doubt into an accepted guess.
    """
    line = _name_line(lines, front.name)
    if line is None or not line.box:
        return front
    xs = [x for x, _y in line.box]
    height = line.bottom - line.top
    margin = height * NAME_REREAD_MARGIN
    crop = image.crop(
        (
            max(0, round(min(xs) - margin)),
            max(0, round(line.top - margin)),
            min(image.width, round(max(xs) + margin)),
            min(image.height, round(line.bottom + margin)),
        )
    )
    if crop.height < 4 or crop.width < 4:
        return front
    scale = NAME_REREAD_HEIGHT / crop.height
    crop = crop.resize((max(1, round(crop.width * scale)), NAME_REREAD_HEIGHT), Image.Resampling.LANCZOS)
    crop = ImageOps.autocontrast(crop.convert("L"), cutoff=1).convert("RGB")
    reread = engine.read_line(crop)
    if reread is None:
        return front
    text, scores = _normalise_scored(reread.text, reread.character_scores())
    label = re.match(r"^[姓名]*", text)
    skip = label.end() if label else 0
    found = _clean_name(text[skip:])
    if found is None:
        return front
    name, offset = found
    name_scores = _name_character_scores(text[skip:], scores[skip:], offset)
    if len(name) != len(front.name) or len(name_scores) != len(name):
        return front
    characters = list(front.name)
    scores_now = list(front.name_scores) if len(front.name_scores) == len(characters) else [0.0] * len(characters)
    for index in front.name_uncertain:
        # The read more confident of its character wins. A rare character and
        # its look-alike can nearly tie on the whole card (活 0.46 against
        # 湉 0.42 as runner-up) while the tight crop reads 湉 at 0.6–0.75,
        # below the floor but the better read; and where the crop is the
        # worse read (活 0.72, the card 湉 0.84) the first read stands.
        # Either way the record confirms the character, so a wrong pick
        # costs a retake, never a wrong accept.
        if name_scores[index] > scores_now[index]:
            characters[index] = name[index]
            scores_now[index] = name_scores[index]
    return dataclasses.replace(front, name="".join(characters), name_scores=tuple(scores_now))


# --- Photo sharpness ------------------------------------------------------------

# Lowest ``edge_sharpness`` accepted for a card photo. Calibrated on synthetic
# cards (tests/fixtures/cardgen.py) with and without portrait, noise σ 0–20,
# contrast ×0.4: sharp 38.6–39.3; Gaussian blur radius 1.5: 22.4–22.6 and
# radius 2: 19.2–20.4 (both still read exactly); radius 2.5: 16.3–17.7 and
# radius 3: 14.3–15.9, where the recogniser starts returning wrong names with
# high confidence (萧亚轩 → 薰亚轩). Re-check against real photos when we have them.
MIN_CARD_SHARPNESS: Final = 18.0


def ensure_card_photo_is_sharp(image: Image.Image, *, min_sharpness: float = MIN_CARD_SHARPNESS) -> None:
    """Raise ``IdCardUnreadable("blurred")`` for a photo too blurred to trust its OCR.

    Call it before OCR: on a blurred photo the recogniser does not fail, it
    guesses, and a guessed name has no checksum to catch it.
    """
    if edge_sharpness(image) < min_sharpness:
        raise IdCardUnreadable("blurred")


# --- Bank card --------------------------------------------------------------------


class CardNumberUnreadable(Exception):
    """No Luhn-valid 16–19 digit card number was found in the OCR lines."""

    def __init__(self, message: str = "The card number could not be read. Retake the photo of the bank card.") -> None:
        self.code = "card_number_unreadable"
        self.message = message
        super().__init__(message)


def luhn_is_valid(number: str) -> bool:
    """Luhn (mod 10) check used by UnionPay/Visa/Mastercard numbers; digits only."""
    if not number.isdigit() or not number.isascii() or len(number) < 2:
        return False
    total = 0
    for index, character in enumerate(reversed(number)):
        digit = int(character)
        if index % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


_CARD_GROUPS_ON_A_LINE: Final = re.compile(r"\d(?:[\d ]*\d)?")


def parse_bank_card_number(lines: Sequence[OcrLine]) -> str:
    """The card number (digits only) from the OCR lines of a bank card's front.

    A number is a 16–19 digit run, spaces allowed between groups, that passes
    Luhn. Runs on a single line are tried first; only then are digit groups
    of consecutive lines joined, because OCR sometimes splits "6222 0212
    3456 7890" into separate boxes (and joining across lines first could glue
    the expiry date onto a number).
    """
    texts = [unicodedata.normalize("NFKC", line.text) for line in lines]
    texts = [text.translate(str.maketrans("OoIl", "0011")) for text in texts]

    for text in texts:
        for match in _CARD_GROUPS_ON_A_LINE.finditer(text):
            digits = match.group().replace(" ", "")
            if 16 <= len(digits) <= 19 and luhn_is_valid(digits):
                return digits

    groups = [group for text in texts for group in re.findall(r"\d+", text)]
    for start in range(len(groups)):
        joined = ""
        for group in groups[start:]:
            joined += group
            if len(joined) > 19:
                break
            if 16 <= len(joined) <= 19 and luhn_is_valid(joined):
                return joined
    raise CardNumberUnreadable


# --- Portrait -------------------------------------------------------------------

# Where the printed portrait sits on the card front, as fractions of the card's
# width and height (the card is 85.6 × 54 mm; the photo is ~26 × 32 mm near the
# right edge, below the top margin).
PORTRAIT_BOX: Final = (0.62, 0.10, 0.94, 0.72)


def crop_portrait(image: Image.Image) -> Image.Image:
    """Cut the printed portrait out of a photo of the card front.

    Assumes the photo is the card itself, roughly straight and filling the
    frame (the capture screen draws a card-shaped guide and we OCR-check the
    result). It does not look for the card's edges; a face detector run on the
    crop afterwards tolerates the remaining few percent of misalignment.
    """
    width, height = image.size
    left, top, right, bottom = PORTRAIT_BOX
    return image.crop((round(left * width), round(top * height), round(right * width), round(bottom * height)))
