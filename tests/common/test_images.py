"""Safe decoding of customer uploads and the small image helpers."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, ImageDraw

from apps.common.images import (
    ImageRejected,
    downscale_for_ocr,
    image_to_jpeg_bytes,
    load_untrusted_image,
)


def encode(image: Image.Image, format_name: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format_name, **options)
    return buffer.getvalue()


def photo(width: int = 320, height: int = 200) -> Image.Image:
    """A small picture with edges and colours (JPEG of a flat colour is too easy)."""
    image = Image.new("RGB", (width, height), (230, 220, 200))
    draw = ImageDraw.Draw(image)
    for index in range(0, width, 16):
        draw.line((index, 0, width - index, height), fill=(index % 255, 40, 120), width=3)
    return image


def png_with_declared_size(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG whose header claims ``width × height`` grey pixels.

    The pixel data is a few bytes of zlib; decoding it would need the full
    declared size in memory — the shape of a decompression bomb.
    """

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def rejection_code(data: bytes, **limits: int) -> str:
    with pytest.raises(ImageRejected) as caught:
        load_untrusted_image(data, **limits)
    return caught.value.code


# --- Accepted uploads -------------------------------------------------------------------


@pytest.mark.parametrize("format_name", ["JPEG", "PNG", "WEBP"])
def test_allowed_formats_decode_to_rgb_of_the_same_size(format_name: str) -> None:
    image = load_untrusted_image(encode(photo(), format_name))
    assert image.mode == "RGB"
    assert image.size == (320, 200)


def test_greyscale_png_is_converted_to_rgb() -> None:
    image = load_untrusted_image(encode(Image.new("L", (40, 30), 77), "PNG"))
    assert image.mode == "RGB"
    assert image.getpixel((5, 5)) == (77, 77, 77)


def test_transparent_png_gets_a_white_background() -> None:
    image = Image.new("RGBA", (40, 30), (0, 0, 0, 0))
    image.paste((200, 0, 0, 255), (0, 0, 20, 30))
    decoded = load_untrusted_image(encode(image, "PNG"))
    assert decoded.getpixel((30, 10)) == (255, 255, 255)
    assert decoded.getpixel((5, 10)) == (200, 0, 0)


def test_exif_rotated_jpeg_is_turned_upright() -> None:
    # Stored landscape, left half red and right half blue, tagged "rotate 90° clockwise
    # to display" (orientation 6) as phones do for portrait shots.
    stored = Image.new("RGB", (200, 100), (220, 0, 0))
    stored.paste((0, 0, 220), (100, 0, 200, 100))
    exif = Image.Exif()
    exif[0x0112] = 6
    decoded = load_untrusted_image(encode(stored, "JPEG", exif=exif.tobytes(), quality=95))
    assert decoded.size == (100, 200)
    top_red, _, top_blue = decoded.getpixel((50, 20))
    bottom_red, _, bottom_blue = decoded.getpixel((50, 180))
    assert top_red > 180 and top_blue < 60
    assert bottom_blue > 180 and bottom_red < 60


# --- Rejected uploads --------------------------------------------------------------------


def test_empty_upload_is_rejected_as_empty() -> None:
    assert rejection_code(b"") == "empty"


def test_upload_over_the_byte_limit_is_rejected_before_decoding() -> None:
    assert rejection_code(encode(photo(), "PNG"), max_bytes=1000) == "too_large_bytes"


@pytest.mark.parametrize(
    "data",
    [b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", b"hello, this is a text file\n" * 20, bytes(range(256)) * 4],
)
def test_non_image_bytes_are_rejected_as_not_an_image(data: bytes) -> None:
    assert rejection_code(data) == "not_an_image"


@pytest.mark.parametrize("format_name", ["GIF", "BMP", "TIFF"])
def test_other_image_formats_are_rejected_as_unsupported(format_name: str) -> None:
    assert rejection_code(encode(photo(), format_name)) == "unsupported_format"


def test_jpeg_cut_in_the_middle_is_rejected_as_truncated() -> None:
    data = encode(photo(640, 480), "JPEG", quality=90)
    assert rejection_code(data[: len(data) // 2]) == "truncated"


def test_png_cut_in_the_middle_is_rejected_as_truncated() -> None:
    data = encode(photo(640, 480), "PNG")
    assert rejection_code(data[: len(data) // 2]) == "truncated"


def test_jpeg_with_only_its_first_bytes_is_not_an_image() -> None:
    assert rejection_code(encode(photo(), "JPEG")[:40]) == "not_an_image"


def test_fifty_megapixel_png_is_rejected_as_too_many_pixels() -> None:
    data = encode(Image.new("L", (10_000, 5_000), 255), "PNG")
    assert len(data) < 15 * 1024 * 1024  # flat colour compresses: only the pixel count can stop it
    assert rejection_code(data) == "too_many_pixels"


def test_pixel_limit_is_configurable() -> None:
    assert rejection_code(encode(photo(320, 200), "PNG"), max_pixels=320 * 199) == "too_many_pixels"
    assert load_untrusted_image(encode(photo(320, 200), "PNG"), max_pixels=320 * 200).size == (320, 200)


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (10_000, 10_000),  # 100 Mpx: where Pillow itself would only *warn* (an error here via filterwarnings)
        (40_000, 40_000),  # 1.6 Gpx: where Pillow raises DecompressionBombError
    ],
)
def test_tiny_file_declaring_a_huge_image_is_a_decompression_bomb(width: int, height: int) -> None:
    data = png_with_declared_size(width, height)
    assert len(data) < 200
    assert rejection_code(data) == "decompression_bomb"


def test_rejection_carries_a_human_message() -> None:
    with pytest.raises(ImageRejected) as caught:
        load_untrusted_image(encode(photo(), "GIF"))
    assert "GIF" in caught.value.message
    assert str(caught.value) == caught.value.message


# --- Helpers ---------------------------------------------------------------------------------


def test_jpeg_bytes_round_trip_and_drop_exif() -> None:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # camera make: metadata we do not want to keep
    source = load_untrusted_image(encode(photo(), "JPEG", exif=exif.tobytes()))
    data = image_to_jpeg_bytes(source, quality=80)
    assert data.startswith(b"\xff\xd8\xff")
    with Image.open(io.BytesIO(data)) as reopened:
        assert reopened.size == (320, 200)
        assert reopened.getexif().get(0x010F) is None


def test_large_photo_is_downscaled_to_the_longest_side() -> None:
    assert downscale_for_ocr(Image.new("RGB", (4000, 3000)), max_side=1600).size == (1600, 1200)
    assert downscale_for_ocr(Image.new("RGB", (3000, 4000)), max_side=1600).size == (1200, 1600)


def test_small_photo_is_not_enlarged() -> None:
    small = Image.new("RGB", (800, 500))
    assert downscale_for_ocr(small, max_side=1600) is small
