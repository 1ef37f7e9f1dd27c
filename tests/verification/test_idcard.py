"""Pure parsing and checksum rules of Gate 1 (no OCR engine involved)."""

from __future__ import annotations

import math
from datetime import date

import pytest
from PIL import Image, ImageEnhance

from apps.common.images import edge_sharpness, load_untrusted_image
from apps.verification.idcard import (
    PORTRAIT_BOX,
    CardNumberUnreadable,
    IdCardFront,
    IdCardUnreadable,
    IdNumberFacts,
    crop_portrait,
    ensure_card_photo_is_sharp,
    id_number_facts,
    id_number_is_valid,
    luhn_is_valid,
    parse_bank_card_number,
    parse_id_card_front,
)
from apps.verification.integrations.ocr import OcrLine, sort_reading_order
from tests.fixtures.cardgen import (
    CardPerson,
    Degradation,
    generate_id_card_front,
    make_bank_card_number,
    make_id_number,
)

VALID_NUMBER = "110101199001011237"  # the GB 11643 example: Beijing, 1990-01-01, male
CARD_HOLDER = CardPerson("张三", "M", "汉", date(1990, 1, 1), "北京市东城区景山前街4号", VALID_NUMBER)


def line(text: str, top: float = 0.0, left: float = 0.0, height: float = 30.0, width: float = 200.0) -> OcrLine:
    box = ((left, top), (left + width, top), (left + width, top + height), (left, top + height))
    return OcrLine(text=text, score=0.99, box=box)


def card_lines(*texts: str) -> list[OcrLine]:
    """Lines stacked top to bottom, one per row, as the OCR adapter returns them."""
    return [line(text, top=40.0 * index) for index, text in enumerate(texts)]


CLEAN_CARD = (
    "姓名",
    "张三",
    "性别",
    "男",
    "民族",
    "汉",
    "出生",
    "1990年1月1日",
    "住址",
    "北京市东城区景山前街",
    "4号院2号楼301室",
    "公民身份号码",
    VALID_NUMBER,
)


# --- GB 11643 numbers ----------------------------------------------------------------


def test_reference_number_is_valid() -> None:
    assert id_number_is_valid(VALID_NUMBER) is True


def test_number_with_x_check_character_is_valid() -> None:
    seq_with_x = next(seq for seq in range(1000) if make_id_number("440305", date(1985, 6, 15), seq).endswith("X"))
    number = make_id_number("440305", date(1985, 6, 15), seq_with_x)
    assert number.endswith("X")
    assert id_number_is_valid(number) is True
    assert id_number_is_valid(number[:-1] + "x") is False  # canonical form is upper-case


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("110101199001011238", "wrong check digit"),
        ("110101199001011231", "wrong check digit"),
        ("11010119900101123", "17 characters"),
        ("1101011990010112370", "19 characters"),
        ("11010119900101123A", "letter other than X"),
        ("X10101199001011237", "X not at the end"),
        ("110101199002301234", "30 February"),
        ("110101189912311234", "born before 1900"),
        ("１１０１０１１９９００１０１１２３７", "full-width digits"),
    ],
)
def test_malformed_number_is_invalid(number: str, why: str) -> None:
    assert id_number_is_valid(number) is False, why


def test_number_with_future_birth_date_is_invalid_even_with_correct_checksum() -> None:
    assert id_number_is_valid(make_id_number("110101", date(2100, 1, 1), 123)) is False


def test_single_digit_change_breaks_the_checksum() -> None:
    for position in range(17):
        digit = VALID_NUMBER[position]
        changed = VALID_NUMBER[:position] + str((int(digit) + 1) % 10) + VALID_NUMBER[position + 1 :]
        assert id_number_is_valid(changed) is False, position


def test_facts_of_reference_number_are_region_birth_date_and_male() -> None:
    assert id_number_facts(VALID_NUMBER) == IdNumberFacts(region_code="110101", birth_date=date(1990, 1, 1), sex="M")


def test_even_sequence_digit_means_female() -> None:
    number = make_id_number("310104", date(2001, 12, 31), 246)
    assert id_number_facts(number) == IdNumberFacts("310104", date(2001, 12, 31), "F")


