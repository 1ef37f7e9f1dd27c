"""Load what a process will need before it takes work, not inside a request's timeout.

Each Celery worker process (``worker_process_init``, below in
``remotebank/celery.py``) warms what the queues it consumes need; Daphne warms
the Janus client from ``remotebank/asgi.py`` (calls hang up and, in the
embedded default, open rooms in the web process). Nothing is warmed at import
or in ``AppConfig.ready``: management commands, Celery beat and tests that
never use these parts start without paying for them (about 0.5 s for the
Janus client, 2–3 s and ~200 MB each for the OCR and face models, measured
on an idle machine; several times that under load).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

logger = logging.getLogger(__name__)


def _janus() -> None:
    from apps.calls.integrations.janus import janus_client_warm_up

    janus_client_warm_up()


def _ocr() -> None:
    from apps.verification.integrations.ocr import RapidOcrEngine, get_ocr_engine

    engine = get_ocr_engine()
    if isinstance(engine, RapidOcrEngine):  # the real engine; the OcrEngine protocol has no warm-up
        engine.warm_up()


def _face() -> None:
    from apps.gates.integrations.face import get_face_engine

    get_face_engine().warm_up()


WARM_UPS: dict[str, Callable[[], None]] = {"janus": _janus, "ocr": _ocr, "face": _face}

# Which Celery queue needs which part (CELERY_TASK_ROUTES): the room tasks
# (open, close) run on the default queue; Gate 1 reads on ``ocr``; Gate 1's
# and Gate 3's faces are compared on ``face``.
QUEUE_NEEDS: dict[str, tuple[str, ...]] = {"default": ("janus",), "ocr": ("ocr",), "face": ("face",)}


def warm_ups_for(queues: Iterable[str]) -> list[str]:
    """The parts a worker consuming ``queues`` needs, in ``WARM_UPS`` order."""
    wanted = {part for queue in queues for part in QUEUE_NEEDS.get(queue, ())}
    return [part for part in WARM_UPS if part in wanted]


def warm_up(parts: Iterable[str]) -> dict[str, float]:
    """Load each part now; returns (and logs) the seconds each took.

    A part that fails to load is logged and skipped: the process still starts,
    and the first task that needs it loads it (and reports the error) itself.
    """
    taken: dict[str, float] = {}
    for part in parts:
        started = time.perf_counter()
        try:
            WARM_UPS[part]()
        except Exception:
            logger.exception("Warming up %s failed; it will load on first use", part)
            continue
        taken[part] = time.perf_counter() - started
        logger.info("Warmed up %s in %.2f s", part, taken[part])
    return taken
