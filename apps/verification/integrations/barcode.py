"""Reading the barcode (QR or Code 128) printed in a customer's passbook.

Uses zbar through ``pyzbar``, which needs the system library ``libzbar0``
(Debian). Decoding is cheap (1–13 ms), so when the photo as taken yields
nothing we retry a few cleaned-up variants before giving up.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageOps
from pyzbar import pyzbar

# Small angles only: zbar finds QR codes at any angle, but linear codes
# (Code 128) only when the bars are nearly perpendicular to its scan lines, and
# a passbook is usually photographed roughly straight.
_RETRY_ROTATIONS_DEG = (-8.0, 8.0, -15.0, 15.0, -25.0, 25.0)


def decode_barcodes(image: Image.Image) -> list[str]:
    """Texts of all barcodes found, first attempt that finds any wins; [] if none.

    Attempts, in order: the grayscale image; an auto-contrast, Otsu-thresholded
    version (helps with glare and low-contrast print); then both at small
    rotations. Payloads are decoded as UTF-8 (zbar's own guess of the QR
    character set is not trusted) and de-duplicated in order.
    """
    for candidate in _candidates(image):
        found = _decode_once(candidate)
        if found:
            return found
    return []


def _decode_once(image: Image.Image) -> list[str]:
    texts: list[str] = []
    for symbol in pyzbar.decode(image):
        text = symbol.data.decode("utf-8", errors="replace")
        if text not in texts:
            texts.append(text)
    return texts


def _candidates(image: Image.Image) -> Iterator[Image.Image]:
    gray = image.convert("L")
    yield gray
    binary = _otsu_threshold(ImageOps.autocontrast(gray, cutoff=1))
    yield binary
    for angle in _RETRY_ROTATIONS_DEG:
        # fillcolor white: black corners would look like bars/finder patterns.
        yield gray.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
        yield binary.rotate(angle, resample=Image.Resampling.NEAREST, expand=True, fillcolor=255)


def _otsu_threshold(gray: Image.Image) -> Image.Image:
    """Black/white image using Otsu's threshold (maximises between-class variance)."""
    pixels = np.asarray(gray, dtype=np.uint8)
    histogram = np.bincount(pixels.ravel(), minlength=256).astype(np.float64)
    total = histogram.sum()
    if total == 0:
        return gray
    levels = np.arange(256, dtype=np.float64)
    weight_background = np.cumsum(histogram)
    weight_foreground = total - weight_background
    cumulative_mean = np.cumsum(histogram * levels)
    mean_total = cumulative_mean[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_background = cumulative_mean / weight_background
        mean_foreground = (mean_total - cumulative_mean) / weight_foreground
        between = weight_background * weight_foreground * (mean_background - mean_foreground) ** 2
    between = np.nan_to_num(between, nan=0.0, posinf=0.0, neginf=0.0)
    threshold = int(np.argmax(between))
    binary = np.where(pixels > threshold, 255, 0).astype(np.uint8)
    return Image.fromarray(binary)  # uint8 2-D → mode "L"
