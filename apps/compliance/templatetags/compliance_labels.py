"""Template filters of the compliance workspace: codes shown as words, sizes as people read them."""

from __future__ import annotations

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
