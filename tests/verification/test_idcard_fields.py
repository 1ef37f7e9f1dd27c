"""Names in full Unicode, split labels, the 56 ethnic groups and clean addresses (pure parsing, no OCR)."""

from __future__ import annotations

import pytest
from PIL import Image

from apps.verification.idcard import (
    ETHNICITIES,
    NAME_REREAD_HEIGHT,
    IdCardFront,
    IdCardUnreadable,
    _reread_name,
    names_equivalent,
    parse_id_card_front,
    read_id_card_front,
)
from apps.verification.integrations.ocr import OcrLine

VALID_NUMBER = "110101199001011237"  # Beijing, 1990-01-01, male


def card_lines(*texts: str) -> list[OcrLine]:
    return [
        OcrLine(
            text=text,
            score=0.99,
            box=((0.0, 40.0 * row), (200.0, 40.0 * row), (200.0, 40.0 * row + 30), (0.0, 40.0 * row + 30)),
        )
        for row, text in enumerate(texts)
    ]


def card(name: str = "张三", *, ethnicity: str = "汉", address: str = "北京市东城区景山前街4号") -> list[OcrLine]:
    return card_lines(
        f"姓名{name}", f"性别男民族{ethnicity}", "出生1990年1月1日", f"住址{address}", f"公民身份号码{VALID_NUMBER}"
    )


@pytest.mark.parametrize(
    "name",
    [
        "黎暐霈",  # 暐: OpenCC t2s would give U+2C029
        "林頔",  # 頔: OpenCC t2s would give U+2CC56
        "龚劼霞",
        "亓湉",
        "张喆",
        "李翀",
        "王璟",
        "赵淼",
        "李\U0002c029",  # the Extension-B form itself (通用规范汉字表)
        "王\U0002a6a5明",  # Extension B
        "陈\U00030000",  # Extension G
        "阿依古丽·买买提",  # a transliterated minority name with its middle dot
        "欧阳娜娜",  # a compound surname
    ],
)
def test_every_character_of_a_name_is_kept(name: str) -> None:
    assert parse_id_card_front(card(name)).name == name


def test_a_minority_name_keeps_its_middle_dot_whatever_dot_ocr_returns() -> None:
    assert parse_id_card_front(card("阿依古丽•买买提")).name == "阿依古丽·买买提"


def test_a_traditional_misread_of_a_common_character_is_simplified() -> None:
    assert parse_id_card_front(card("張偉")).name == "张伟"


def test_names_are_equal_across_script_forms_but_not_across_different_characters() -> None:
    assert names_equivalent("黎暐霈", "黎\U0002c029霈")
    assert names_equivalent("林 頔", "林\U0002cc56")
    assert not names_equivalent("龚劫霞", "龚劼霞")
    assert not names_equivalent("黎霈", "黎暐霈")


@pytest.mark.parametrize(
    "lines",
    [
        (
            "姓",
            "名刘军",
            "性别男民族汉",
            "出生1990年1月1日",
            "住址北京市东城区景山前街4号",
            f"公民身份号码{VALID_NUMBER}",
        ),
        (
            "姓",
            "名",
            "刘军",
            "性",
            "别男民",
            "族汉",
            "出生1990年1月1日",
            "住",
            "址北京市东城区景山前街4号",
            "公民身份",
            f"号码{VALID_NUMBER}",
        ),
    ],
)
def test_a_label_split_across_ocr_boxes_still_reads(lines: tuple[str, ...]) -> None:
    front = parse_id_card_front(card_lines(*lines))
    assert (front.name, front.ethnicity, front.address, front.id_number) == (
        "刘军",
        "汉",
        "北京市东城区景山前街4号",
        VALID_NUMBER,
    )


@pytest.mark.parametrize("ethnicity", ETHNICITIES)
def test_each_official_ethnicity_is_read(ethnicity: str) -> None:
    assert parse_id_card_front(card(ethnicity=f"{ethnicity}族")).ethnicity == ethnicity


