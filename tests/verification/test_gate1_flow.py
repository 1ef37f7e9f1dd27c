"""Gate 1 end to end through the customer's API, with the real OCR on generated cards (R6.1)."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from PIL import Image

from apps.audit.models import AuditRecord
from apps.audit.selectors import audit_chain_verify
from apps.businesses.registry import BUSINESSES, BusinessType
from apps.customers.models import Account, AccountKind, AccountStatus, BlacklistKind, Branch, Customer
from apps.customers.services import account_upsert, blacklist_entry_upsert
from apps.verification.integrations.sms import SandboxSmsGateway, get_sms_gateway
from apps.visits.models import Visit
from tests.conftest import SYSTEM
from tests.fixtures.cardgen import (
    CardPerson,
    Degradation,
    face_photos,
    generate_bank_card,
    generate_id_card_front,
    generate_non_id_image,
    generate_passbook_barcode,
    make_id_number,
)

pytestmark = pytest.mark.django_db

BLACKLIST_ZH = "您(名下账户)的信息在黑名单清单中，请到柜面办理业务！"
MOBILE = "13912345678"
PERSON = CardPerson(
    name="李晓明",
    sex="M",
    ethnicity="汉",
    birth_date=date(1988, 3, 15),
    address="山东省滨海市市南区香港中路36号",
    id_number=make_id_number(region="370202", birth=date(1988, 3, 15), seq=371, sex="M"),
)


@pytest.fixture(autouse=True)
def _no_upload_cooldown(settings: Any) -> None:
    settings.GATE1_UPLOAD_COOLDOWN_SECONDS = 0


@pytest.fixture(scope="module")
def card_photo() -> bytes:
    return generate_id_card_front(PERSON, face_photos()[0], degrade=Degradation(rotate_deg=5, jpeg_quality=60))


@pytest.fixture
def person_customer(make_customer: Callable[..., Customer]) -> Customer:
    return make_customer(name=PERSON.name, id_number=PERSON.id_number, mobile=MOBILE)


def _account(owner: Customer, branch: Branch, *, number: str, kind: AccountKind, status: AccountStatus) -> Account:
    return account_upsert(
        actor=SYSTEM,
        number=number,
        kind=kind,
        status=status,
        owner=owner,
        opening_branch=branch,
        opened_on=date(2021, 5, 1),
        status_since=date(2026, 10, 1),
    )


class Visitor:
    """The customer's phone: one browser session talking to the mobile API."""

    def __init__(self, client: Client, capture: Callable[..., Any]) -> None:
        self.client = client
        self.capture = capture

    def start(self, business: str = "activation", mobile: str = MOBILE) -> dict[str, Any]:
        response = self.client.post(
            reverse("verification:visit-start"),
            {"business": business, "mobile": mobile},
            content_type="application/json",
        )
        assert response.status_code == 201, response.content
        return response.json()

    def upload(self, data: bytes, *, name: str = "card.jpg", expect: int = 202) -> dict[str, Any]:
        # The test's transaction never commits: run the on-commit callbacks
        # (the eager OCR task) by hand, then read the visit as the page would.
        with self.capture(execute=True):
            response = self.client.post(reverse("verification:visit-id-card"), {"photo": _file(data, name)})
        assert response.status_code == expect, response.content
        return self.current() if expect == 202 else response.json()

    def post(self, name: str, payload: dict[str, Any] | None = None, *, expect: int = 200) -> dict[str, Any]:
        response = self.client.post(reverse(name), payload or {}, content_type="application/json")
        assert response.status_code == expect, response.content
        return response.json()

    def current(self) -> dict[str, Any]:
        return self.client.get(reverse("verification:visit-current")).json()

    def through_identity(self, photo: bytes, business: str = "activation") -> dict[str, Any]:
        self.start(business)
        read = self.upload(photo)
        assert read["state"] == "id_card_read", read
        matched = self.post("verification:visit-identity-confirm")
        assert matched["state"] == "identity_matched", matched
        return self.prove_mobile()

    def prove_mobile(self) -> dict[str, Any]:
        """Ask for the SMS code and type what the sandbox gateway delivered to the number on record."""
        sent = self.post("verification:visit-sms-send")
        return self.post("verification:visit-sms-verify", {"code": sms_code_sent_to(sent["mobile_proof"]["mobile"])})

    def upload_account_photo(self, data: bytes, *, name: str = "card.jpg", expect: int = 202) -> dict[str, Any]:
        with self.capture(execute=True):
            response = self.client.post(reverse("verification:visit-account-photo"), {"photo": _file(data, name)})
        assert response.status_code == expect, response.content
        return self.current() if expect == 202 else response.json()


