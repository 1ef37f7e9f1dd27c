"""Where recordings and snapshots are stored: filesystem by default, S3-compatible by environment only."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from storages.backends.s3 import S3Storage

from remotebank.settings.storage import default_storage_from_environment

S3_ENVIRONMENT = {
    "REMOTEBANK_STORAGE": "s3",
    "REMOTEBANK_S3_BUCKET": "evidence",
    "REMOTEBANK_S3_ENDPOINT_URL": "https://objects.bank.invalid:9000",
    "REMOTEBANK_S3_REGION": "cn-north-1",
    "REMOTEBANK_S3_ADDRESSING_STYLE": "path",
    "REMOTEBANK_S3_PREFIX": "/remotebank/",
    # Not secrets: made-up values that only sign a URL locally in this test.
    "REMOTEBANK_S3_ACCESS_KEY_ID": "test-access-key",
    "REMOTEBANK_S3_SECRET_ACCESS_KEY": "test-secret-key",
}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in (*S3_ENVIRONMENT, "REMOTEBANK_S3_URL_SECONDS", "REMOTEBANK_S3_USE_SSL", "REMOTEBANK_S3_VERIFY_TLS"):
        monkeypatch.delenv(name, raising=False)

    def apply(values: dict[str, str]) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return apply


def test_the_filesystem_is_the_default(environment: Any) -> None:
    assert default_storage_from_environment() == {"BACKEND": "django.core.files.storage.FileSystemStorage"}


def test_s3_compatible_storage_is_configured_from_the_environment_only(environment: Any) -> None:
    environment(S3_ENVIRONMENT)

    configured = default_storage_from_environment()

    assert configured["BACKEND"] == "storages.backends.s3.S3Storage"
    options = configured["OPTIONS"]
    assert options["bucket_name"] == "evidence" and options["location"] == "remotebank"
    assert options["default_acl"] is None and options["file_overwrite"] is False
    # django-storages refuses unknown options, so this also checks every name; the client is built offline.
    storage = S3Storage(**options)
    client = storage.connection.meta.client
    assert client.meta.endpoint_url == "https://objects.bank.invalid:9000"
    assert client.meta.region_name == "cn-north-1"
    # Private objects: a link is signed and short-lived (path-style on the bank's own endpoint).
    url = storage.url("recordings/call/attempt-1/call.webm")
    assert url.startswith("https://objects.bank.invalid:9000/evidence/remotebank/recordings/call/attempt-1/call.webm?")
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=300" in url


def test_without_keys_boto3_finds_credentials_itself(environment: Any) -> None:
    environment(
        {
            key: value
            for key, value in S3_ENVIRONMENT.items()
            if key not in ("REMOTEBANK_S3_ACCESS_KEY_ID", "REMOTEBANK_S3_SECRET_ACCESS_KEY")
        }
    )
    options = default_storage_from_environment()["OPTIONS"]
    assert "access_key" not in options and "secret_key" not in options


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"REMOTEBANK_STORAGE": "ftp"}, "must be 'filesystem' or 's3'"),
        ({"REMOTEBANK_STORAGE": "s3"}, "needs REMOTEBANK_S3_BUCKET"),
        (
            {"REMOTEBANK_STORAGE": "s3", "REMOTEBANK_S3_BUCKET": "b", "REMOTEBANK_S3_ACCESS_KEY_ID": "only-one"},
            "or neither",
        ),
    ],
)
def test_a_wrong_storage_configuration_stops_the_start(environment: Any, values: dict[str, str], message: str) -> None:
    environment(values)
    with pytest.raises(ImproperlyConfigured, match=message):
        default_storage_from_environment()