@pytest.mark.parametrize("text", ["汊", "出生1990年1月1日住址北京市东城区很长很长的一段文字", "X"])
def test_an_ethnicity_that_is_none_of_the_56_asks_for_a_retake(text: str) -> None:
    with pytest.raises(IdCardUnreadable) as caught:
        parse_id_card_front(card(ethnicity=text))
    assert caught.value.code == "ethnicity_unreadable"


def test_stray_punctuation_is_removed_from_the_address() -> None:
    front = parse_id_card_front(card(address=":北京市,东城区。景山前街4号3-2-101室'"))
    assert front.address == "北京市东城区景山前街4号3-2-101室"


def test_an_address_lost_with_both_labels_is_not_accepted_empty() -> None:
    lines = card_lines("姓名张三", "性别男民族汉", "1990年1月1日", f"公民身份号码{VALID_NUMBER}")
    with pytest.raises(IdCardUnreadable) as caught:
        parse_id_card_front(lines)
    assert caught.value.code == "address_unreadable"


def _placed(text: str, left: float, top: float, width: float = 200.0) -> OcrLine:
    return OcrLine(
        text=text, score=0.98, box=((left, top), (left + width, top), (left + width, top + 32), (left, top + 32))
    )


def test_on_a_straightened_card_the_name_is_found_by_position_when_its_label_was_not_read() -> None:
    lines = [
        _placed("刘军", 146, 47),  # 姓名 lost to glare
        _placed("性别男", 48, 109),
        _placed("民族汉", 262, 109),
        _placed("出生1990年1月1日", 48, 171, 300),
        _placed("住址北京市东城区景山前街4号", 48, 233, 400),
        _placed(f"公民身份号码{VALID_NUMBER}", 48, 440, 700),
    ]
    assert parse_id_card_front(lines, card_size=(856, 540)).name == "刘军"
    with pytest.raises(IdCardUnreadable) as caught:
        parse_id_card_front(lines)  # without the card's geometry there is no name to trust
    assert caught.value.code == "cut_off"


def test_a_line_outside_the_name_band_is_never_taken_for_the_name() -> None:
    lines = [
        _placed("中华人民共和国", 600, 47),  # right of the band (where the portrait is)
        _placed("性别男", 48, 109),
        _placed("民族汉", 262, 109),
        _placed("出生1990年1月1日", 48, 171, 300),
        _placed("住址北京市东城区景山前街4号", 48, 233, 400),
        _placed(f"公民身份号码{VALID_NUMBER}", 48, 440, 700),
    ]
    with pytest.raises(IdCardUnreadable):
        parse_id_card_front(lines, card_size=(856, 540))


def test_a_split_label_whose_first_half_was_lost_leaves_the_name_found_by_position() -> None:
    # "姓" lost in glare; "名" glued to the name starts between the label and the value column.
    lines = [
        _placed("名陈暐", 80, 42, 140),
        _placed("性别男", 26, 107),
        _placed("民族汉", 244, 101),
        _placed("出生1968年7月14日", 33, 173, 300),
        _placed("住址北京市东城区景山前街4号", 32, 234, 400),
        _placed("公民身份号码110105196807144452", 41, 450, 700),
    ]
    assert parse_id_card_front(lines, card_size=(856, 540)).name == "陈暐"


class _SecondRead:
    """Gives one fixed line for the second read of a name (the first read is the test's lines)."""

    def __init__(self, text: str, scores: tuple[float, ...]) -> None:
        self.line = OcrLine(text=text, score=sum(scores) / len(scores), box=(), char_scores=scores)
        self.crops: list[Image.Image] = []

    def read(
        self, image: Image.Image, *, detection_side: int | None = None, upright: bool = False, quick: bool = False
    ) -> list[OcrLine]:
        raise AssertionError("only the name's line is read again")

    def reread_exactly(self, line: OcrLine) -> OcrLine | None:
        raise AssertionError("only the name's line is read again, from a crop")

    def read_line(self, image: Image.Image) -> OcrLine | None:
        self.crops.append(image)
        return self.line