def sms_code_sent_to(masked_mobile: str) -> str:
    """The 6-digit code in the newest sandbox message to the number shown masked (like the phone would show it)."""
    gateway = get_sms_gateway()
    assert isinstance(gateway, SandboxSmsGateway)
    for message in gateway.outbox():
        if message.mobile[:3] == masked_mobile[:3] and message.mobile[-4:] == masked_mobile[-4:]:
            found = re.search(r"\b(\d{6})\b", message.text)
            assert found, message.text
            return found.group(1)
    raise AssertionError(f"no SMS to {masked_mobile}")


def _file(data: bytes, name: str) -> io.BytesIO:
    handle = io.BytesIO(data)
    handle.name = name
    return handle


@pytest.fixture
def visitor(client: Client, django_capture_on_commit_callbacks: Callable[..., Any]) -> Visitor:
    return Visitor(client, django_capture_on_commit_callbacks)


def test_a_matching_customer_with_a_good_account_reaches_the_queue_door(
    visitor: Visitor, person_customer: Customer, branch: Branch, card_photo: bytes
) -> None:
    account = _account(
        person_customer,
        branch,
        number="6217860000000000011",
        kind=AccountKind.DEBIT_CARD,
        status=AccountStatus.INACTIVE,
    )
    visitor.start("activation")
    read = visitor.upload(card_photo)
    assert read["state"] == "id_card_read"
    assert read["id_card"]["name"] == PERSON.name
    assert read["id_card"]["id_number"] == PERSON.id_number
    assert read["id_card"]["birth_date"] == "1988-03-15"
    assert read["id_card"]["sex"] == "M"
    matched = visitor.post("verification:visit-identity-confirm")
    assert matched["state"] == "identity_matched"
    assert matched["mobile_proof"] == {
        "proven": False,
        "mobile": "139****5678",
        "code_sent": False,
        "resend_in_seconds": 0,
        "tries_left": 5,
        "sends_left": 5,
    }
    # Gate 1 does not pass without the SMS proof of the mobile number.
    assert (
        visitor.post("verification:visit-account", {"number": account.number}, expect=409)["code"]
        == "mobile_not_proven"
    )
    visitor.prove_mobile()
    done = visitor.post("verification:visit-account", {"number": account.number})
    assert done["state"] == "queue_ready", done
    assert done["account"]["number"] == "621786*********0011"
    visit = Visit.objects.get(public_id=done["id"])
    assert visit.customer == person_customer
    assert visit.verification.id_card_portrait.name  # kept for face verification
    with visit.verification.id_card_portrait.open("rb") as handle:
        portrait = Image.open(handle)
        assert portrait.width < 856 and portrait.height < 540
    actions = list(
        AuditRecord.objects.filter(target_type="visits.visit", target_id=str(visit.pk)).values_list("action", flat=True)
    )
    assert actions == [
        "verification.visit.started",
        "verification.visit.id_card_uploaded",
        "verification.visit.id_card_read",
        "verification.visit.identity_matched",
        "verification.visit.sms_sent",
        "verification.visit.mobile_proven",
        "verification.visit.account_accepted",
        "verification.visit.screening_passed",
    ]
    assert audit_chain_verify().intact


