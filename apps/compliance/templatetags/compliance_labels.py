"""Template filters of the compliance workspace: codes shown as words, sizes as people read them."""

from __future__ import annotations

import re
from typing import Any

from django import template

from apps.compliance import labels

register = template.Library()


@register.filter
def reason_label(code: Any) -> str:
    return labels.reason_label(str(code or ""))


@register.filter
def target_type_label(code: Any) -> str:
    return labels.target_type_label(str(code or ""))


@register.filter
def score_label(key: Any) -> str:
    return str(labels.SCORE_LABELS.get(str(key), key))


@register.filter
def action_label(code: Any) -> str:
    return dict(labels.action_choices()).get(str(code), str(code))


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@register.filter
def target_display(record: Any) -> str:
    """A record's target as a person reads it: its kind in words and its number.

    The recorded ``target_label`` is the evidence as written (``visit <uuid>``,
    ``T-0042 available``: English and codes); the page shows the kind and the
    service number (or the record's id) instead, and keeps the recorded label
    for the cell's title.
    """
    if not record.target_type:
        return ""
    kind = labels.target_type_label(str(record.target_type))
    found = _UUID.search(str(record.target_label or ""))
    return f"{kind} {found.group(0) if found else '#' + str(record.target_id)}"
