"""The real OCR engine (RapidOCR, ONNX models from the wheel) and zbar on generated photos.

Nothing is replaced here: these tests are what tells us Gate 1 can read a card.
The engine is loaded once for the module (≈2 s); each card takes ≈0.6 s.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date
from typing import Literal

import numpy as np
import pytest
from PIL import Image, ImageOps

from apps.common.images import downscale_for_ocr, load_untrusted_image
from apps.verification.cardfinder import rectify_card
from apps.verification.idcard import (
    IdCardUnreadable,
    crop_portrait,
    ensure_card_photo_is_sharp,
    luhn_is_valid,
    parse_bank_card_number,
    parse_id_card_front,
    read_id_card_front,
)
from apps.verification.integrations.barcode import decode_barcodes
from apps.verification.integrations.ocr import OcrLine, RapidOcrEngine, _RunConfidenceDecoder, get_ocr_engine
from tests.fixtures.cardgen import (
    CardPerson,
    Degradation,
    face_photos,
    generate_bank_card,
    generate_cut_off_id_card,
    generate_id_card_front,
    generate_non_id_image,
    generate_passbook_barcode,
    make_bank_card_number,
    make_id_number,
)


@pytest.fixture(scope="module")
def engine() -> Iterator[RapidOcrEngine]:
    ocr = RapidOcrEngine()
    ocr.warm_up()
    yield ocr


def person(name: str, sex: str, birth: date, region: str, address: str, seq: int, ethnicity: str = "汉") -> CardPerson:
    assert sex in {"M", "F"}
    return CardPerson(
        name=name,
        sex="M" if sex == "M" else "F",
        ethnicity=ethnicity,
        birth_date=birth,
        address=address,
        id_number=make_id_number(region, birth, seq, "M" if sex == "M" else "F"),
    )


ZHANG_WEI = person("张伟", "M", date(1990, 1, 1), "110105", "北京市朝阳区建国路88号院3号楼2单元1101号", 123)
PEOPLE = (
    person("欧阳娜娜", "F", date(2000, 6, 15), "310104", "上海市徐汇区漕溪北路595号12号楼601室", 246, "满"),
    person("徐志强", "M", date(1978, 7, 18), "510107", "四川省成都市武侯区人民南路四段27号", 905),
    person("龚琳娜", "F", date(1975, 5, 2), "530102", "云南省昆明市五华区东风西路11号", 88, "苗"),
    person("覃海洋", "M", date(1999, 5, 31), "440305", "广东省深圳市南山区科技园南区深南大道9988号", 31, "壮"),
    person("翟天临", "M", date(1987, 12, 1), "370202", "山东省青岛市市南区香港中路76号", 455, "回"),
    person("上官婉儿", "F", date(1964, 2, 29), "610113", "陕西省西安市雁塔区小寨东路126号", 702),
)


def read(engine: RapidOcrEngine, data: bytes) -> list[OcrLine]:
    """The service's path: safe decode, downscale, OCR."""
    return engine.read(downscale_for_ocr(load_untrusted_image(data)))


def read_id_card(engine: RapidOcrEngine, data: bytes) -> list[OcrLine]:
    """As ``read``, after the sharpness gate that ID-card photos must pass first."""
    image = downscale_for_ocr(load_untrusted_image(data))
    ensure_card_photo_is_sharp(image)
    return engine.read(image)


def test_clean_card_is_read_exactly(engine: RapidOcrEngine) -> None:
    card = parse_id_card_front(read_id_card(engine, generate_id_card_front(ZHANG_WEI, face_photos()[0])))
    assert card.name == "张伟"
    assert card.id_number == ZHANG_WEI.id_number
    assert card.sex == "M"
    assert card.ethnicity == "汉"
    assert card.birth_date == date(1990, 1, 1)
    assert card.address == ZHANG_WEI.address


@pytest.mark.parametrize(
    ("holder", "degrade"),
    [
        (PEOPLE[0], Degradation(rotate_deg=4)),
        (PEOPLE[1], Degradation(rotate_deg=-8)),
        (PEOPLE[2], Degradation(blur_radius=1.5)),
        (PEOPLE[3], Degradation(noise=14, seed=3)),
        (PEOPLE[4], Degradation(jpeg_quality=25)),
        (PEOPLE[5], Degradation(rotate_deg=6, blur_radius=1.0, noise=8, jpeg_quality=30, seed=5)),
    ],
    ids=["rotated-4", "rotated-minus-8", "blurred", "noisy", "jpeg-q25", "all-at-once"],
)
def test_degraded_card_is_read_exactly(engine: RapidOcrEngine, holder: CardPerson, degrade: Degradation) -> None:
    photos = face_photos()
    data = generate_id_card_front(holder, photos[PEOPLE.index(holder) % len(photos)], degrade=degrade)
    card = parse_id_card_front(read_id_card(engine, data))
    assert (card.name, card.id_number) == (holder.name, holder.id_number)
    assert (card.sex, card.birth_date, card.ethnicity) == (holder.sex, holder.birth_date, holder.ethnicity)


