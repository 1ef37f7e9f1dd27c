"""A phone-photo set of ID card fronts for bench/ocr_bench.py --phone (issue #15 targets).

Our own generator, separate from the held-out one: cards drawn with Noto Sans
CJK (tests/fixtures/cardgen.py's layout), then photographed like a phone
does: the card on a desk at 1.2–12 MP, tilted out of the sensor's plane (a
perspective trapezoid up to ~10°), rotated ±8°, a glare spot, mild blur,
sensor noise, JPEG 55–85, and sometimes stored sideways with an EXIF
orientation tag. Names mix common ones, rare characters (暐 頔 劼 湉 喆 翀 璟
淼), compound surnames and transliterated minority names with a middle dot;
ethnicities are drawn from all 56; a quarter of the cards have the name label
split ("姓" | "名刘军"). Every card is readable by a person: a reader must
read it exactly or ask for a retake.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from datetime import date

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from apps.verification.idcard import ETHNICITIES
from tests.fixtures.cardgen import SAMPLE_ADDRESSES, SAMPLE_NAMES, CardPerson, _render_id_card_front, make_id_number

RARE_NAMES = (
    "黎暐霈", "林頔", "龚劼霞", "亓湉", "张喆", "李翀", "王璟", "赵淼", "陈暐", "周頔然", "吴劼", "郑湉湉",
    "孙喆", "钱翀宇", "冯璟琳", "何淼淼", "欧阳暐", "司马頔", "上官璟", "诸葛湉", "皇甫喆", "令狐翀",
)  # fmt: skip
MINORITY_NAMES = ("阿依古丽·买买提", "热依拉·吐尔逊", "扎西·次仁", "巴图·孟和")


@dataclass(frozen=True)
class PhoneCard:
    person: CardPerson
    data: bytes
    conditions: str


def _person(rng: random.Random) -> CardPerson:
    roll = rng.random()
    if roll < 0.35:
        name = rng.choice(RARE_NAMES)
    elif roll < 0.45:
        name = rng.choice(MINORITY_NAMES)
    else:
        name = rng.choice(SAMPLE_NAMES)
    sex = rng.choice(("M", "F"))
    born = date(rng.randint(1950, 2005), rng.randint(1, 12), rng.randint(1, 28))
    region, address = rng.choice(SAMPLE_ADDRESSES)
    return CardPerson(
        name, sex, rng.choice(ETHNICITIES), born, address, make_id_number(region, born, rng.randint(0, 999), sex)
    )  # type: ignore[arg-type]


def _perspective(card: Image.Image, rng: random.Random, tilt_degrees: float) -> Image.Image:
    """The card seen slightly from one side: one edge shorter than the other."""
    width, height = card.size
    shrink = np.tan(np.radians(tilt_degrees)) * 0.5
    if rng.random() < 0.5:  # tilted about the vertical axis
        dy = height * shrink * rng.uniform(0.5, 1.0)
        corners = [(0, 0), (width, dy), (width, height - dy), (0, height)]
    else:
        dx = width * shrink * rng.uniform(0.5, 1.0)
        corners = [(dx, 0), (width - dx, 0), (width, height), (0, height)]
    # PIL's perspective transform maps output → input coefficients.
    import cv2

    matrix = cv2.getPerspectiveTransform(
        np.array(corners, dtype=np.float32),
        np.array([(0, 0), (width, 0), (width, height), (0, height)], dtype=np.float32),
    )
    coefficients = (matrix / matrix[2, 2]).flatten()[:8]
    return card.transform(
        card.size, Image.Transform.PERSPECTIVE, tuple(coefficients), Image.Resampling.BICUBIC, fillcolor=(74, 66, 58)
    )


def phone_card(rng: random.Random, portrait: object) -> PhoneCard:
    person = _person(rng)
    split = rng.random() < 0.25
    card = _render_id_card_front(person, portrait, split_labels=split)  # type: ignore[arg-type]
    tilt = rng.uniform(0, 10)
    card = _perspective(card, rng, tilt)
    megapixels = rng.uniform(1.2, 12)
    photo_width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    photo_height = int(photo_width * 3 / 4)
    fill = rng.uniform(0.6, 0.85)
    scale = fill * photo_width / card.width
    card = card.resize((round(card.width * scale), round(card.height * scale)), Image.Resampling.BICUBIC)
    desk = Image.new("RGB", (photo_width, photo_height), tuple(rng.randint(40, 110) for _ in range(3)))  # type: ignore[arg-type]
    desk.paste(
        card,
        (
            (photo_width - card.width) // 2 + rng.randint(-20, 20),
            (photo_height - card.height) // 2 + rng.randint(-20, 20),
        ),
    )
    rotation = rng.uniform(-8, 8)
    photo = desk.rotate(rotation, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=desk.getpixel((0, 0)))
    glare = rng.random() < 0.4
    if glare:
        overlay = Image.new("L", photo.size, 0)
        radius = photo_width * rng.uniform(0.05, 0.12)
        cx, cy = photo_width * rng.uniform(0.3, 0.7), photo_height * rng.uniform(0.3, 0.7)
        ImageDraw.Draw(overlay).ellipse(
            (cx - radius, cy - radius, cx + radius, cy + radius), fill=int(rng.uniform(60, 120))
        )
        overlay = overlay.filter(ImageFilter.GaussianBlur(radius / 2))
        photo = Image.composite(Image.new("RGB", photo.size, (255, 255, 250)), photo, overlay)
    blur = rng.choice((0.0, 0.0, 0.6, 1.0)) * photo_width / 2000
    if blur:
        photo = photo.filter(ImageFilter.GaussianBlur(blur))
    noise = rng.uniform(0, 8)
    pixels = np.asarray(photo, dtype=np.float32) + np.random.default_rng(rng.randint(0, 2**31)).normal(
        0, noise, (photo_height, photo_width, 3)
    )
    photo = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    exif = rng.random() < 0.25
    quality = rng.randint(55, 85)
    buffer = io.BytesIO()
    if exif:
        # Stored sideways, with the tag that tells viewers to turn it back.
        sideways = photo.transpose(Image.Transpose.ROTATE_90)
        tags = Image.Exif()
        tags[0x0112] = 6  # viewers turn it 90° clockwise back upright
        sideways.save(buffer, format="JPEG", quality=quality, exif=tags.tobytes())
    else:
        photo.save(buffer, format="JPEG", quality=quality)
    conditions = (
        f"{megapixels:.1f}MP tilt{tilt:.0f} rot{rotation:+.0f} q{quality}"
        + (" glare" if glare else "")
        + (f" blur{blur:.1f}" if blur else "")
        + (" exif" if exif else "")
        + (" split" if split else "")
    )
    return PhoneCard(person, buffer.getvalue(), conditions)