def test_facts_of_invalid_number_raise_value_error() -> None:
    with pytest.raises(ValueError, match="not a valid"):
        id_number_facts("110101199001011238")


# --- Luhn ------------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["4111111111111111", "5555555555554444", "79927398713", "6222026604876478"])
def test_luhn_accepts_known_valid_numbers(number: str) -> None:
    assert luhn_is_valid(number) is True


@pytest.mark.parametrize("number", ["4111111111111112", "79927398710", "4111 1111 1111 1111", "", "abc"])
def test_luhn_rejects_wrong_or_non_digit_input(number: str) -> None:
    assert luhn_is_valid(number) is False


# --- ID card front parsing ----------------------------------------------------------


def test_clean_lines_are_parsed_into_every_field() -> None:
    card = parse_id_card_front(card_lines(*CLEAN_CARD))
    assert card == IdCardFront(
        name="张三",
        sex="M",
        ethnicity="汉",
        birth_date=date(1990, 1, 1),
        address="北京市东城区景山前街4号院2号楼301室",
        id_number=VALID_NUMBER,
    )


def test_labels_merged_with_values_are_split() -> None:
    card = parse_id_card_front(
        card_lines(
            "姓名张三",
            "性别男民族汉",
            "出生1990年1月1日",
            "住址北京市东城区景山前街",
            "4号院2号楼301室",
            f"公民身份号码{VALID_NUMBER}",
        )
    )
    assert (card.name, card.sex, card.ethnicity, card.birth_date) == ("张三", "M", "汉", date(1990, 1, 1))
    assert card.address == "北京市东城区景山前街4号院2号楼301室"
    assert card.id_number == VALID_NUMBER


def test_spaced_labels_full_width_digits_and_colons_are_tolerated() -> None:
    card = parse_id_card_front(
        card_lines(
            "姓 名：欧阳娜娜",
            "性 别 女  民 族 满",
            "出 生 ２００１ 年 １２ 月 ３１ 日",
            "住 址 上海市徐汇区漕溪北路５９５号",
            "公民身份号码 " + make_id_number("310104", date(2001, 12, 31), 246).replace("", " ").strip(),
        )
    )
    assert card.name == "欧阳娜娜"
    assert card.sex == "F"
    assert card.ethnicity == "满"
    assert card.birth_date == date(2001, 12, 31)
    assert card.address == "上海市徐汇区漕溪北路595号"


def test_letter_o_and_letter_i_in_the_number_are_read_as_digits() -> None:
    garbled = "I1O1O1199001O1l237"  # 110101199001011237 with five look-alike letters
    card = parse_id_card_front(card_lines(*CLEAN_CARD[:-1], garbled))
    assert card.id_number == VALID_NUMBER


def test_lowercase_x_check_character_is_accepted() -> None:
    seq = next(seq for seq in range(1000) if make_id_number("110101", date(1980, 5, 5), seq, "F").endswith("X"))
    number = make_id_number("110101", date(1980, 5, 5), seq, "F")
    lines = card_lines(
        "姓名李娜", "性别女民族回", "出生1980年5月5日", "住址北京市东城区", "公民身份号码", number.lower()
    )
    card = parse_id_card_front(lines)
    assert card.id_number == number
    assert card.ethnicity == "回"


def test_traditional_characters_from_the_recogniser_are_simplified() -> None:
    lines = card_lines(
        "姓名徐志強", "性別男民族漢", "出生1990年1月1日", "住址北京市東城區", f"公民身份号码{VALID_NUMBER}"
    )
    card = parse_id_card_front(lines)
    assert (card.name, card.ethnicity, card.address) == ("徐志强", "汉", "北京市东城区")


def test_standard_simplified_name_characters_are_not_converted() -> None:
    # OpenCC's t2s would give 于 and 干; both 於 and 乾 are valid in names.
    lines = card_lines(
        "姓名於乾", "性别男民族汉", "出生1990年1月1日", "住址北京市东城区", f"公民身份号码{VALID_NUMBER}"
    )
    assert parse_id_card_front(lines).name == "於乾"


def test_longest_ethnicity_name_wins() -> None:
    number = make_id_number("650102", date(1975, 3, 9), 11, "M")
    lines = card_lines("姓名艾力", "性别男民族维吾尔", "出生1975年3月9日", "住址乌鲁木齐市", f"公民身份号码{number}")
    assert parse_id_card_front(lines).ethnicity == "维吾尔"


