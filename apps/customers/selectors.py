from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.common.crypto import id_number_index, mobile_index, normalize_account_number
from apps.customers.models import Account, BlacklistEntry, Customer


def customer_get_by_id_number(*, id_number: str) -> Customer | None:
    return Customer.objects.filter(id_number_index=id_number_index(id_number)).first()


def customer_match_three_elements(*, name: str, id_number: str, mobile: str) -> Customer | None:
    """The customer whose name, ID number and mobile number all match, or None.

    Lookup goes through the blind indexes; the name is compared after
    stripping spaces (OCR and typing both insert them).
    """
    customer = (
        Customer.objects.filter(id_number_index=id_number_index(id_number), mobile_index=mobile_index(mobile))
        .select_related("home_branch")
        .first()
    )
    if customer is None or "".join(customer.name.split()) != "".join(name.split()):
        return None
    return customer


def account_get_by_number(*, number: str) -> Account | None:
    return Account.objects.filter(number=normalize_account_number(number)).select_related("owner").first()


def blacklist_hits(*, id_number: str | None, account_numbers: Iterable[str] = ()) -> QuerySet[BlacklistEntry]:
    """Active blacklist entries matching the person or any of the accounts."""
    condition = Q()
    if id_number:
        condition |= Q(id_number_index=id_number_index(id_number))
    numbers = [normalize_account_number(number) for number in account_numbers if number]
    if numbers:
        condition |= Q(account_number__in=numbers)
    if not condition:
        return BlacklistEntry.objects.none()
    return BlacklistEntry.objects.filter(condition, active=True).order_by("kind", "pk")


def customers_list() -> QuerySet[Customer]:
    """Every customer with the home branch joined, in customer-number order (the staff list)."""
    return Customer.objects.select_related("home_branch").order_by("customer_number")


def customers_visible_to(*, user: Any) -> QuerySet[Customer]:
    """The customers ``user`` may look up: all with ``customers.view_all_customers`` (compliance),
    else those of the services they (or, for a supervisor, their team) took part in that are
    still open or closed within CUSTOMER_RECENT_SERVICE_HOURS; nobody else's.

    The visits and their calls live in higher apps; they are reached here by
    their reverse relations (``visits``, ``calls``, ``participants``) only,
    without importing them.
    """
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return Customer.objects.none()
    if user.has_perm("customers.view_all_customers"):
        return customers_list()
    since = timezone.now() - timedelta(hours=settings.CUSTOMER_RECENT_SERVICE_HOURS)
    recent = Q(visits__closed_at__isnull=True) | Q(visits__closed_at__gte=since)
    took_part = Q(visits__calls__participants__staff__user=user) | Q(
        visits__calls__participants__staff__supervisor__user=user
    )
    ids = Customer.objects.filter(recent & took_part).values("pk")
    return customers_list().filter(pk__in=ids)