@pytest.mark.parametrize(("prefix", "length"), [("622202", 16), ("6217000", 19)])
def test_bank_card_number_is_read_and_luhn_valid(engine: RapidOcrEngine, prefix: str, length: int) -> None:
    number = make_bank_card_number(prefix, length, seed=length)
    read_number = parse_bank_card_number(read(engine, generate_bank_card(number, degrade=Degradation(rotate_deg=3))))
    assert read_number == number
    assert luhn_is_valid(read_number)


def test_landscape_without_text_is_not_an_id_card(engine: RapidOcrEngine) -> None:
    lines = read(engine, generate_non_id_image())
    with pytest.raises(IdCardUnreadable) as caught:
        parse_id_card_front(lines)
    assert caught.value.code == "not_id_card"


def test_bank_card_is_not_an_id_card(engine: RapidOcrEngine) -> None:
    lines = read(engine, generate_bank_card(make_bank_card_number(seed=9)))
    with pytest.raises(IdCardUnreadable) as caught:
        parse_id_card_front(lines)
    assert caught.value.code == "not_id_card"


def test_card_without_its_lower_half_is_cut_off(engine: RapidOcrEngine) -> None:
    lines = read(engine, generate_cut_off_id_card(ZHANG_WEI, face_photos()[1]))
    assert any("张伟" in line.text for line in lines)  # the top half really was read
    with pytest.raises(IdCardUnreadable) as caught:
        parse_id_card_front(lines)
    assert caught.value.code == "cut_off"


def test_engine_gives_the_same_lines_when_called_from_two_threads(engine: RapidOcrEngine) -> None:
    image = downscale_for_ocr(load_untrusted_image(generate_id_card_front(PEOPLE[1], None)))
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append([line.text for line in engine.read(image)])
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(results) == 2
    assert results[0] == results[1]
    assert PEOPLE[1].id_number in results[0]


def test_process_wide_engine_is_a_single_instance() -> None:
    assert get_ocr_engine() is get_ocr_engine()


def test_portrait_crop_of_a_generated_card_is_the_printed_photo() -> None:
    photo_path = face_photos()[0]
    card = load_untrusted_image(generate_id_card_front(ZHANG_WEI, photo_path))
    portrait = crop_portrait(card)
    with Image.open(photo_path) as original:
        expected = original.convert("RGB")
    # The generator fits the photo to the portrait box; compare at the crop's size.
    expected = ImageOps.fit(expected, portrait.size, centering=(0.5, 0.35))
    difference = np.abs(np.asarray(portrait, dtype=np.int16) - np.asarray(expected, dtype=np.int16)).mean()
    background = np.abs(
        np.asarray(card.crop((20, 20, 20 + portrait.width, 20 + portrait.height)), dtype=np.int16)
        - np.asarray(expected, dtype=np.int16)
    ).mean()
    assert difference < 12, difference  # JPEG noise only
    assert background > 3 * difference


@pytest.mark.parametrize("kind", ["qr", "code128"])
def test_passbook_barcode_is_decoded(kind: Literal["qr", "code128"]) -> None:
    account = "6222020200112233445"
    image = load_untrusted_image(generate_passbook_barcode(account, kind=kind))
    assert decode_barcodes(image) == [account]


def test_tilted_and_compressed_passbook_qr_is_decoded() -> None:
    account = "6217000010012345678"
    data = generate_passbook_barcode(account, kind="qr", degrade=Degradation(rotate_deg=20, jpeg_quality=40))
    assert decode_barcodes(load_untrusted_image(data)) == [account]


def test_slightly_tilted_code128_is_decoded_after_retrying_rotations() -> None:
    account = "6217000010012345678"
    data = generate_passbook_barcode(account, kind="code128", degrade=Degradation(rotate_deg=10, jpeg_quality=60))
    assert decode_barcodes(load_untrusted_image(data)) == [account]


def test_photo_without_a_barcode_decodes_to_nothing() -> None:
    assert decode_barcodes(load_untrusted_image(generate_non_id_image())) == []


