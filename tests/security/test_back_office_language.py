"""The second factor's and the login lockout's back-office pages speak Chinese (issue #19: django-otp showed English)."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.contrib.admin.utils import label_for_field
from django.contrib.auth.models import User
from django.test import Client, RequestFactory
from django.utils import translation
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.security.helpers import force_login_verified
from tests.test_translations import _foreign

pytestmark = pytest.mark.django_db

THIRD_PARTY_APPS = ("otp_totp", "otp_static", "axes")


def test_every_label_of_the_installed_libraries_admin_pages_is_chinese(administrator: User) -> None:
    """App, model, field and column names, help texts, fieldsets and search help of django-otp's and django-axes' pages."""
    request = RequestFactory().get("/")
    request.user = administrator
    english = []
    with translation.override("zh-hans"):
        models = [model for model in admin.site._registry if model._meta.app_label in THIRD_PARTY_APPS]
        assert {model._meta.app_label for model in models} == set(THIRD_PARTY_APPS)
        for model in models:
            model_admin = admin.site._registry[model]
            labels = {
                "app": str(model._meta.app_config.verbose_name),
                "model": str(model._meta.verbose_name),
                "models": str(model._meta.verbose_name_plural),
                "search help": str(model_admin.search_help_text or ""),
            }
            for field in model._meta.get_fields():
                if hasattr(field, "verbose_name") and field.name != "id":
                    labels[field.name] = str(field.verbose_name)
                    labels[f"{field.name} help"] = str(getattr(field, "help_text", ""))
            for name in [*model_admin.get_list_display(request), *model_admin.readonly_fields]:
                if isinstance(name, str) and name not in ("id", "pk", "__str__"):
                    labels[f"column {name}"] = str(label_for_field(name, model, model_admin))
            for title, _options in model_admin.get_fieldsets(request, None):
                labels[f"fieldset {title}"] = str(title or "")
            english += [f"{model._meta.label} {key}: {value}" for key, value in labels.items() if _foreign(value)]
    assert english == []


def test_the_authenticator_and_recovery_code_pages_render_without_english(administrator: User) -> None:
    administrator.is_superuser = True  # the devices' pages are the superuser's (break-glass) tools
    administrator.save()
    client = force_login_verified(Client(), administrator)
    device = TOTPDevice.objects.get(user=administrator)
    codes = StaticDevice.objects.create(user=administrator, name="recovery")
    pages = [
        "/console/otp_totp/totpdevice/",
        f"/console/otp_totp/totpdevice/{device.pk}/change/",
        "/console/otp_static/staticdevice/",
        f"/console/otp_static/staticdevice/{codes.pk}/change/",
    ]
    for page in pages:
        response = client.get(page, headers={"accept-language": "zh-hans"})
        assert response.status_code == 200, page
        html = response.content.decode()
        shown = re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", html, flags=re.S))
        for english in (
            "Identity",
            "Timestamps",
            "Throttling",
            "Configuration",
            "TOTP devices",
            "QR Code",
            "static device",
            "Is this device ready",
            "Search by user",
            "Otp_",
        ):
            assert english not in shown, (page, english)
    assert "身份验证器" in html or "恢复码" in html
