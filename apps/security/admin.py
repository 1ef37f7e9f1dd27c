"""django-otp's back-office pages with our words: its fieldsets, columns and search help are plain English.

The devices' admin classes stay django-otp's (their key handling and QR code
view); only the texts a person reads are replaced. Model and field names are
set in ``apps.security.otp_labels``.
"""

from __future__ import annotations

from typing import Any

from axes.admin import AccessAttemptAdmin
from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django_otp.plugins.otp_static.admin import StaticDeviceAdmin, StaticTokenInline
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.admin import TOTPDeviceAdmin
from django_otp.plugins.otp_totp.models import TOTPDevice

FIELDSET_NAMES = {
    "Identity": _("Device and owner"),
    "Timestamps": _("Dates"),
    "Configuration": _("Settings"),
    "State": _("State"),
    "Throttling": _("Failed verifications"),
}
SEARCH_HELP = _("Search by the staff user's username or email address.")


def _translated(fieldsets: Any) -> list[Any]:
    return [(FIELDSET_NAMES.get(name, name) if name else name, options) for name, options in fieldsets]


class AuthenticatorAppAdmin(TOTPDeviceAdmin):
    search_help_text = SEARCH_HELP

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        return _translated(super().get_fieldsets(request, obj))

    @admin.display(description=_("QR code"))
    def qrcode_link(self, device: TOTPDevice) -> str:
        href = reverse("admin:otp_totp_totpdevice_config", kwargs={"pk": device.pk})
        return format_html('<a href="{}">{}</a>', href, _("Show the QR code"))


class RecoveryCodeInline(StaticTokenInline):
    verbose_name = _("recovery code")
    verbose_name_plural = _("recovery codes")


class RecoveryCodesAdmin(StaticDeviceAdmin):
    search_help_text = SEARCH_HELP
    fieldsets = _translated(StaticDeviceAdmin.fieldsets)
    inlines = [RecoveryCodeInline]


# django-axes' lockout column has no description: Django would print "Status" from its method name.
AccessAttemptAdmin.status.short_description = _("Status")

for model, model_admin in ((TOTPDevice, AuthenticatorAppAdmin), (StaticDevice, RecoveryCodesAdmin)):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, model_admin)
