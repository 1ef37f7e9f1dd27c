from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditRecord
from apps.queueing.models import ServiceQueue
from tests.security.helpers import force_login_verified

pytestmark = pytest.mark.django_db


def test_an_administrator_configures_a_queue_in_the_back_office_and_it_is_audited(
    client: Client, administrator: User
) -> None:
    force_login_verified(client, administrator)
    response = client.post(
        reverse("admin:queueing_servicequeue_add"),
        {
            "code": "reset",
            "name": "密码重置",
            # A form, not JSON typed by hand: businesses ticked, one number per level and business.
            "businesses": ["password_reset"],
            "level_bonus_ordinary": 0,
            "level_bonus_gold": 45,
            "level_bonus_platinum": 60,
            "level_bonus_private": 120,
            "business_bonus_password_reset": 15,
            "target_waiting": 5,
            "target_longest_wait_seconds": 120,
            "target_service_level_percent": 80,
            "target_abandon_rate_percent": 10,
            "agent_strategy": "fewest_services",
            "service_level_seconds": 30,
            "offer_timeout_seconds": 15,
            "wrap_up_seconds": 20,
            "max_missed_offers": 2,
            "reconnect_grace_seconds": 60,
            "overflow_max_waiting": 10,
            "overflow_max_wait_seconds": "",
            "overflow_targets-TOTAL_FORMS": 0,
            "overflow_targets-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    queue = ServiceQueue.objects.get(code="reset")
    assert (queue.agent_strategy, queue.level_bonus_seconds["gold"], queue.overflow_max_waiting) == (
        "fewest_services",
        45,
        10,
    )
    assert queue.businesses == ["password_reset"]
    assert queue.business_bonus_seconds == {"password_reset": 15}
    record = AuditRecord.objects.get(action="queueing.queue.configured", target_id=str(queue.pk))
    assert record.actor_label == administrator.username


def test_agents_cannot_configure_queues(client: Client, agent: User) -> None:
    client.force_login(agent)
    assert client.get(reverse("admin:queueing_servicequeue_changelist")).status_code == 403
