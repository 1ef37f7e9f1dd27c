"""Security settings (docs/security.md): break-glass, login throttling, trusted proxies, second factor, masking.

Read from the environment only; imported at the end of ``base``.
"""

from __future__ import annotations

import ipaddress

from django.core.exceptions import ImproperlyConfigured

from remotebank.settings.environment import env_int, env_list

__all__ = [
    "AXES_CLIENT_IP_CALLABLE",
    "AXES_COOLOFF_TIME",
    "AXES_FAILURE_LIMIT",
    "AXES_LOCKOUT_PARAMETERS",
    "AXES_RESET_ON_SUCCESS",
    "BREAK_GLASS_MAX_MINUTES",
    "CUSTOMER_RECENT_SERVICE_HOURS",
    "LOGIN_REDIRECT_URL",
    "LOGIN_USER_FREE_FAILURES",
    "LOGIN_USER_MAX_DELAY_SECONDS",
    "LOGIN_USER_WINDOW_SECONDS",
    "TOTP_ENROLMENT_SECONDS",
    "TOTP_PASSWORD_CONFIRM_SECONDS",
    "TRUSTED_PROXIES",
]

# Break-glass (manage.py break_glass): the longest a superuser grant may run.
BREAK_GLASS_MAX_MINUTES = env_int("REMOTEBANK_BREAK_GLASS_MAX_MINUTES", 240)
if BREAK_GLASS_MAX_MINUTES < 1:
    raise ImproperlyConfigured("REMOTEBANK_BREAK_GLASS_MAX_MINUTES must be at least 1.")

# Login throttling. django-axes locks an ADDRESS (never a user) after this many
# failed logins, whichever usernames they tried: password spraying from one
# address stops there, and nobody can lock somebody else's account out.
AXES_FAILURE_LIMIT = env_int("REMOTEBANK_LOGIN_FAILURE_LIMIT", 20)
AXES_COOLOFF_TIME = env_int("REMOTEBANK_LOGIN_COOLOFF_MINUTES", 15) / 60  # hours
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
# A success must not wipe an address's failures: an attacker holding one
# account of their own could otherwise spray between two logins of it.
AXES_RESET_ON_SUCCESS = False
# The address axes (and the audit trail) see: X-Forwarded-For only from our own proxies.
AXES_CLIENT_IP_CALLABLE = "apps.common.network.client_address"
# Per username, across all addresses, a soft delay instead of a lock: after
# FREE failures in a row each further attempt must wait 1, 2, 4 ... seconds
# (at most MAX) after the previous failure; a success or WINDOW seconds of
# quiet forget them.
LOGIN_USER_FREE_FAILURES = env_int("REMOTEBANK_LOGIN_USER_FREE_FAILURES", 5)
LOGIN_USER_MAX_DELAY_SECONDS = env_int("REMOTEBANK_LOGIN_USER_MAX_DELAY_SECONDS", 60)
LOGIN_USER_WINDOW_SECONDS = env_int("REMOTEBANK_LOGIN_USER_WINDOW_SECONDS", 15 * 60)

# Reverse proxies (addresses or CIDR networks) whose X-Forwarded-For is believed.
TRUSTED_PROXIES = env_list("REMOTEBANK_TRUSTED_PROXIES", [])
for _proxy in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError as exc:
        raise ImproperlyConfigured(f"REMOTEBANK_TRUSTED_PROXIES: {_proxy!r} is not an address or network.") from exc

# Second factor: enrolment needs the password typed again within this many
# seconds, and a pending (unconfirmed) authenticator secret lives this long.
TOTP_PASSWORD_CONFIRM_SECONDS = env_int("REMOTEBANK_TOTP_PASSWORD_CONFIRM_SECONDS", 5 * 60)
TOTP_ENROLMENT_SECONDS = env_int("REMOTEBANK_TOTP_ENROLMENT_SECONDS", 10 * 60)

# Agents and experts see the customers of their services of the last this many hours.
CUSTOMER_RECENT_SERVICE_HOURS = env_int("REMOTEBANK_CUSTOMER_RECENT_SERVICE_HOURS", 24)

# A login without ?next= lands on the user's own page (apps.security.views.home).
LOGIN_REDIRECT_URL = "security:home"