def _doubtful_front() -> tuple[list[OcrLine], IdCardFront]:
    lines = [
        OcrLine("姓名诸葛活", 0.9, ((48, 47), (248, 47), (248, 79), (48, 79)), (1.0, 1.0, 1.0, 1.0, 0.81)),
        _placed("性别男", 48, 109),
        _placed("民族汉", 262, 109),
        _placed("出生1990年1月1日", 48, 171, 300),
        _placed("住址北京市东城区景山前街4号", 48, 233, 400),
        _placed(f"公民身份号码{VALID_NUMBER}", 48, 440, 700),
    ]
    front = parse_id_card_front(lines, card_size=(856, 540))
    assert (front.name, front.name_uncertain) == ("诸葛活", (2,))
    return lines, front


def test_a_sure_second_read_replaces_only_the_doubtful_character_which_stays_doubtful() -> None:
    lines, front = _doubtful_front()
    engine = _SecondRead("姓名请葛湉", (1.0, 1.0, 0.99, 1.0, 0.97))
    again = _reread_name(engine, Image.new("RGB", (856, 540), "white"), lines, front)
    # 请 for 诸 is not taken (the first read was sure of it); 湉 is, for the record to confirm.
    assert (again.name, again.name_uncertain) == ("诸葛湉", (2,))
    assert engine.crops[0].height == NAME_REREAD_HEIGHT


def test_a_doubtful_second_read_changes_nothing() -> None:
    lines, front = _doubtful_front()
    engine = _SecondRead("诸葛湉", (1.0, 1.0, 0.6))
    assert _reread_name(engine, Image.new("RGB", (856, 540), "white"), lines, front) == front


def test_a_second_read_of_another_length_changes_nothing() -> None:
    lines, front = _doubtful_front()
    engine = _SecondRead("诸葛湉湉", (1.0, 1.0, 0.99, 0.99))
    assert _reread_name(engine, Image.new("RGB", (856, 540), "white"), lines, front) == front


def test_a_second_read_more_confident_than_the_first_replaces_the_doubtful_character() -> None:
    # Below the floor, but the better read of the two: the character changes and stays doubtful.
    lines, front = _doubtful_front()
    engine = _SecondRead("诸葛湉", (1.0, 1.0, 0.85))
    again = _reread_name(engine, Image.new("RGB", (856, 540), "white"), lines, front)
    assert (again.name, again.name_uncertain, again.name_scores) == ("诸葛湉", (2,), (1.0, 1.0, 0.85))


class _UpsideDownCard(_SecondRead):
    """A straightened card upside down: nothing of a front read until it is turned, then a doubtful name."""

    def __init__(self, turned_lines: list[OcrLine], text: str, scores: tuple[float, ...]) -> None:
        super().__init__(text, scores)
        self.turned_lines = turned_lines
        self.reads = 0

    def read(
        self, image: Image.Image, *, detection_side: int | None = None, upright: bool = False, quick: bool = False
    ) -> list[OcrLine]:
        self.reads += 1
        # The quick read, then the standard read, of the card as it came; then the turned card.
        return self.turned_lines if self.reads == 3 else [_placed("dI 7 4 日", 48, 47)]


def test_a_doubtful_name_on_a_card_turned_180_degrees_is_read_again_too() -> None:
    lines, _front = _doubtful_front()
    engine = _UpsideDownCard(lines, "姓名诸葛湉", (1.0, 1.0, 1.0, 1.0, 0.97))
    card = Image.effect_noise((856, 540), 80).convert("RGB")  # sharp enough for the blur gate
    reading = read_id_card_front(engine, card, straightened=True)
    assert engine.reads == 3 and reading.image is not card
    assert (reading.front.name, reading.front.name_uncertain) == ("诸葛湉", (2,))
    assert len(engine.crops) == 1
