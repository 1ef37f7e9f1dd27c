"""Python's garbage collector in the long-lived processes (Daphne, the dispatcher)."""

from __future__ import annotations

import gc
import logging

logger = logging.getLogger(__name__)


def gc_tune(thresholds: tuple[int, int, int] | None) -> None:
    """Set up the garbage collector of a long-lived process (Daphne, the dispatcher), after its start-up.

    ``gc.freeze()`` moves everything loaded so far (Django, the apps, the
    Janus client) out of the collector's sight: it lives as long as the
    process, yet every full collection walked it again. Higher thresholds let
    an update's short-lived objects die before a collection promotes them
    (settings ``GC_THRESHOLDS``; None keeps Python's own).
    """
    if thresholds is None:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
    logger.info("Garbage collector: %d objects frozen, thresholds %s", gc.get_freeze_count(), thresholds)
