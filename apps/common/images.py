"""Safe decoding of images that customers upload, and small image helpers.

Customer uploads are untrusted input that reaches a C image decoder, so
``load_untrusted_image`` checks everything it can *before* pixels are decoded:
byte size, format (by magic bytes, JPEG/PNG/WEBP only) and declared
dimensions. Only then does it decode, and it decodes fully so that truncated
files fail here instead of later in OCR or face matching.

This module must not import Django: the OCR benchmark and the pure tests use it.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Final, Literal

import numpy as np
from PIL import Image, ImageFile, ImageFilter, ImageOps, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

ImageRejectionCode = Literal[
    "empty",
    "too_large_bytes",
    "not_an_image",
    "unsupported_format",
    "truncated",
    "too_many_pixels",
    "decompression_bomb",
]

DEFAULT_MAX_BYTES: Final = 15 * 1024 * 1024
DEFAULT_MAX_PIXELS: Final = 40_000_000

# Pillow's own decompression-bomb threshold, used when the process disabled it
# (``Image.MAX_IMAGE_PIXELS = None``): we never want "no limit" for uploads.
_PILLOW_DEFAULT_BOMB_PIXELS: Final = 1024 * 1024 * 1024 // 4 // 3

# The decoders we allow, keyed by the magic bytes that select them. We build
# the plugin's ImageFile ourselves instead of calling ``Image.open`` because
# ``Image.open`` runs Pillow's bomb check, which *warns* (a process-global
# ``warnings`` affair) between 89 and 179 megapixels. Making that warning an
# error would need ``warnings.catch_warnings()``, which is not thread-safe
# before Python 3.14 and uploads are decoded in worker threads. Checking the
# declared size ourselves first means that warning can never be emitted.
_ALLOWED_DECODERS: Final[dict[str, type[ImageFile.ImageFile]]] = {
    "JPEG": JpegImagePlugin.JpegImageFile,
    "PNG": PngImagePlugin.PngImageFile,
    "WEBP": WebPImagePlugin.WebPImageFile,
}

# Exceptions Pillow's decoders raise for malformed or truncated data.
_DECODER_ERRORS: Final = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)


class ImageRejected(Exception):
    """An upload was refused; ``code`` is stable and meant for API clients."""

    def __init__(self, code: ImageRejectionCode, message: str) -> None:
        super().__init__(message)
        self.code: ImageRejectionCode = code
        self.message = message


def _sniff_allowed_format(data: bytes) -> str | None:
    """Return "JPEG", "PNG" or "WEBP" when the magic bytes say so, else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _pillow_recognises(data: bytes) -> str | None:
    """Name of another format Pillow knows this data as, without decoding it.

    Only the plugins' cheap ``accept`` prefix checks run, so an unsupported
    format is reported as such (e.g. "GIF") rather than as "not an image".
    """
    Image.init()
    prefix = data[:16]
    for format_name, (_factory, accept) in Image.OPEN.items():
        # Plugins without an accept function (TGA, IM, ...) would "accept" any
        # garbage, so they cannot tell us anything here.
        if accept is None:
            continue
        try:
            accepted = accept(prefix)
        except Exception:  # a plugin's accept() must never turn a rejection into a crash
            accepted = False
        if accepted is True:
            return format_name
    return None


def _bomb_limit() -> int:
    limit = Image.MAX_IMAGE_PIXELS
    return _PILLOW_DEFAULT_BOMB_PIXELS if limit is None else int(limit)


# A JPEG whose declared size exceeds ``max_pixels`` is still accepted when
# the decoder can shrink it while decoding (``draft``: DCT scaling by 1/2, 1/4
# or 1/8, never holding the full-size pixels) to at most ``max_pixels``, up to
# this many declared pixels: a 108-megapixel phone photo decodes at 1/4 scale
# into ~7 MP. PNG and WEBP cannot be decoded smaller, so for them
# ``max_pixels`` is the limit.
DEFAULT_MAX_DRAFT_PIXELS: Final = 200_000_000

# More declared pixels per byte of file than any photograph has: even a
# uniformly white 108 MP JPEG needs about a byte per 60 pixels. Beyond this
# the file is built to explode in memory (a decompression bomb), not a photo.
_BOMB_PIXELS_PER_BYTE: Final = 1000


