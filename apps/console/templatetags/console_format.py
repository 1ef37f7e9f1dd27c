"""Formatting of live figures, the same way the console's scripts format their updates."""

from __future__ import annotations

from django import template

register = template.Library()

NOT_APPLICABLE = "—"


@register.filter
def clock(seconds: float | None) -> str:
    """Seconds as ``m:ss`` (``h:mm:ss`` from an hour on)."""
    if seconds is None:
        return NOT_APPLICABLE
    total = max(round(seconds), 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@register.filter
def percent(share: float | None) -> str:
    """A share between 0 and 1 as a whole percentage; a dash when there is nothing to measure yet."""
    if share is None:
        return NOT_APPLICABLE
    return f"{round(share * 100)}%"