def test_three_elements_that_match_no_customer_stop_the_visit_and_are_audited(
    visitor: Visitor, person_customer: Customer, card_photo: bytes
) -> None:
    visitor.start("activation", mobile="13700000000")  # not the customer's mobile
    visitor.upload(card_photo)
    refused = visitor.post("verification:visit-identity-confirm")
    assert refused["state"] == "refused"
    assert refused["refusal"]["code"] == "no_matching_customer"
    assert "不一致" in refused["refusal"]["message"] or "do not match" in refused["refusal"]["message"]
    record = AuditRecord.objects.get(action="verification.visit.refused")
    assert record.data["reason"] == "no_matching_customer"
    assert record.data["mobile"] == "137****0000"
    # Once refused, nothing moves it again.
    visitor.post("verification:visit-account", {"number": "6217860000000000011"}, expect=409)


def test_an_account_of_someone_else_is_answered_like_a_typo_and_does_not_end_the_visit(
    visitor: Visitor, person_customer: Customer, customer: Customer, branch: Branch, card_photo: bytes
) -> None:
    theirs = _account(
        customer, branch, number="6217860000000000029", kind=AccountKind.DEBIT_CARD, status=AccountStatus.INACTIVE
    )
    visitor.through_identity(card_photo)
    answer = visitor.post("verification:visit-account", {"number": theirs.number}, expect=400)
    assert answer["code"] == "account_not_found"  # the same answer as for a number that does not exist
    assert answer["details"]["tries_left"] == 2
    current = visitor.current()
    assert current["state"] == "identity_matched"
    assert "account" not in current  # nothing of the other person's account is shown
    record = AuditRecord.objects.get(action="verification.visit.account_not_found")
    assert record.data["owned_by_other"] is True


def test_a_mistyped_account_number_says_so_with_the_tries_left_then_stops(
    visitor: Visitor, person_customer: Customer, branch: Branch, card_photo: bytes
) -> None:
    account = _account(
        person_customer,
        branch,
        number="6217860000000000011",
        kind=AccountKind.DEBIT_CARD,
        status=AccountStatus.INACTIVE,
    )
    visitor.through_identity(card_photo)
    first = visitor.post("verification:visit-account", {"number": "6217860000000000012"}, expect=400)
    assert (first["code"], first["details"]["tries_left"]) == ("account_not_found", 2)
    assert "2" in first["message"]
    assert visitor.current()["state"] == "identity_matched"
    done = visitor.post("verification:visit-account", {"number": account.number})
    assert done["state"] == "queue_ready"


def test_unknown_account_numbers_can_be_retried_then_stop(
    visitor: Visitor, person_customer: Customer, card_photo: bytes
) -> None:
    visitor.through_identity(card_photo)
    first = visitor.post("verification:visit-account", {"number": "6217869999999999999"}, expect=400)
    assert first["details"]["tries_left"] == 2
    assert visitor.current()["state"] == "identity_matched"
    second = visitor.post("verification:visit-account", {"number": "6217869999999999998"}, expect=400)
    assert second["details"]["tries_left"] == 1
    last = visitor.post("verification:visit-account", {"number": "6217869999999999997"})
    assert last["refusal"]["code"] == "too_many_attempts"


_CASES = [(business, status) for business in BUSINESSES for status in AccountStatus]


@pytest.mark.parametrize(("business", "status"), _CASES, ids=[f"{b.code}-{s.value}" for b, s in _CASES])
def test_each_status_for_each_business_allows_or_stops_as_the_table_says(
    visitor: Visitor,
    person_customer: Customer,
    branch: Branch,
    card_photo: bytes,
    business: BusinessType,
    status: AccountStatus,
) -> None:
    kind = next(iter(sorted(business.account_kinds)))
    account = _account(person_customer, branch, number="9000000000000000001", kind=kind, status=status)
    visitor.through_identity(card_photo, business=business.code)
    result = visitor.post("verification:visit-account", {"number": account.number})
    if status in business.allowed_statuses:
        assert result["state"] == "queue_ready", result
    else:
        assert status != AccountStatus.NORMAL or business.code in {
            "activation",
            "lost_report_release",
            "corporate_intent",
        }
        assert result["refusal"]["code"] == "account_status"
        assert result["account"]["status"] == status
        assert result["refusal"]["message"] == result["account"]["status_message"]