def test_a_card_photographed_upside_down_is_turned_and_read(engine: RapidOcrEngine) -> None:
    holder = PEOPLE[1]
    data = generate_id_card_front(
        holder, face_photos()[2], degrade=Degradation(photo_size=(2000, 1500), rotate_deg=3, jpeg_quality=85)
    )
    upright = rectify_card(load_untrusted_image(data, max_side=1600))
    upside_down = rectify_card(load_untrusted_image(data, max_side=1600).rotate(180))
    assert upright is not None and upside_down is not None
    first = read_id_card_front(engine, upright, straightened=True)
    assert first.image is upright  # read as it is: no second pass
    turned = read_id_card_front(engine, upside_down, straightened=True)
    assert turned.image is not upside_down  # the portrait is cut from the turned card
    assert (turned.front.name, turned.front.id_number) == (holder.name, holder.id_number)
    assert turned.front.address == first.front.address == holder.address


def test_the_engine_gives_a_score_per_character(engine: RapidOcrEngine) -> None:
    lines = read_id_card(engine, generate_id_card_front(ZHANG_WEI, face_photos()[0]))
    number = next(line for line in lines if ZHANG_WEI.id_number in line.text)
    assert len(number.char_scores) == len(number.text)
    assert all(0.0 < score <= 1.0 for score in number.char_scores)
    assert min(number.char_scores) <= number.score  # the line's score is their mean


class _Decoder:
    """Stands in for RapidOCR's CTC decoder: token 0 is the blank, 1 is 李, 2 a space."""

    def get_ignored_tokens(self) -> list[int]:
        return [0]

    def __call__(self, preds: np.ndarray, return_word_box: bool = False, **kwargs: object) -> tuple[list, list]:
        texts = {3: "李 李", 2: "李李"}
        return [(texts[preds.shape[1] // 4], 0.5)], []


def _frames(*frames: tuple[int, float]) -> np.ndarray:
    """One row per frame: the token read and its probability (the rest of the row shares what is left)."""
    preds = np.full((1, len(frames), 3), 0.0, dtype=np.float32)
    for index, (token, probability) in enumerate(frames):
        preds[0, index, :] = (1 - probability) / 2
        preds[0, index, token] = probability
    return preds


def test_a_character_is_scored_over_all_its_frames_and_spaces_keep_their_place() -> None:
    decoder = _RunConfidenceDecoder(_Decoder())
    # 李 (first frame a 0.4 transition, then 0.97), a space at 0.6, 李 at 0.9.
    preds = _frames((0, 0.9), (1, 0.4), (1, 0.97), (0, 0.9), (2, 0.6), (0, 0.9), (1, 0.9), (0, 0.9))
    preds = np.concatenate([preds, _frames(*[(0, 0.9)] * 4)], axis=1)  # 12 frames: the "李 李" line
    [(text, score)], _words = decoder(preds)
    assert text == "李 李"
    assert score == 0.5  # the line's own mean is kept
    assert score.characters == pytest.approx((0.97, 0.6, 0.9), abs=1e-4)


def test_scores_that_do_not_pair_with_the_text_are_dropped_not_misplaced() -> None:
    decoder = _RunConfidenceDecoder(_Decoder())
    preds = _frames(
        (1, 0.9), (0, 0.9), (0, 0.9), (0, 0.9), (0, 0.9), (0, 0.9), (0, 0.9), (0, 0.9)
    )  # one 李, text "李李"
    [(_text, score)], _words = decoder(preds)
    assert score.characters == ()
    line = OcrLine(text="李李", score=float(score), box=(), char_scores=score.characters)
    assert line.character_scores() == (0.5, 0.5)


def test_one_line_is_recognised_without_detection(engine: RapidOcrEngine) -> None:
    card = rectify_card(load_untrusted_image(generate_id_card_front(ZHANG_WEI, face_photos()[0]), max_side=1600))
    assert card is not None
    number = next(line for line in engine.read(card, upright=True) if ZHANG_WEI.id_number in line.text)
    xs, ys = [x for x, _y in number.box], [y for _x, y in number.box]
    again = engine.read_line(card.crop((round(min(xs)), round(min(ys)), round(max(xs)), round(max(ys)))))
    assert again is not None
    assert again.text == ZHANG_WEI.id_number
    assert len(again.char_scores) == len(again.text)
    # And the engine's next full read still detects (read_line left no flag behind).
    assert any(ZHANG_WEI.id_number in line.text for line in engine.read(card, upright=True))
