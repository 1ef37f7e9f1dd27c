"""Log a staff member in for a test, second factor included.

``Client.force_login`` skips the login form and so the second factor too.
``force_login_verified`` does what a real verification leaves behind: a
confirmed TOTP device and its id in the session (django-otp's
``otp_device_id``), so a test of some other page can act as a supervisor,
compliance officer or administrator without going through the OTP form.
The production check is unchanged; ``test_two_factor.py`` goes through it.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.security.policy import two_factor_required


def force_login_verified(client: Client, user: User) -> Client:
    client.force_login(user)
    if two_factor_required(user):
        device, _ = TOTPDevice.objects.get_or_create(user=user, name="test authenticator", defaults={"confirmed": True})
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()
    return client
