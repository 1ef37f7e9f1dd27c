from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class LoginThrottle(models.Model):
    """Recent failed logins of one username, from any address (the soft per-user delay).

    Never a lock: after ``LOGIN_USER_FREE_FAILURES`` failures each further
    attempt must wait a few seconds after the previous failure (doubling, at
    most ``LOGIN_USER_MAX_DELAY_SECONDS``), so spraying one user from many
    addresses is slowed while the real user still gets in. Addresses are
    locked by django-axes (settings/security.py).
    """

    username = models.CharField(_("username"), max_length=150, unique=True)
    failures = models.PositiveIntegerField(default=0)
    last_failure_at = models.DateTimeField()

    class Meta:
        verbose_name = _("login throttle")
        verbose_name_plural = _("login throttles")

    def __str__(self) -> str:
        return f"{self.username}: {self.failures}"
