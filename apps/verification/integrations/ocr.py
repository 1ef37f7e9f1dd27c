"""Text recognition (OCR) of customer photos, behind a small typed interface.

The real engine is RapidOCR (PP-OCR ONNX models shipped inside the ``rapidocr``
wheel, run by ``onnxruntime`` which must be installed separately). Nothing is
downloaded at run time: RapidOCR only downloads when a bundled model file is
missing or fails its SHA-256 check.

Services depend on the ``OcrEngine`` protocol and get the process-wide engine
from ``get_ocr_engine()``; tests use the real engine (it runs here).
"""

from __future__ import annotations

import math
import statistics
import threading
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final, Protocol

import numpy as np
from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rapidocr import RapidOCR

Point = tuple[float, float]


@dataclass(frozen=True)
class OcrLine:
    """One recognised line of text.

    ``box`` is the detected quadrilateral in image pixels, clockwise from the
    top-left corner (four points for RapidOCR; hand-built lines may use any).
    ``char_scores`` holds one recognition score per character of ``text``
    (spaces included), or is empty when the engine gave none: ``score`` is
    their mean, and a mean of 0.95 can hide one character read at 0.4.
    ``crop`` is the engine's own cut of the line from the image (RapidOCR:
    the straightened box, a BGR array), kept so that ``reread_exactly`` can
    read the very same pixels again; None for hand-built lines.
    """

    text: str
    score: float
    box: tuple[Point, ...]
    char_scores: tuple[float, ...] = ()
    crop: Any = field(default=None, compare=False, repr=False)

    def character_scores(self) -> tuple[float, ...]:
        """One score per character of ``text``: the engine's own, else the line's score for each."""
        if len(self.char_scores) == len(self.text):
            return self.char_scores
        return (self.score,) * len(self.text)

    @property
    def top(self) -> float:
        return min(y for _, y in self.box) if self.box else 0.0

    @property
    def bottom(self) -> float:
        return max(y for _, y in self.box) if self.box else 0.0

    @property
    def left(self) -> float:
        return min(x for x, _ in self.box) if self.box else 0.0


class OcrEngine(Protocol):
    def read(
        self, image: Image.Image, *, detection_side: int | None = None, upright: bool = False, quick: bool = False
    ) -> list[OcrLine]:
        """Return the lines of text in ``image`` in reading order.

        ``detection_side``: run the text detector with the image's longer side
        at most this many pixels (the recogniser still reads crops of
        ``image`` itself). ``upright``: the caller knows the text is not
        upside down (or handles that itself), so no line is checked for 180°.
        ``quick``: short lines are recognised at their own width rather than
        padded to the recogniser's standard width. Cheaper, but a short
        line's reading (a rare character of a name) can differ from the
        standard one; a line that must be read as the standard read would
        goes through ``reread_exactly``.
        """
        ...

    def reread_exactly(self, line: OcrLine) -> OcrLine | None:
        """``line`` recognised again from its own crop as a standard (not quick) read would; None without a crop."""
        ...

    def read_line(self, image: Image.Image) -> OcrLine | None:
        """Recognise ``image`` as one upright line of text (no detection); None when nothing was read."""
        ...


def _text_skew_radians(lines: Sequence[OcrLine]) -> float:
    """Median angle of the lines' top edges (box point 0 → point 1); 0 when unknown."""
    angles = []
    for line in lines:
        if len(line.box) < 4:
            continue
        (x0, y0), (x1, y1) = line.box[0], line.box[1]
        if x1 - x0 > 1.0:
            angles.append(math.atan2(y1 - y0, x1 - x0))
    return statistics.median(angles) if angles else 0.0


def sort_reading_order(lines: Sequence[OcrLine]) -> list[OcrLine]:
    """Order lines top-to-bottom, then left-to-right within one visual row.

    Sorting by box top alone is not enough: on an ID card "男" and "民族" sit on
    one row but their boxes' tops differ by a few pixels, and in a photo tilted
    by 7° the right end of a row is 50 px higher than its left end — above the
    start of the previous row. So the boxes are first rotated back by the
    median tilt of the text, then lines whose vertical centres are closer than
    half the typical line height form one row, each row sorted by left edge.
    """
    if not lines:
        return []
    skew = _text_skew_radians(lines)
    cos, sin = math.cos(-skew), math.sin(-skew)

    def upright(line: OcrLine) -> tuple[float, float, float]:
        """(top, bottom, left) of the line in de-rotated coordinates."""
        if not line.box:
            return 0.0, 0.0, 0.0
        xs = [x * cos - y * sin for x, y in line.box]
        ys = [x * sin + y * cos for x, y in line.box]
        return min(ys), max(ys), min(xs)

    geometry = {id(line): upright(line) for line in lines}
    heights = [max(1.0, bottom - top) for top, bottom, _left in geometry.values()]
    tolerance = statistics.median(heights) / 2

    def center(line: OcrLine) -> float:
        top, bottom, _left = geometry[id(line)]
        return (top + bottom) / 2

    def left(line: OcrLine) -> float:
        return geometry[id(line)][2]

    rows: list[list[OcrLine]] = []
    row_center = 0.0
    for line in sorted(lines, key=lambda line: (center(line), left(line))):
        if rows and abs(center(line) - row_center) <= tolerance:
            rows[-1].append(line)
            row_center = sum(center(member) for member in rows[-1]) / len(rows[-1])
        else:
            rows.append([line])
            row_center = center(line)
    return [line for row in rows for line in sorted(row, key=left)]


