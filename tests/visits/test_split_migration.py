"""The visit's move into its own app keeps every existing row (verification 0003/0004).

Built from the previous schema with data in it: the migrations are rolled back
to where ``verification.ServiceSession`` held the visit and Gate 1 together,
rows are written through the historical models, then the split is applied
(and, last, undone and applied again, as an operator rolling back would).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from apps.customers.models import Account, Customer

BEFORE = [
    ("visits", None),
    ("verification", "0002_servicesession_closed_at_servicesession_outcome_and_more"),
    ("calls", "0003_gate_failed_end_reason"),
    ("gates", "0001_initial"),
    ("operations", "0001_initial"),
    ("queueing", "0002_entry_end_reason_call_failed"),
]


def _migrate(targets: list[tuple[str, str | None]]) -> Any:
    """Migrate to ``targets`` and return the historical apps of that state."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection).loader.project_state([node for node in targets if node[1]]).apps


def _latest() -> list[tuple[str, str | None]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.fixture
def schema_restored(transactional_db: None, as_database_owner: None) -> Iterator[None]:
    yield
    _migrate(_latest())


def test_every_visit_and_its_gate_1_survive_the_split(
    schema_restored: None, customer: Customer, account: Account
) -> None:
    old = _migrate(BEFORE)
    ServiceSession = old.get_model("verification", "ServiceSession")
    ServiceQueue = old.get_model("queueing", "ServiceQueue")
    QueueEntry = old.get_model("queueing", "QueueEntry")
    served = ServiceSession.objects.create(
        business_code="activation",
        mobile=customer.mobile,
        state="queue_ready",
        customer_id=customer.pk,
        account_id=account.pk,
        id_card_attempts=2,
        id_card_photo="visits/id_cards/a.jpg",
        id_card_portrait="visits/portraits/a.jpg",
        read_name="张三",
        read_id_number=customer.id_number,
        read_sex="M",
        read_ethnicity="汉",
        read_birth_date=date(1990, 1, 1),
        read_address="山东省青岛市市南区香港中路1号",
        match_attempts=1,
        outcome="completed",
        outcome_reason="done",
        closed_at=timezone.now(),
    )
    refused = ServiceSession.objects.create(
        business_code="password_reset",
        mobile="13700000000",
        state="refused",
        refusal_code="no_matching_customer",
        outcome="refused",
        outcome_reason="no_matching_customer",
    )
    queue = ServiceQueue.objects.create(code="activation", name="激活", businesses=["activation"])
    entry = QueueEntry.objects.create(
        visit_id=served.pk,
        queue=queue,
        business_code="activation",
        level="ordinary",
        state="served",
        enqueued_at=timezone.now(),
        priority_key=1.0,
    )

    new = _migrate(_latest())
    Visit = new.get_model("visits", "Visit")
    Verification = new.get_model("verification", "Verification")
    visit = Visit.objects.get(pk=served.pk)
    assert (visit.public_id, visit.business_code, visit.mobile) == (served.public_id, "activation", customer.mobile)
    assert (visit.customer_id, visit.account_id) == (customer.pk, account.pk)
    assert (visit.outcome, visit.outcome_reason, visit.closed_at) == ("completed", "done", served.closed_at)
    assert visit.created_at == served.created_at
    gate1 = Verification.objects.get(visit_id=served.pk)
    assert gate1.state == "queue_ready"
    assert (gate1.read_name, gate1.read_id_number, gate1.read_address) == (
        "张三",
        customer.id_number,  # still readable: the ciphertext was copied under the same keys
        "山东省青岛市市南区香港中路1号",
    )
    assert (gate1.id_card_attempts, gate1.match_attempts, gate1.read_birth_date) == (2, 1, date(1990, 1, 1))
    assert (gate1.id_card_photo.name, gate1.id_card_portrait.name) == (
        "visits/id_cards/a.jpg",
        "visits/portraits/a.jpg",
    )
    other = Verification.objects.get(visit_id=refused.pk)
    assert (other.state, other.refusal_code, other.visit.outcome) == ("refused", "no_matching_customer", "refused")
    assert new.get_model("queueing", "QueueEntry").objects.get(pk=entry.pk).visit_id == served.pk
    # Ids were copied as they were: a new visit must not collide with them (PostgreSQL sequences).
    fresh = Visit.objects.create(business_code="activation", mobile="13800000000")
    assert fresh.pk > max(served.pk, refused.pk)
    assert Verification.objects.create(visit=fresh).pk > max(served.pk, refused.pk)

    back = _migrate(BEFORE)
    restored = back.get_model("verification", "ServiceSession").objects.get(pk=served.pk)
    assert (restored.state, restored.read_id_number, restored.outcome) == (
        "queue_ready",
        customer.id_number,
        "completed",
    )
    assert back.get_model("verification", "ServiceSession").objects.count() == 3
