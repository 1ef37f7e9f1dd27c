"""Where uploaded and produced files live (recordings, snapshots, ID-card photos).

Every such file is written and read through Django's storage API
(``default_storage``, ``FileField``), so the backend is a setting:

- ``REMOTEBANK_STORAGE=filesystem`` (default): ``MEDIA_ROOT`` on local disk;
- ``REMOTEBANK_STORAGE=s3``: any S3-compatible object store through
  django-storages (``storages.backends.s3.S3Storage``), configured only by
  the ``REMOTEBANK_S3_*`` variables below (docs/operations.md). Credentials
  are never in the repository: without the two key variables, boto3's own
  chain is used (instance or pod role, ``AWS_*`` variables, shared config).

The Janus originals (``.mjr``) are not here: Janus writes them to the media
server's disk (``REMOTEBANK_JANUS_RECORDINGS_DIR``), where they stay.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

from remotebank.settings.environment import env_bool, env_int, env_optional, env_str

_STATIC_FILES = {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"}


def default_storage_from_environment() -> dict[str, Any]:
    """The ``STORAGES["default"]`` entry that the environment asks for."""
    kind = env_str("REMOTEBANK_STORAGE", "filesystem").strip().lower()
    if kind == "filesystem":
        return {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    if kind != "s3":
        raise ImproperlyConfigured(f"REMOTEBANK_STORAGE must be 'filesystem' or 's3', got {kind!r}.")
    bucket = env_optional("REMOTEBANK_S3_BUCKET")
    if bucket is None:
        raise ImproperlyConfigured("REMOTEBANK_STORAGE=s3 needs REMOTEBANK_S3_BUCKET.")
    access_key, secret_key = (
        env_optional("REMOTEBANK_S3_ACCESS_KEY_ID"),
        env_optional("REMOTEBANK_S3_SECRET_ACCESS_KEY"),
    )
    if (access_key is None) != (secret_key is None):
        raise ImproperlyConfigured(
            "Set both REMOTEBANK_S3_ACCESS_KEY_ID and REMOTEBANK_S3_SECRET_ACCESS_KEY, or neither (boto3's chain)."
        )
    options: dict[str, Any] = {
        "bucket_name": bucket,
        # Evidence is private: no public ACL, and links (if any) are signed and short-lived.
        "default_acl": None,
        "querystring_auth": True,
        "querystring_expire": env_int("REMOTEBANK_S3_URL_SECONDS", 300),
        # Never silently replace an object: a second file of the same name gets a new name,
        # as on the filesystem (an evidence file is never overwritten in place).
        "file_overwrite": False,
        "location": env_str("REMOTEBANK_S3_PREFIX", "").strip("/"),
        "addressing_style": env_optional("REMOTEBANK_S3_ADDRESSING_STYLE"),  # "path" for most on-premises stores
        "signature_version": env_optional("REMOTEBANK_S3_SIGNATURE_VERSION") or "s3v4",
        "use_ssl": env_bool("REMOTEBANK_S3_USE_SSL", default=True),
        "verify": env_bool("REMOTEBANK_S3_VERIFY_TLS", default=True),
    }
    endpoint = env_optional("REMOTEBANK_S3_ENDPOINT_URL")
    if endpoint is not None:
        options["endpoint_url"] = endpoint  # MinIO, Ceph RGW, a bank's own object store
    region = env_optional("REMOTEBANK_S3_REGION")
    if region is not None:
        options["region_name"] = region
    if access_key is not None:
        options["access_key"] = access_key
        options["secret_key"] = secret_key
    return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}


STORAGES = {"default": default_storage_from_environment(), "staticfiles": _STATIC_FILES}