DEFAULT_RAPIDOCR_PARAMS: dict[str, Any] = {
    # RapidOCR logs a WARNING for every image without text, which for us is an
    # ordinary outcome (the "not an ID card" check), not a problem.
    "Global.log_level": "error",
    # The detector's default scales the *shorter* side up to at least 736 px,
    # so a 1600×1200 phone photo is detected at full size: 2.5 s of CPU per
    # card here. Capping the *longer* side at 960 px halves that (1.1 s) with
    # the same accuracy on our benchmark: text lines of an ID card framed by
    # the capture guide are still ≥ 15 px high at that size, and the
    # recogniser reads its crops from the full-resolution image anyway.
    "Det.limit_type": "max",
    "Det.limit_side_len": 960,
    # One onnxruntime thread per process. With the default (one per core)
    # its worker threads spin while waiting, which on a busy 2-core machine
    # burns CPU for nothing: measured 1.32 → 0.89 CPU-s per rectified card
    # (load average 13), and lower wall time too. Throughput comes from
    # running several OCR worker processes (the ``ocr`` Celery queue), not
    # from threads inside one image.
    "EngineConfig.onnxruntime.intra_op_num_threads": 1,
    "EngineConfig.onnxruntime.inter_op_num_threads": 1,
    # One line per recogniser run. In a batch every crop is padded to the
    # widest one's width (an 18-digit number next to a two-character label),
    # and the padding is computed too: 10 straightened phone cards took 0.60
    # CPU-s each with the default batch of 6, 0.49 with 1 (same text). It
    # also makes a line's reading independent of which lines share its batch.
    "Rec.rec_batch_num": 1,
}

# The narrowest input of a quick read (``OcrEngine.read(quick=True)``), in
# pixels at the recogniser's 48 px line height. RapidOCR pads every line to
# 320 px and the recogniser's cost is that width (29 ms at 320, 13 at 160,
# 8 at 96 here); most lines of an ID card (the labels, the sex, the
# ethnicity, a name) are 50–150 px. Read at their own width they cost about
# a third; on 30 straightened cards of the phone bench (seed 2027) the parsed
# card, every field, was the same as the standard read's. The name, whose
# rare characters the padding does change (龚劼霞 read as 龚劫霞 at 160), is
# read again the standard way (``reread_exactly``).
QUICK_LINE_MIN_WIDTH: Final = 64


