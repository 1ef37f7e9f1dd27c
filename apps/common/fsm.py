"""One typed way to step a state machine (django-fsm-2).

Services used to call transitions by name through five string-based wrappers
(``_apply(visit, "refuse", code)``), which mypy, grep and dead-code tools
cannot follow. ``fsm_step(visit.refuse, code)`` names the bound transition
method itself, so a renamed or removed transition is a type error and
``grep '\\.refuse\\b'`` finds every caller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.utils.translation import gettext_lazy as _
from django_fsm import TransitionNotAllowed

from apps.common.errors import ApplicationError, NotAllowed

# Builds the error for an illegal step from the instance whose transition was refused.
StepError = Callable[[Any], ApplicationError]


def out_of_order(instance: Any) -> ApplicationError:
    """The default answer to an illegal step: 409 naming the current state."""
    return NotAllowed(
        _("This step is not available now. Please follow the steps in order."),
        code="out_of_order",
        extra={"state": instance.state},
    )


def fsm_step(transition: Callable[..., object], /, *args: Any, error: StepError = out_of_order, **kwargs: Any) -> None:
    """Run one FSM transition (a bound method), turning an illegal one into ``error(instance)``.

    The transition only changes fields; the caller holds the row lock, saves
    and audits (docs/architecture.md, "Writes, audit and side effects").
    """
    try:
        transition(*args, **kwargs)
    except TransitionNotAllowed as exc:
        raise error(transition.__self__) from exc  # type: ignore[attr-defined]