@pytest.mark.parametrize("list_kind", [BlacklistKind.AML, BlacklistKind.TELECOM_FRAUD])
@pytest.mark.parametrize("match_by", ["id_number", "account"])
def test_a_blacklist_hit_stops_with_the_required_words_and_only_compliance_learns_which_list(
    visitor: Visitor,
    person_customer: Customer,
    branch: Branch,
    card_photo: bytes,
    list_kind: BlacklistKind,
    match_by: str,
) -> None:
    account = _account(
        person_customer,
        branch,
        number="6217860000000000037",
        kind=AccountKind.DEBIT_CARD,
        status=AccountStatus.INACTIVE,
    )
    other = _account(
        person_customer, branch, number="6217860000000000045", kind=AccountKind.DEBIT_CARD, status=AccountStatus.NORMAL
    )
    blacklist_entry_upsert(
        actor=SYSTEM,
        kind=list_kind,
        id_number=PERSON.id_number if match_by == "id_number" else "",
        # A hit on any account in the customer's name counts (名下账户).
        account_number=other.number if match_by == "account" else "",
        source="test list",
        listed_since=date(2026, 1, 1),
        reason="test",
    )
    visitor.through_identity(card_photo)
    response = visitor.client.post(
        reverse("verification:visit-account"), {"number": account.number}, content_type="application/json"
    )
    refused = response.json()
    assert refused["refusal"] == {"code": "blacklisted", "message": BLACKLIST_ZH}
    assert list_kind.value not in response.content.decode()
    record = AuditRecord.objects.get(action="verification.visit.refused")
    assert record.data["lists"] == [list_kind.value]
    english = visitor.client.get(reverse("verification:visit-current"), headers={"accept-language": "en"}).json()
    assert english["refusal"]["message"].startswith("Your information")


def test_an_unreadable_photo_gets_a_reason_and_a_retry(
    visitor: Visitor, person_customer: Customer, card_photo: bytes
) -> None:
    visitor.start()
    failed = visitor.upload(generate_non_id_image())
    assert failed["state"] == "business_chosen"
    assert failed["id_card_problem"]["code"] == "not_id_card"
    assert failed["id_card_problem"]["message"]
    again = visitor.upload(card_photo)
    assert again["state"] == "id_card_read"
    assert AuditRecord.objects.filter(action="verification.visit.id_card_unreadable").count() == 1


def _png(width: int, height: int, *, detail: bool = False) -> bytes:
    """A PNG of that size: all black (a few KB: a bomb), or with a patch of noise like a real screenshot's content."""
    image = Image.new("L", (width, height))
    if detail:
        image.paste(Image.effect_noise((700, 700), 64), (0, 0))
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _truncated_jpeg(card_photo: bytes) -> bytes:
    return card_photo[: len(card_photo) // 2]


def _gif() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64)).save(out, format="GIF")
    return out.getvalue()


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda photo: b"%PDF-1.4 not a photo", "not_an_image"),
        (lambda photo: b"", "empty"),
        (_truncated_jpeg, "truncated"),
        (lambda photo: _png(8000, 6250, detail=True), "too_many_pixels"),  # 50 megapixels, cannot be decoded smaller
        (lambda photo: _png(20000, 20000), "decompression_bomb"),
        (lambda photo: _gif(), "unsupported_format"),
    ],
    ids=["not-an-image", "empty", "truncated", "50-megapixels", "decompression-bomb", "gif"],
)
def test_bad_uploads_get_a_clear_error_and_the_state_does_not_move(
    visitor: Visitor, card_photo: bytes, make: Callable[[bytes], bytes], code: str
) -> None:
    visitor.start()
    response = visitor.upload(make(card_photo), name="card.jpg", expect=400)
    assert response["code"] in {code, "photo_missing"} if code == "empty" else response["code"] == code
    assert response["message"]
    current = visitor.current()
    assert current["state"] == "business_chosen"
    assert current["id_card_attempts"] == (0 if response["code"] == "photo_missing" else 1)