def test_sex_that_contradicts_the_number_is_inconsistent() -> None:
    lines = card_lines(*[("女" if text == "男" else text) for text in CLEAN_CARD])
    with pytest.raises(IdCardUnreadable) as caught:
        parse_id_card_front(lines)
    assert caught.value.code == "inconsistent"


def test_birth_date_that_contradicts_the_number_is_inconsistent() -> None:
    lines = card_lines(*[("1990年1月2日" if text.startswith("1990") else text) for text in CLEAN_CARD])
    with pytest.raises(IdCardUnreadable) as caught:
        parse_id_card_front(lines)
    assert caught.value.code == "inconsistent"


def test_unreadable_birth_line_falls_back_to_the_number() -> None:
    lines = card_lines(*[text for text in CLEAN_CARD if not text.startswith("1990")])
    card = parse_id_card_front(lines)
    assert card.birth_date == date(1990, 1, 1)
    assert card.sex == "M"


def test_number_with_wrong_checksum_is_reported_as_bad_checksum() -> None:
    lines = card_lines(*CLEAN_CARD[:-1], "110101199001011238")
    with pytest.raises(IdCardUnreadable) as caught:
        parse_id_card_front(lines)
    assert caught.value.code == "bad_checksum"


def test_name_read_with_low_confidence_is_reported_as_blurred() -> None:
    lines = card_lines(*CLEAN_CARD)
    lines[1] = OcrLine(text="张三", score=0.74, box=lines[1].box)  # a misread name scores like this
    with pytest.raises(IdCardUnreadable) as caught:
        parse_id_card_front(lines)
    assert caught.value.code == "blurred"


def _scored(text: str, scores: tuple[float, ...], template: OcrLine) -> OcrLine:
    """A line with per-character scores, as RapidOCR returns them (its line score is their mean)."""
    return OcrLine(text=text, score=sum(scores) / len(scores), box=template.box, char_scores=scores)


def test_one_doubtful_character_of_a_name_is_marked_for_the_record_to_confirm_not_accepted_as_sure() -> None:
    # 龚劼霞 read as 龚劫霞: the line's mean (0.83) hides 劫 at 0.50.
    lines = card_lines(*CLEAN_CARD)
    lines[1] = _scored("龚劫霞", (0.999, 0.495, 0.999), lines[1])
    card = parse_id_card_front(lines)
    assert card.name == "龚劫霞"
    assert card.name_uncertain == (1,)


def test_a_confident_name_has_no_doubtful_character() -> None:
    lines = card_lines(*CLEAN_CARD)
    lines[1] = _scored("张三", (0.99, 0.97), lines[1])
    assert parse_id_card_front(lines).name_uncertain == ()


def test_doubt_is_placed_on_the_name_characters_after_a_label_and_a_stray_symbol_in_the_same_box() -> None:
    lines = card_lines(*CLEAN_CARD)
    lines[0] = _scored("姓名", (0.99, 0.99), lines[0])
    lines[1] = _scored("'阿依·古丽", (0.3, 0.99, 0.99, 0.99, 0.6, 0.99), lines[1])
    card = parse_id_card_front(lines)
    assert card.name == "阿依·古丽"
    assert card.name_uncertain == (3,)  # 古, not the quote the name does not keep


def test_a_name_with_every_character_doubtful_is_a_blurred_photo() -> None:
    lines = card_lines(*CLEAN_CARD)
    lines[1] = _scored("张三", (0.6, 0.7), lines[1])
    with pytest.raises(IdCardUnreadable) as caught:
        parse_id_card_front(lines)
    assert caught.value.code == "blurred"


def test_a_doubtful_digit_in_a_number_that_passes_the_checksum_asks_for_a_retake() -> None:
    # The checksum lets one wrong digit in eleven through.
    lines = card_lines(*CLEAN_CARD)
    scores = tuple(0.5 if index == 9 else 0.99 for index in range(18))
    lines[-1] = _scored(VALID_NUMBER, scores, lines[-1])
    with pytest.raises(IdCardUnreadable) as caught:
        parse_id_card_front(lines)
    assert caught.value.code == "bad_checksum"