class RapidOcrEngine:
    """RapidOCR wrapped for a multi-threaded web process.

    Loading the three ONNX models takes about a second and ~200 MB, so it
    happens once per process, lazily (importing this module stays cheap, and
    processes that never OCR — Celery beat, migrations — never pay for it).

    Two locks, for two different reasons:
    - ``_load_lock``: without it, two requests arriving together in a fresh
      worker would both build the models (double memory, double start-up).
    - ``_run_lock``: a RapidOCR instance is not documented as thread-safe and
      it is not — each call writes per-call state onto the shared instance
      (``update_params``, the detector's ``preprocess_op``). onnxruntime already
      uses every core for one image, so running two images at once would not
      be faster anyway; serialising calls costs nothing in throughput.
    """

    def __init__(self, *, params: dict[str, Any] | None = None) -> None:
        self._params: dict[str, Any] = {**DEFAULT_RAPIDOCR_PARAMS, **(params or {})}
        self._engine: RapidOCR | None = None
        self._recogniser: Any = None
        self._crop_keeper: _CropKeepingRecogniser | None = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

    def _loaded_engine(self) -> RapidOCR:
        engine = self._engine
        if engine is not None:
            return engine
        with self._load_lock:
            if self._engine is None:
                # Imported here so that importing this module never loads
                # onnxruntime/OpenCV (≈0.5 s, ≈100 MB) in processes that do not OCR.
                from rapidocr import RapidOCR

                engine = RapidOCR(params=self._params)
                recogniser = engine._load_rec_model()
                recogniser.postprocess_op = _RunConfidenceDecoder(recogniser.postprocess_op)
                self._recogniser = recogniser
                self._crop_keeper = _CropKeepingRecogniser(recogniser)
                engine.text_rec = self._crop_keeper  # type: ignore[assignment]  # a proxy of the recogniser
                self._engine = engine
            return self._engine

    def warm_up(self) -> None:
        """Load the models and run once, so the first customer does not wait for it.

        The image must contain text: on a blank one the detector finds nothing
        and the classifier and recogniser are never loaded nor run.
        """
        sample = Image.new("RGB", (480, 120), "white")
        ImageDraw.Draw(sample).text((20, 30), "0123456789", fill="black", font=ImageFont.load_default(size=48))
        self.read(sample)

    def read(
        self, image: Image.Image, *, detection_side: int | None = None, upright: bool = False, quick: bool = False
    ) -> list[OcrLine]:
        engine = self._loaded_engine()
        bgr = _bgr(image)
        with self._run_lock:
            # RapidOCR offers no per-call detector size; its detector reads this attribute on every call.
            detector = engine._load_det_model()
            configured_side = detector.limit_side_len
            if detection_side is not None:
                detector.limit_side_len = detection_side
            recogniser = self._recogniser
            standard_shape = recogniser.rec_image_shape
            if quick:
                # RapidOCR pads each line to max(its own width, this width).
                recogniser.rec_image_shape = [*standard_shape[:2], QUICK_LINE_MIN_WIDTH]
            try:
                # Explicit True/False: RapidOCR keeps a flag passed once for every later call.
                result = engine(bgr, use_cls=not upright, return_word_box=False)
                keeper = self._crop_keeper
                crops = keeper.kept_crops(result, text_score=engine.text_score) if keeper else None
            finally:
                detector.limit_side_len = configured_side
                recogniser.rec_image_shape = standard_shape
        return sort_reading_order(_lines_from_result(result, crops))

    def reread_exactly(self, line: OcrLine) -> OcrLine | None:
        if line.crop is None:
            return None
        engine = self._loaded_engine()
        recognised = self._recognise_one(line.crop)
        if recognised is None or not recognised[0].strip() or recognised[1] < engine.text_score:
            return None  # a standard read would not have kept the line at all
        text, score = recognised
        return replace(line, text=text, score=float(score), char_scores=tuple(getattr(score, "characters", ())))

    def read_line(self, image: Image.Image) -> OcrLine | None:
        self._loaded_engine()
        recognised = self._recognise_one(_bgr(image))
        if recognised is None or not recognised[0]:
            return None
        text, score = recognised
        width, height = image.size
        box = ((0.0, 0.0), (float(width), 0.0), (float(width), float(height)), (0.0, float(height)))
        return OcrLine(text=text, score=float(score), box=box, char_scores=tuple(getattr(score, "characters", ())))

    def _recognise_one(self, bgr: np.ndarray) -> tuple[str, Any] | None:
        """One line image (BGR) through the recogniser alone: its text and score, or None when it read nothing.

        Called directly: RapidOCR's own ``use_det=False`` would be kept for
        every later call. The models must already be loaded (``_loaded_engine``).
        """
        from rapidocr.ch_ppocr_rec import TextRecInput

        with self._run_lock:
            result = self._recogniser(TextRecInput(img=[bgr], return_word_box=False))
        texts, scores = getattr(result, "txts", None), getattr(result, "scores", None)
        if not texts or not scores:
            return None
        return str(texts[0]), scores[0]


def _bgr(image: Image.Image) -> np.ndarray:
    """The image as a contiguous BGR array.

    RapidOCR treats a numpy array as BGR (OpenCV order); giving it an
    explicit array avoids its own PIL path, which would also accept file
    paths and URLs — not something we want reachable.
    """
    rgb = np.asarray(image.convert("RGB"))
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _lines_from_result(result: object, crops: Sequence[Any] | None = None) -> list[OcrLine]:
    """Turn RapidOCR's output object into OcrLines.

    RapidOCR 3.x returns a ``RapidOCROutput`` with parallel ``boxes`` (N×4×2
    array), ``txts`` and ``scores``; all three are None when nothing was found
    (and other output types when det/rec are switched off, which we never do).
    Each score is a ``_LineScore`` carrying one score per character: the
    line's mean score hides one doubtful character of a name, which is what
    a wrong-but-plausible name looks like. ``crops``: the recogniser's input
    of each line, in the output's order (None: the lines carry none).
    """
    boxes = getattr(result, "boxes", None)
    texts = getattr(result, "txts", None)
    scores = getattr(result, "scores", None)
    if boxes is None or texts is None or scores is None:
        return []
    lines: list[OcrLine] = []
    for index, (box, text, score) in enumerate(zip(boxes, texts, scores, strict=True)):
        points = tuple((float(x), float(y)) for x, y in np.asarray(box).reshape(-1, 2))
        characters = getattr(score, "characters", ())
        crop = crops[index] if crops is not None else None
        lines.append(OcrLine(text=str(text), score=float(score), box=points, char_scores=tuple(characters), crop=crop))
    return lines


