"""Chinese (and English) names for django-otp's models and fields in the back office.

django-otp names its models, fields and help texts with plain English strings,
not gettext ones, so no catalogue can translate them: a zh-hans back office
showed "TOTP devices", "throttling failure count" and "Is this device ready for
use?". At start-up (``SecurityConfig.ready``) we give them lazy translations of
our own; the msgids live here so ``makemessages`` keeps them in our catalogue.
The admin pages' fieldsets and columns are in ``apps.security.admin``.
"""

from __future__ import annotations

from django.apps import apps
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

APP_NAMES: dict[str, Promise] = {
    "otp_totp": _("Authenticator apps (second factor)"),
    "otp_static": _("Recovery codes (second factor)"),
    "axes": _("Login lockout"),
}
# model label → (verbose_name, verbose_name_plural)
MODEL_NAMES: dict[str, tuple[Promise, Promise]] = {
    "otp_totp.totpdevice": (_("authenticator app"), _("authenticator apps")),
    "otp_static.staticdevice": (_("recovery code set"), _("recovery code sets")),
    "otp_static.statictoken": (_("recovery code"), _("recovery codes")),
}
# field name → (verbose_name, help_text); the same names on every django-otp device.
FIELD_NAMES: dict[str, tuple[Promise, Promise | None]] = {
    "user": (_("staff user"), _("The user that this device belongs to.")),
    "name": (_("device name"), _("The human-readable name of this device.")),
    "confirmed": (_("confirmed"), _("Is this device ready for use?")),
    "throttling_failure_timestamp": (
        _("last failed verification"),
        _("A timestamp of the last failed verification attempt. Null if last attempt succeeded."),
    ),
    "throttling_failure_count": (_("failed verifications in a row"), _("Number of successive failed attempts.")),
    "created_at": (
        _("created at"),
        _("The date and time when this device was initially created in the system."),
    ),
    "last_used_at": (_("last used at"), _("The most recent date and time this device was used.")),
    "key": (_("secret key"), _("A hex-encoded secret key of up to 40 bytes.")),
    "step": (_("time step (seconds)"), _("The time step in seconds.")),
    "t0": (_("start time (Unix)"), _("The Unix time at which to begin counting steps.")),
    "digits": (_("digits"), _("The number of digits to expect in a token.")),
    "tolerance": (_("tolerance (time steps)"), _("The number of time steps in the past or future to allow.")),
    "drift": (
        _("clock drift (time steps)"),
        _("The number of time steps the prover is known to deviate from our clock."),
    ),
    "last_t": (
        _("last time step used"),
        _("The t value of the latest verified token. The next token must be at a higher time step."),
    ),
    "device": (_("recovery code set"), None),
    "token": (_("recovery code"), None),
}

# django-axes marks its admin texts for translation but ships no Chinese: these
# msgids are listed here so that our catalogue keeps their translations.
AXES_TEXTS: tuple[Promise, ...] = (
    _("Access Attempt"),
    _("Access lock out"),
    _("Attempt Remaining"),
    _("Attempt Time"),
    _("Clean up expired attempts"),
    _("Expires At"),
    _("Failed Logins"),
    _("Form Data"),
    _("GET Data"),
    _("HTTP Accept"),
    _("IP Address"),
    _("Locked Out"),
    _("Logout Time"),
    _("Meta Data"),
    _("Not set"),
    _("POST Data"),
    _("Path"),
    _("Session key hash (sha256)"),
    _("The time when access attempt expires and is no longer valid."),
    _("User Agent"),
    _("Username"),
    _("access attempt"),
    _("access attempt expiration"),
    _("access attempt expirations"),
    _("access attempts"),
    _("access failure"),
    _("access failures"),
    _("access log"),
    _("access logs"),
)


def otp_labels_apply() -> None:
    """Give django-otp's (and django-axes') apps, models and fields our translated names."""
    for label, name in APP_NAMES.items():
        if label in apps.app_configs:
            apps.get_app_config(label).verbose_name = name  # type: ignore[assignment]
    for model_label, (singular, plural) in MODEL_NAMES.items():
        model = apps.get_model(model_label)
        model._meta.verbose_name = singular
        model._meta.verbose_name_plural = plural
        for field in model._meta.get_fields():
            if field.name in FIELD_NAMES and hasattr(field, "verbose_name"):
                verbose_name, help_text = FIELD_NAMES[field.name]
                field.verbose_name = verbose_name
                if help_text is not None:
                    field.help_text = help_text