def test_a_line_without_per_character_scores_lends_its_own_score_to_every_character() -> None:
    assert line("张三").character_scores() == (0.99, 0.99)


def test_low_confidence_elsewhere_does_not_block_a_confident_name() -> None:
    lines = card_lines(
        "姓名张三", "性别男民族汉", "出生1990年1月1日", "住址北京市东城区", f"公民身份号码{VALID_NUMBER}"
    )
    lines[3] = OcrLine(text=lines[3].text, score=0.6, box=lines[3].box)
    assert parse_id_card_front(lines).name == "张三"


def test_text_without_any_card_label_is_not_an_id_card() -> None:
    lines = card_lines("中国工商银行", "6222 0202 0011 2233", "VALID THRU 12/29")
    with pytest.raises(IdCardUnreadable) as caught:
        parse_id_card_front(lines)
    assert caught.value.code == "not_id_card"


def test_no_text_at_all_is_not_an_id_card() -> None:
    with pytest.raises(IdCardUnreadable) as caught:
        parse_id_card_front([])
    assert caught.value.code == "not_id_card"


def test_back_of_the_card_is_not_an_id_card_and_says_so() -> None:
    lines = card_lines("中华人民共和国", "居民身份证", "签发机关北京市公安局东城分局", "有效期限2015.03.01-2035.03.01")
    with pytest.raises(IdCardUnreadable) as caught:
        parse_id_card_front(lines)
    assert caught.value.code == "not_id_card"
    assert "back" in caught.value.message


def test_top_half_only_is_cut_off() -> None:
    with pytest.raises(IdCardUnreadable) as caught:
        parse_id_card_front(card_lines(*CLEAN_CARD[:8]))
    assert caught.value.code == "cut_off"


def test_number_cut_at_the_right_edge_is_cut_off() -> None:
    with pytest.raises(IdCardUnreadable) as caught:
        parse_id_card_front(card_lines(*CLEAN_CARD[:-1], VALID_NUMBER[:14]))
    assert caught.value.code == "cut_off"


def test_missing_name_is_cut_off() -> None:
    with pytest.raises(IdCardUnreadable) as caught:
        parse_id_card_front(card_lines(*CLEAN_CARD[2:]))
    assert caught.value.code == "cut_off"


def test_number_above_its_label_in_a_tilted_photo_is_still_found() -> None:
    lines = card_lines(*CLEAN_CARD[:-2], VALID_NUMBER, "公民身份号码")
    assert parse_id_card_front(lines).id_number == VALID_NUMBER


def test_missed_address_label_takes_the_address_from_after_the_birth_date() -> None:
    lines = card_lines(
        "姓名张三", "性别男民族汉", "出生1990年1月1日", "北京市东城区景山前街4号", "公民身份号码", VALID_NUMBER
    )
    assert parse_id_card_front(lines).address == "北京市东城区景山前街4号"


# --- Reading order -------------------------------------------------------------------


def test_boxes_on_one_row_are_read_left_to_right_despite_different_tops() -> None:
    shuffled = [
        line("民族", top=101, left=260, width=80),
        line("汉", top=98, left=360, width=30),
        line("男", top=104, left=150, width=30),
        line("性别", top=103, left=50, width=80),
        line("姓名张三", top=40, left=50),
    ]
    assert [item.text for item in sort_reading_order(shuffled)] == ["姓名张三", "性别", "男", "民族", "汉"]


def test_rows_of_a_tilted_photo_are_not_interleaved() -> None:
    tilt = math.radians(7)  # photo turned 7° counter-clockwise: right ends of rows rise

    def tilted(text: str, left: float, top: float, width: float) -> OcrLine:
        corners = ((left, top), (left + width, top), (left + width, top + 30), (left, top + 30))
        box = tuple(
            (x * math.cos(tilt) + y * math.sin(tilt), y * math.cos(tilt) - x * math.sin(tilt)) for x, y in corners
        )
        return OcrLine(text=text, score=0.99, box=box)

    lines = [
        tilted("出生", left=50, top=180, width=60),
        tilted("1990年1月1日", left=150, top=180, width=300),
        tilted("住址", left=50, top=240, width=60),
        tilted("北京市东城区景山前街", left=150, top=240, width=300),
    ]
    # Sorted by top (or by centre) alone, the long date line would come first.
    assert min(lines, key=lambda item: item.top).text == "1990年1月1日"
    assert [item.text for item in sort_reading_order(lines)] == ["出生", "1990年1月1日", "住址", "北京市东城区景山前街"]