def load_untrusted_image(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_side: int | None = None,
    max_draft_pixels: int = DEFAULT_MAX_DRAFT_PIXELS,
) -> Image.Image:
    """Decode an uploaded photo into an upright RGB image, or raise ImageRejected.

    Order of checks (cheapest and safest first): empty, byte size, magic bytes,
    header parse, declared pixel count (read from the header, before any pixel
    is decoded): far more pixels than bytes → "decompression_bomb"; more than
    ``max_pixels`` that cannot be decoded smaller → "too_many_pixels"; then
    the decode ("truncated"), EXIF orientation, conversion to RGB. Pillow's
    own bomb check never runs (we never call ``Image.open``).

    With ``max_side`` the photo is decoded straight at about that size (JPEG
    DCT scaling) and then resized so its longer side is at most ``max_side``:
    one decode, never the full-size pixels in memory, for every later step
    (storage, OCR, face). Transparent pixels become white, not black, so a
    PNG with a transparent background still OCRs.
    """
    if not data:
        raise ImageRejected("empty", "The uploaded file is empty.")
    if len(data) > max_bytes:
        raise ImageRejected("too_large_bytes", f"The file is larger than {max_bytes // (1024 * 1024)} MB.")

    format_name = _sniff_allowed_format(data)
    if format_name is None:
        other = _pillow_recognises(data)
        if other is not None:
            raise ImageRejected("unsupported_format", f"{other} images are not accepted; use JPEG, PNG or WEBP.")
        raise ImageRejected("not_an_image", "The file is not an image.")

    try:
        image = _ALLOWED_DECODERS[format_name](io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        # WEBP's header parser runs Pillow's bomb check itself (error-only,
        # above twice Pillow's limit): far beyond any photo.
        raise ImageRejected("decompression_bomb", "The image declares an absurd size.") from error
    except _DECODER_ERRORS as error:
        # The header of an allowed format did not parse: corrupt or cut at the start.
        raise ImageRejected("not_an_image", "The file is not a readable image.") from error

    width, height = image.size
    pixels = max(1, width) * max(1, height)
    if pixels > max_pixels and pixels > _BOMB_PIXELS_PER_BYTE * len(data):
        image.close()
        raise ImageRejected("decompression_bomb", "The image declares an absurd size.")
    if pixels > max_pixels:
        reduced = _draft_within(image, max_pixels=max_pixels, max_draft_pixels=max_draft_pixels, max_side=max_side)
        if reduced is None:
            image.close()
            raise ImageRejected(
                "too_many_pixels",
                f"The image has {pixels / 1_000_000:.0f} megapixels; the limit is {max_pixels // 1_000_000}.",
            )
    elif max_side is not None and format_name == "JPEG":
        _draft_within(image, max_pixels=max_pixels, max_draft_pixels=max_draft_pixels, max_side=max_side)

    try:
        # load() decodes everything now; with Pillow's default
        # LOAD_TRUNCATED_IMAGES = False a cut-off file raises OSError here.
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageRejected("decompression_bomb", "The image declares an absurd size.") from error
    except _DECODER_ERRORS as error:
        raise ImageRejected("truncated", "The image is incomplete or damaged.") from error

    # Shrunk before it is turned upright: the longer side is the same either
    # way, and turning the smaller image costs a fraction (0.06 CPU-s for a
    # sideways 12 MP phone photo turned at its decoded size).
    rgb = downscale_for_ocr(_to_rgb(image), max_side or max(image.size))
    rgb.info.update(image.info)  # the EXIF orientation tag travels with the pixels
    return _apply_exif_orientation(rgb)


def _draft_within(
    image: ImageFile.ImageFile, *, max_pixels: int, max_draft_pixels: int, max_side: int | None
) -> ImageFile.ImageFile | None:
    """Ask a JPEG decoder to decode at a reduced scale; the image, or None when it cannot get small enough.

    The scale is the smallest reduction (1/2 … 1/8) that brings the image
    under ``max_pixels`` and, when given, keeps the longer side ≥ ``max_side``
    (the final resize then does the rest with good quality).
    """
    width, height = image.size
    if not isinstance(image, JpegImagePlugin.JpegImageFile) or width * height > max_draft_pixels:
        return None
    scales = (1, 2, 4, 8)  # what libjpeg's DCT scaling offers
    fitting = [scale for scale in scales if (width // scale) * (height // scale) <= max_pixels]
    if not fitting:
        return None
    scale = fitting[0]
    if max_side is not None:
        scale = max([scale, *(s for s in scales if max(width, height) // s >= max_side)])
    if scale > 1:
        # draft() picks the largest reduction whose result is still ≥ the size asked for.
        image.draft("RGB", ((width + scale - 1) // scale, (height + scale - 1) // scale))
    drafted_width, drafted_height = image.size
    return image if drafted_width * drafted_height <= max_pixels else None


def _apply_exif_orientation(image: Image.Image) -> Image.Image:
    """Rotate as the camera's EXIF orientation says; phones store portrait shots sideways."""
    try:
        return ImageOps.exif_transpose(image)
    except (*_DECODER_ERRORS, KeyError, TypeError):
        # Malformed EXIF is common on cheap phones; the pixels are still good,
        # and refusing the photo would only make the customer retry in vain.
        return image


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def image_to_jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    """Encode as baseline JPEG (RGB); EXIF and other metadata are deliberately dropped."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


def downscale_for_ocr(image: Image.Image, max_side: int = 1600) -> Image.Image:
    """Shrink so the longer side is at most ``max_side``; never enlarges.

    Phone photos are 12+ megapixels; the OCR detector resizes internally anyway,
    so handing it a smaller image only saves memory and time.

    HAMMING, not LANCZOS: the same antialiased shrink with a filter a third as
    wide, so it costs half (35 vs 78 ms p50 on 28 phone photos here, the
    largest single step before the OCR). Measured 2026-12-04 on the phone
    bench, each seed with both filters: name+ID exact the same on seeds
    2027, 90210, 4711 and 31337 (100, 100, 100, 98.8 %: the same card sent
    back for a retake); and on 42 card portraits cut from phone photos of the
    faces set, the two portraits' embeddings 0.0014 apart at most, no
    live-vs-ID decision changed in 588 pairs. BILINEAR, as cheap but softer,
    lost a rare character (吴劼 read 吴劫) on one card of seed 90210.
    """
    width, height = image.size
    longer = max(width, height)
    if longer <= max_side:
        return image
    scale = max_side / longer
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(new_size, Image.Resampling.HAMMING)


def edge_sharpness(image: Image.Image, *, width: int = 856) -> float:
    """How steep the strongest edges are relative to their own contrast; lower = blurrier.

    For a step edge blurred with a Gaussian of width σ, the steepest gradient
    is about contrast / (2.5 σ); dividing each strong gradient by the
    brightness range around it (an 11×11 window) cancels the contrast, so the
    value depends on blur alone — not on lighting, print colour or what else
    is in the photo. The image is first scaled to ``width`` (independent of
    camera resolution) and lightly smoothed (sensor noise is not detail).
    Returns the median ratio over the strongest 0.5 % of gradients, ×100:
    ≈ 39 for a crisp card at 856 px, ≈ 19 at Gaussian blur radius 2, ≈ 15 at 3.
    0.0 for a featureless image.
    """
    gray = image.convert("L")
    height = max(1, round(gray.height * width / gray.width))
    smoothed = gray.resize((width, height), Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(1))
    pixels = np.asarray(smoothed, dtype=np.float64)
    if pixels.shape[0] < 2 or pixels.shape[1] < 2:
        return 0.0
    magnitude = np.hypot(np.diff(pixels, axis=1)[:-1, :], np.diff(pixels, axis=0)[:, :-1])
    threshold = np.percentile(magnitude, 99.5)
    if threshold < 1.0:
        return 0.0
    rows, columns = np.nonzero(magnitude >= threshold)
    # Local brightness range only where needed (a few thousand windows), not
    # with a full-image max/min filter.
    radius = 5
    padded = np.pad(pixels, radius, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (2 * radius + 1, 2 * radius + 1))[rows, columns]
    local_range = windows.max(axis=(1, 2)) - windows.min(axis=(1, 2))
    ratios = magnitude[rows, columns] / np.maximum(local_range, 1.0)
    return float(np.median(ratios) * 100)