def test_out_of_order_requests_are_refused_by_the_state_machine(
    visitor: Visitor, person_customer: Customer, card_photo: bytes
) -> None:
    visitor.start()
    assert visitor.post("verification:visit-identity-confirm", expect=409)["code"] == "out_of_order"
    assert visitor.post("verification:visit-account", {"number": "6217860000000000011"}, expect=409)["code"] == (
        "out_of_order"
    )
    visitor.upload(card_photo)
    # A second upload while one is read must not replace it.
    assert visitor.upload(card_photo, expect=409)["code"] == "out_of_order"
    assert visitor.current()["state"] == "id_card_read"


def test_without_a_visit_in_the_session_nothing_can_be_done(client: Client) -> None:
    response = client.post(reverse("verification:visit-identity-confirm"), content_type="application/json")
    assert response.status_code == 404
    assert response.json()["code"] == "no_visit"


def test_writes_need_the_csrf_token_even_for_anonymous_customers() -> None:
    strict = Client(enforce_csrf_checks=True)
    response = strict.post(
        reverse("verification:visit-start"),
        {"business": "activation", "mobile": MOBILE},
        content_type="application/json",
    )
    assert response.status_code == 403


def test_uploads_are_rate_limited_per_visit(visitor: Visitor, settings: Any, card_photo: bytes) -> None:
    settings.GATE1_UPLOAD_COOLDOWN_SECONDS = 60
    visitor.start()
    visitor.upload(generate_non_id_image())
    assert visitor.upload(card_photo, expect=429)["code"] == "too_many_requests"
    settings.GATE1_UPLOAD_COOLDOWN_SECONDS = 0
    settings.GATE1_MAX_ID_CARD_UPLOADS = 2
    visitor.upload(generate_non_id_image())
    refused = visitor.upload(card_photo)
    assert refused["state"] == "refused"
    assert refused["refusal"]["code"] == "too_many_attempts"


def test_the_account_can_be_photographed_as_a_bank_card_or_a_passbook_barcode(
    visitor: Visitor, person_customer: Customer, card_photo: bytes
) -> None:
    visitor.through_identity(card_photo)
    card_number = "6217860000000000052"
    card = visitor.upload_account_photo(generate_bank_card(card_number))
    assert card["state"] == "identity_matched"  # a reading is only a suggestion
    assert card["account_photo"] == {"state": "read", "attempts_left": 4, "number": card_number, "source": "card_ocr"}
    passbook = visitor.upload_account_photo(
        generate_passbook_barcode("800000000000001234", kind="qr"), name="passbook.png"
    )
    assert passbook["account_photo"]["number"] == "800000000000001234"
    assert passbook["account_photo"]["source"] == "barcode"
    landscape = visitor.upload_account_photo(generate_non_id_image())
    assert landscape["account_photo"]["state"] == "failed"
    assert landscape["account_photo"]["code"] == "card_number_unreadable"
    stored = Visit.objects.get(public_id=landscape["id"]).verification.account_photo
    with stored.storage.open(stored.name, "rb") as raw:
        assert not raw.read().startswith(b"\xff\xd8")  # encrypted at rest, not a JPEG


def test_a_blurred_photo_is_refused_as_blurred_rather_than_guessed(visitor: Visitor, person_customer: Customer) -> None:
    visitor.start()
    blurred = generate_id_card_front(PERSON, face_photos()[0], degrade=Degradation(blur_radius=4))
    failed = visitor.upload(blurred)
    assert failed["state"] == "business_chosen"
    assert failed["id_card_problem"]["code"] == "blurred"
