"""Finding the ID card in a phone photo and straightening it (issue #15 item 1).

A phone photo holds the card somewhere on a desk or in a hand, tilted (the
card is not parallel to the sensor: a trapezoid) and rotated. OCR of the
whole photo reads the desk's clutter too, needs the full resolution to see
small text and cannot know where on the card a line was. So the card's four
corners are found (edges → the largest convex quadrilateral of plausible
size, or the minimum-area rectangle of the largest blob), and the card is
warped onto a fixed canvas of the ID-1 ratio (85.6 × 54 mm, ``CARD_WORKING_SIZE``):
after that, positions are card coordinates (the portrait is always at
``PORTRAIT_BOX``) and OCR works on ~0.46 MP instead of ~2 MP.

When no card outline is found (card filling the frame, low contrast to the
background), ``None`` is returned and the caller reads the photo as it is.
Pure image code (OpenCV + numpy), no Django.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from PIL import Image

# 10 px per mm: the size the sharpness gate and the parser's geometry assume.
CARD_WORKING_SIZE: Final = (856, 540)
_CARD_RATIO: Final = 85.6 / 54.0
_DETECTION_SIDE: Final = 640
# A card the capture guide lets through covers a good part of the frame.
_MIN_AREA_FRACTION: Final = 0.12
_MAX_AREA_FRACTION: Final = 0.985
_RATIO_TOLERANCE: Final = 0.30


def _order_corners(points: np.ndarray) -> np.ndarray:
    """Top-left, top-right, bottom-right, bottom-left, with the card's long side horizontal."""
    center = points.mean(axis=0)
    angles = np.arctan2(points[:, 1] - center[1], points[:, 0] - center[0])
    ordered = points[np.argsort(angles)]  # clockwise in image coordinates, starting anywhere
    start = int(np.argmin(ordered.sum(axis=1)))  # the top-left has the smallest x + y
    ordered = np.roll(ordered, -start, axis=0)
    top = np.linalg.norm(ordered[1] - ordered[0])
    side = np.linalg.norm(ordered[3] - ordered[0])
    if side > top:
        # The card stands on its short side (a portrait photo not turned by
        # EXIF): rotate so its long side is horizontal; the reading order and
        # the OCR's line classifier deal with a card upside down.
        ordered = np.roll(ordered, 1, axis=0)
    return ordered.astype(np.float32)


def _plausible(quad: np.ndarray, frame_area: float) -> bool:
    import cv2

    area = abs(cv2.contourArea(quad.astype(np.float32)))
    if not (_MIN_AREA_FRACTION * frame_area <= area <= _MAX_AREA_FRACTION * frame_area):
        return False
    ordered = _order_corners(quad)
    width = (np.linalg.norm(ordered[1] - ordered[0]) + np.linalg.norm(ordered[2] - ordered[3])) / 2
    height = (np.linalg.norm(ordered[3] - ordered[0]) + np.linalg.norm(ordered[2] - ordered[1])) / 2
    if height < 1:
        return False
    return bool(abs(width / height - _CARD_RATIO) / _CARD_RATIO <= _RATIO_TOLERANCE)


def find_card_corners(image: Image.Image) -> np.ndarray | None:
    """The card's four corners in ``image`` pixels (TL, TR, BR, BL), or None."""
    import cv2

    scale = _DETECTION_SIDE / max(image.size)
    small = image.convert("L").resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.BILINEAR
    )
    gray = cv2.GaussianBlur(np.asarray(small), (5, 5), 0)
    frame_area = float(gray.shape[0] * gray.shape[1])
    candidates: list[np.ndarray] = []
    # Two views of the outline: edges (any background) and a global threshold
    # (a light card on a darker desk, where the guilloche makes edges noisy).
    edges = cv2.dilate(cv2.Canny(gray, 40, 120), np.ones((3, 3), np.uint8), iterations=2)
    _threshold, binary = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
    for mask in (binary, edges):
        contours, _hierarchy = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for contour in sorted(contours, key=cv2.contourArea, reverse=True)[:5]:
            hull = cv2.convexHull(contour)
            perimeter = cv2.arcLength(hull, True)
            approx = cv2.approxPolyDP(hull, 0.02 * perimeter, True).reshape(-1, 2)
            if len(approx) == 4:
                candidates.append(approx.astype(np.float32))
            # Rounded corners and glare make the polygon 5–8 sided: the
            # minimum-area rectangle of the hull is then the card.
            box = cv2.boxPoints(cv2.minAreaRect(hull)).astype(np.float32)
            if abs(cv2.contourArea(hull)) >= 0.9 * abs(cv2.contourArea(box)):
                candidates.append(box)
    for quad in candidates:
        if _plausible(quad, frame_area):
            return _order_corners(quad) / scale
    return None


def rectify_card(image: Image.Image) -> Image.Image | None:
    """The card alone, straightened onto ``CARD_WORKING_SIZE``; None when no card outline was found."""
    import cv2

    corners = find_card_corners(image)
    if corners is None:
        return None
    width, height = CARD_WORKING_SIZE
    target = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(corners.astype(np.float32), target)
    warped = cv2.warpPerspective(
        np.asarray(image.convert("RGB")), matrix, (width, height), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
    )
    return Image.fromarray(warped)