class _CropKeepingRecogniser:
    """RapidOCR's recogniser, keeping what its last call read.

    RapidOCR's output holds each line's box but not the crop the recogniser
    read (cut from the detector's padded image); reading a line again
    exactly needs that very crop.
    """

    def __init__(self, recogniser: Any) -> None:
        self._recogniser = recogniser
        self._last: tuple[list[Any], Any] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._recogniser, name)

    def __call__(self, args: Any) -> Any:
        self._last = None
        output = self._recogniser(args)
        self._last = (list(args.img) if isinstance(args.img, list) else [args.img], output)
        return output

    def kept_crops(self, result: object, *, text_score: float) -> list[Any] | None:
        """The crops of ``result``'s lines, in its order; None when they cannot be matched up.

        RapidOCR drops lines read as blank or scored under ``text_score``
        after recognising them; the same filter here pairs the rest.
        """
        last, self._last = self._last, None
        texts = getattr(result, "txts", None)
        if last is None or not texts:
            return None
        crops, output = last
        kept = [
            (crop, text)
            for crop, text, score in zip(crops, output.txts or (), output.scores or (), strict=False)
            if str(text).strip() and score >= text_score
        ]
        if [text for _crop, text in kept] != list(texts):
            return None
        return [crop for crop, _text in kept]


class _LineScore(float):
    """A line's recognition score (RapidOCR's mean) that also carries one score per character of the line."""

    characters: tuple[float, ...]

    def __new__(cls, mean: float, characters: tuple[float, ...]) -> _LineScore:
        score = super().__new__(cls, mean)
        score.characters = characters
        return score


class _RunConfidenceDecoder:
    """RapidOCR's CTC decoder, whose line scores also carry a sound score per character.

    RapidOCR 3.x's own per-character scores (``return_word_box``) are
    unusable as they are: it lists one score per recognised token
    *including spaces* but pairs them by position with the characters
    *without* spaces (``CalRecBoxes.cal_ocr_word_box``: after "姓名 " every
    character got its left neighbour's score, 李 in "姓名 李小明" the space's
    0.57), and it scores a character by the first frame that reads it, often
    the transition from the blank. Here a character's score is the highest
    probability over the run of frames that read it: what the recogniser
    believes about it (a character it doubts, 劫 for 劼, stays low over its
    whole run). The scores ride on the line's score (``_LineScore``), so no
    word boxes are computed at all (they cost ~8 % of a card's CPU).
    """

    def __init__(self, decoder: Any) -> None:
        self._decoder = decoder

    def __getattr__(self, name: str) -> Any:
        return getattr(self._decoder, name)

    def __call__(self, preds: np.ndarray, return_word_box: bool = False, **kwargs: Any) -> Any:
        line_results, word_results = self._decoder(preds, return_word_box, **kwargs)
        indices = preds.argmax(axis=2)
        probabilities = preds.max(axis=2)
        ignored = set(self._decoder.get_ignored_tokens())
        scored = []
        for batch_index, (text, mean) in enumerate(line_results):
            tokens, frames = indices[batch_index], probabilities[batch_index]
            confidences: list[float] = []
            frame = 0
            while frame < len(tokens):
                run_end = frame + 1
                while run_end < len(tokens) and tokens[run_end] == tokens[frame]:
                    run_end += 1
                if int(tokens[frame]) not in ignored:
                    confidences.append(round(float(frames[frame:run_end].max()), 5))
                frame = run_end
            # One token per character of the text, spaces included; anything
            # else and the line keeps only its mean (never misplaced scores).
            characters = tuple(confidences) if len(confidences) == len(text) else ()
            scored.append((text, _LineScore(mean, characters)))
        return scored, word_results


_engine_singleton: RapidOcrEngine | None = None
_singleton_lock = threading.Lock()


def get_ocr_engine() -> OcrEngine:
    """The process-wide OCR engine (created on first use, models loaded on first read)."""
    global _engine_singleton  # noqa: PLW0603 - a deliberate per-process singleton
    if _engine_singleton is None:
        with _singleton_lock:
            if _engine_singleton is None:
                _engine_singleton = RapidOcrEngine()
    return _engine_singleton