# --- Bank card -----------------------------------------------------------------------


def test_bank_card_number_with_spaces_is_read() -> None:
    number = make_bank_card_number("622202", 16, seed=1)
    grouped = " ".join(number[index : index + 4] for index in range(0, 16, 4))
    lines = card_lines("远程银行", "RemoteBank 借记卡", grouped, "VALID THRU", "12/29", "ZHANG SAN")
    assert parse_bank_card_number(lines) == number


def test_nineteen_digit_card_number_is_read() -> None:
    number = make_bank_card_number("6217000", 19, seed=2)
    assert parse_bank_card_number(card_lines(f"{number[:6]} {number[6:]}")) == number


def test_card_number_split_over_several_boxes_is_joined() -> None:
    number = make_bank_card_number("622202", 16, seed=4)
    groups = [number[index : index + 4] for index in range(0, 16, 4)]
    assert parse_bank_card_number(card_lines("远程银行", *groups, "12/29")) == number


def test_card_number_failing_luhn_is_unreadable() -> None:
    number = make_bank_card_number("622202", 16, seed=1)
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    with pytest.raises(CardNumberUnreadable):
        parse_bank_card_number(card_lines(wrong))


def test_too_short_digit_run_is_not_a_card_number() -> None:
    with pytest.raises(CardNumberUnreadable):
        parse_bank_card_number(card_lines("4111 1111 1111", "12/29"))


# --- Photo sharpness -------------------------------------------------------------------


def card_photo(degrade: Degradation) -> Image.Image:
    return load_untrusted_image(generate_id_card_front(CARD_HOLDER, None, degrade=degrade))


@pytest.mark.parametrize(
    "degrade",
    [
        Degradation(),
        Degradation(blur_radius=1.5, noise=14, jpeg_quality=25),
        Degradation(rotate_deg=-8, blur_radius=1.0),
        Degradation(photo_size=(2000, 1500), rotate_deg=3, noise=4, jpeg_quality=85),
    ],
    ids=["clean", "mildly-blurred-noisy", "tilted", "phone-framed"],
)
def test_readable_card_photo_passes_the_sharpness_check(degrade: Degradation) -> None:
    ensure_card_photo_is_sharp(card_photo(degrade))


@pytest.mark.parametrize(("radius", "noise"), [(2.5, 0), (3.5, 20)])
def test_blurred_card_photo_is_refused_as_blurred(radius: float, noise: int) -> None:
    # From blur radius 2.5 on, the recogniser returns wrong names with high confidence.
    with pytest.raises(IdCardUnreadable) as caught:
        ensure_card_photo_is_sharp(card_photo(Degradation(blur_radius=radius, noise=noise, seed=1)))
    assert caught.value.code == "blurred"


def test_dim_photo_is_not_mistaken_for_a_blurred_one() -> None:
    photo = card_photo(Degradation(blur_radius=1.5))
    dim = ImageEnhance.Brightness(ImageEnhance.Contrast(photo).enhance(0.4)).enhance(0.6)
    assert edge_sharpness(dim) == pytest.approx(edge_sharpness(photo), rel=0.1)
    ensure_card_photo_is_sharp(dim)


def test_featureless_image_has_zero_sharpness() -> None:
    assert edge_sharpness(Image.new("RGB", (640, 400), (120, 130, 140))) == 0.0


# --- Portrait ------------------------------------------------------------------------


def test_portrait_crop_takes_the_right_hand_photo_area() -> None:
    card = Image.new("RGB", (856, 540), "white")
    left, top = round(PORTRAIT_BOX[0] * 856), round(PORTRAIT_BOX[1] * 540)
    right, bottom = round(PORTRAIT_BOX[2] * 856), round(PORTRAIT_BOX[3] * 540)
    card.paste((200, 30, 30), (left, top, right, bottom))
    portrait = crop_portrait(card)
    assert portrait.size == (right - left, bottom - top)
    assert portrait.getcolors() == [(portrait.width * portrait.height, (200, 30, 30))]
