"""Rare name characters, compound surnames and split labels through the real OCR (issue #15).

Cards are drawn with Noto Sans CJK (tests/fixtures/cardgen.py), photographed
(tilt, JPEG) and read by RapidOCR exactly as the service does: one decode at
the working size, the sharpness gate, OCR, parsing. Nothing is replaced.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from apps.common.images import load_untrusted_image
from apps.verification import idcard
from apps.verification.cardfinder import rectify_card
from apps.verification.idcard import (
    STRAIGHTENED_DETECTION_SIDE,
    ensure_card_photo_is_sharp,
    parse_id_card_front,
    read_id_card_front,
)
from apps.verification.integrations.ocr import OcrLine, RapidOcrEngine
from tests.fixtures.cardgen import CardPerson, Degradation, face_photos, generate_id_card_front, make_id_number


@pytest.fixture(scope="module")
def engine() -> Iterator[RapidOcrEngine]:
    ocr = RapidOcrEngine()
    ocr.warm_up()
    yield ocr


def _card(name: str, seq: int, *, split_labels: bool = False, ethnicity: str = "汉") -> tuple[CardPerson, bytes]:
    born = date(1991, 4, 12)
    person = CardPerson(
        name=name,
        sex="F",
        ethnicity=ethnicity,
        birth_date=born,
        address="浙江省杭州市西湖区文三路478号华星时代广场",
        id_number=make_id_number("330106", born, seq, "F"),
    )
    photo = generate_id_card_front(
        person, face_photos()[seq % 3], degrade=Degradation(rotate_deg=4, jpeg_quality=70), split_labels=split_labels
    )
    return person, photo


def _read(engine: RapidOcrEngine, photo: bytes) -> CardPerson:
    image = load_untrusted_image(photo, max_side=1600)
    ensure_card_photo_is_sharp(image)
    front = parse_id_card_front(engine.read(image))
    return CardPerson(front.name, front.sex, front.ethnicity, front.birth_date, front.address, front.id_number)


@pytest.mark.parametrize(
    "name",
    ["黎暐霈", "林頔", "龚劼霞", "亓湉", "张喆", "李翀", "王璟", "赵淼", "欧阳湉湉", "司马暐"],
)
def test_a_rare_character_name_is_read_exactly(engine: RapidOcrEngine, name: str) -> None:
    person, photo = _card(name, 200 + sum(map(ord, name)) % 700)
    assert _read(engine, photo) == person


@pytest.mark.parametrize("name", ["刘军", "黎暐霈", "欧阳娜娜"])
def test_a_label_split_across_boxes_still_reads(engine: RapidOcrEngine, name: str) -> None:
    person, photo = _card(name, 100 + len(name), split_labels=True)
    assert _read(engine, photo) == person


@pytest.mark.parametrize("ethnicity", ["维吾尔", "土家", "柯尔克孜", "鄂伦春"])
def test_long_ethnicity_names_are_read_as_one_of_the_56(engine: RapidOcrEngine, ethnicity: str) -> None:
    _person, photo = _card("阿依古丽", 300 + len(ethnicity), ethnicity=ethnicity)
    assert _read(engine, photo).ethnicity == ethnicity


@pytest.mark.parametrize("name", ["黎暐霈", "龚劼霞", "亓湉", "欧阳湉湉"])
def test_the_quick_read_of_a_straightened_card_gives_what_the_standard_read_gives(
    engine: RapidOcrEngine, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    person, photo = _card(name, 500 + sum(map(ord, name)) % 300)
    card = rectify_card(load_untrusted_image(photo, max_side=1600))
    assert card is not None
    quick = read_id_card_front(engine, card, straightened=True).front
    monkeypatch.setattr(idcard, "_read_straightened_quickly", lambda _engine, _image: None)
    standard = read_id_card_front(engine, card, straightened=True).front
    assert quick == standard
    # Right, or wrong only where the read itself says it doubts (the bank's
    # record then decides; 龚劼霞 here is read 龚劫霞 with 劫 doubted).
    assert quick.id_number == person.id_number
    wrong = {index for index, (read, real) in enumerate(zip(quick.name, person.name, strict=True)) if read != real}
    assert wrong <= set(quick.name_uncertain)


def test_a_line_read_again_exactly_is_what_the_standard_read_read(engine: RapidOcrEngine) -> None:
    # The quick read pads short lines less; reread_exactly must give back the
    # standard read's text and per-character scores for every line.
    _person, photo = _card("龚劼霞", 611)
    card = rectify_card(load_untrusted_image(photo, max_side=1600))
    assert card is not None
    standard = engine.read(card, detection_side=STRAIGHTENED_DETECTION_SIDE, upright=True)
    quick = engine.read(card, detection_side=STRAIGHTENED_DETECTION_SIDE, upright=True, quick=True)
    assert [line.box for line in quick] == [line.box for line in standard]
    again = [engine.reread_exactly(line) for line in quick]
    assert [(line.text, line.char_scores) for line in again if line] == [
        (line.text, line.char_scores) for line in standard
    ]
    assert engine.reread_exactly(OcrLine("姓名", 0.9, ())) is None
