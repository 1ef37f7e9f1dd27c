from __future__ import annotations

from datetime import date

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditRecord
from apps.common.errors import ValidationFailed
from apps.common.masking import mask_account_number, mask_id_number, mask_mobile
from apps.customers.models import Account, BlacklistKind, Customer
from apps.customers.selectors import blacklist_hits, customer_get_by_id_number, customer_match_three_elements
from apps.customers.services import blacklist_entry_upsert, customer_upsert
from tests.conftest import SYSTEM
from tests.security.helpers import force_login_verified

pytestmark = pytest.mark.django_db

ID_NUMBER = "110101199001011237"
MOBILE = "13812345678"
CARD = "6217860000000000003"


def test_masks_keep_only_the_ends_of_each_number() -> None:
    assert mask_id_number(ID_NUMBER) == "1101**********1237"
    assert mask_mobile(MOBILE) == "138****5678"
    assert mask_account_number(CARD) == "621786*********0003"
    assert mask_id_number("") == ""
    assert mask_mobile("1234") == "****"


def test_id_and_mobile_numbers_are_encrypted_at_rest(customer: Customer) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT id_number, mobile, id_number_index FROM customers_customer WHERE id = %s", [customer.pk])
        stored_id, stored_mobile, index = cursor.fetchone()
    assert ID_NUMBER not in stored_id
    assert MOBILE not in stored_mobile
    assert ID_NUMBER not in index
    reloaded = Customer.objects.get(pk=customer.pk)
    assert (reloaded.id_number, reloaded.mobile) == (ID_NUMBER, MOBILE)


def test_lookup_by_number_goes_through_the_blind_index(customer: Customer) -> None:
    assert customer_get_by_id_number(id_number=ID_NUMBER.lower().replace("7", "7")) == customer
    assert customer_get_by_id_number(id_number="110101199001011245") is None
    assert customer_match_three_elements(name="张 三", id_number=ID_NUMBER, mobile="+86 138 1234 5678") == customer
    assert customer_match_three_elements(name="李四", id_number=ID_NUMBER, mobile=MOBILE) is None
    assert customer_match_three_elements(name="张三", id_number=ID_NUMBER, mobile="13900000000") is None


def test_an_invalid_id_number_is_refused(branch: object) -> None:
    with pytest.raises(ValidationFailed) as caught:
        customer_upsert(
            actor=SYSTEM,
            customer_number="T9",
            name="王五",
            id_number="110101199001011238",  # wrong check character
            mobile=MOBILE,
            level="ordinary",
            home_branch=branch,
        )
    assert caught.value.code == "invalid_id_number"


def test_blacklist_hits_match_by_person_or_account_and_ignore_delisted(customer: Customer, account: Account) -> None:
    aml = blacklist_entry_upsert(
        actor=SYSTEM, kind=BlacklistKind.AML, id_number=ID_NUMBER, source="s", listed_since=date(2026, 1, 1), reason="r"
    )
    fraud = blacklist_entry_upsert(
        actor=SYSTEM,
        kind=BlacklistKind.TELECOM_FRAUD,
        account_number=CARD,
        source="s",
        listed_since=date(2026, 1, 1),
        reason="r",
        active=False,
    )
    assert list(blacklist_hits(id_number=ID_NUMBER, account_numbers=[CARD])) == [aml]
    blacklist_entry_upsert(
        actor=SYSTEM,
        kind=BlacklistKind.TELECOM_FRAUD,
        account_number=CARD,
        source="s",
        listed_since=date(2026, 1, 1),
        reason="r",
        active=True,
    )
    fraud.refresh_from_db()
    assert list(blacklist_hits(id_number=None, account_numbers=[CARD])) == [fraud]
    assert not blacklist_hits(id_number="110101199001011245", account_numbers=[]).exists()


def test_str_and_audit_trail_never_hold_a_full_number(customer: Customer, account: Account) -> None:
    texts = [str(customer), str(account)]
    texts += [f"{r.target_label} {r.data}" for r in AuditRecord.objects.all()]
    joined = "\n".join(texts)
    for full in (ID_NUMBER, MOBILE, CARD):
        assert full not in joined
    created = AuditRecord.objects.get(action="customers.customer.created", target_id=str(customer.pk))
    assert created.data["id_number"] == "1101**********1237"
    assert created.data["mobile"] == "138****5678"


def test_the_api_serializes_only_masked_numbers(
    client: Client, compliance_officer: User, customer: Customer, account: Account
) -> None:
    # Compliance sees every customer; an agent only those of their own services (tests/security/test_masking.py).
    force_login_verified(client, compliance_officer)
    listing = client.get(reverse("customers:customer-list"))
    detail = client.get(reverse("customers:customer-detail", args=[customer.pk]))
    assert listing.status_code == detail.status_code == 200
    body = listing.content.decode() + detail.content.decode()
    for full in (ID_NUMBER, MOBILE, CARD):
        assert full not in body
    assert detail.json()["id_number"] == "1101**********1237"
    assert detail.json()["accounts"][0]["number"] == "621786*********0003"


def test_back_office_pages_show_only_masked_numbers(
    client: Client, compliance_officer: User, customer: Customer, account: Account
) -> None:
    blacklist = blacklist_entry_upsert(
        actor=SYSTEM, kind=BlacklistKind.AML, id_number=ID_NUMBER, source="s", listed_since=date(2026, 1, 1), reason="r"
    )
    force_login_verified(client, compliance_officer)
    pages = [
        reverse("admin:customers_customer_changelist"),
        reverse("admin:customers_customer_change", args=[customer.pk]),
        reverse("admin:customers_account_changelist"),
        reverse("admin:customers_account_change", args=[account.pk]),
        reverse("admin:customers_blacklistentry_changelist"),
        reverse("admin:customers_blacklistentry_change", args=[blacklist.pk]),
        reverse("admin:audit_auditrecord_changelist"),
    ]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        for full in (ID_NUMBER, MOBILE, CARD):
            assert full not in html, (page, full)
    assert "1101**********1237" in client.get(pages[1]).content.decode()
