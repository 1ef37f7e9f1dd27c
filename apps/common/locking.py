"""Row locks, taken one way everywhere (pretix's ``lock_objects`` is the model).

Services lock the rows they change with ``SELECT … FOR UPDATE`` inside their
transaction. ``of=("self",)`` because PostgreSQL refuses to lock the nullable
side of an outer join that ``select_related`` adds, and only the row itself
needs the lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from django.db import models

from apps.common.errors import ApplicationError

M = TypeVar("M", bound=models.Model)


def lock_object(
    source: models.Manager[M] | models.QuerySet[M],
    *,
    not_found: Callable[[], ApplicationError],
    related: Iterable[str] = (),
    **lookup: object,
) -> M:
    """Lock and return the one row of ``source`` matching ``lookup``, or raise ``not_found()``.

    ``related`` rows are joined (``select_related``) but not locked.
    """
    query = source.all().select_for_update(of=("self",))
    if related:
        query = query.select_related(*related)
    found = query.filter(**lookup).first()
    if found is None:
        raise not_found()
    return found
