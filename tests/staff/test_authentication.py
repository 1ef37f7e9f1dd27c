"""StaffModelBackend: the same user and the same permissions as Django's ModelBackend, in fewer queries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission, User

from apps.staff.authentication import StaffModelBackend
from apps.staff.roles import Role

pytestmark = pytest.mark.django_db


def _fresh(user: User) -> User:
    return User.objects.get(pk=user.pk)  # no permission cache


@pytest.mark.parametrize("role", list(Role))
def test_every_role_has_exactly_the_permissions_model_backend_gives(
    make_staff: Callable[[Role], User], role: Role
) -> None:
    user = make_staff(role)
    # One permission of its own, beside the role's group: both sources count.
    user.user_permissions.add(Permission.objects.get(codename="view_session"))

    expected = ModelBackend().get_all_permissions(_fresh(user))

    assert StaffModelBackend().get_all_permissions(_fresh(user)) == expected
    assert "sessions.view_session" in expected and len(expected) > 1


def test_superuser_inactive_and_object_permissions_are_as_before(agent: User, django_user_model: Any) -> None:
    root = django_user_model.objects.create_superuser("root-auth", password="x" * 12)
    assert StaffModelBackend().get_all_permissions(_fresh(root)) == ModelBackend().get_all_permissions(_fresh(root))
    assert len(StaffModelBackend().get_all_permissions(_fresh(root))) == Permission.objects.count()
    agent.is_active = False
    agent.save()
    assert StaffModelBackend().get_all_permissions(_fresh(agent)) == set()
    assert StaffModelBackend().get_user(agent.pk) is None  # an inactive user is no one, as in ModelBackend


def test_the_permissions_are_one_query_and_the_profile_comes_with_the_user(
    supervisor: User, django_assert_num_queries: Any
) -> None:
    backend = StaffModelBackend()
    expected = ModelBackend().has_perm(_fresh(supervisor), "gates.view_gateprogress")
    with django_assert_num_queries(1):
        user = backend.get_user(supervisor.pk)
        assert user is not None
        assert user.staff_profile.role == Role.SUPERVISOR
    with django_assert_num_queries(1):
        assert backend.has_perm(user, "gates.view_gateprogress") == expected
        backend.has_perm(user, "audit.view_auditrecord")  # cached on the user for the rest of the request


def test_a_user_without_a_staff_profile_costs_no_second_query(
    django_user_model: Any, django_assert_num_queries: Any
) -> None:
    plain = django_user_model.objects.create_user("no-profile", password="x" * 12)
    with django_assert_num_queries(1):
        user = StaffModelBackend().get_user(plain.pk)
        assert user is not None
        assert getattr(user, "staff_profile", None) is None
