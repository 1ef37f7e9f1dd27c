"""Settings shared by every environment.

Environment-specific modules (local, test, production) import everything from
here and then set the secrets; topic modules below are pulled in at the end.
"""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from remotebank.settings.environment import env_bool, env_int, env_list, env_path

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = env_path("REMOTEBANK_VAR_DIR", BASE_DIR / "var")

DEBUG = env_bool("REMOTEBANK_DEBUG", default=False)
ALLOWED_HOSTS = env_list("REMOTEBANK_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("REMOTEBANK_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    # Daphne first: it replaces runserver with the ASGI server.
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "channels",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    # Ours, in dependency order (docs/architecture.md): each app may import only
    # the ones above it.
    "apps.common",
    "apps.audit",
    "apps.customers",
    "apps.businesses",
    "apps.staff",
    "apps.security",
    "apps.visits",
    "apps.verification",
    "apps.queueing",
    "apps.calls",
    "apps.recordings",
    "apps.gates",
    "apps.operations",
    "apps.compliance",
    "apps.console",
    "apps.mobile",
    "apps.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # CSP, Permissions-Policy, COOP; sets request.csp_nonce for inline scripts.
    "apps.security.middleware.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Slides the session's idle deadline; after SessionMiddleware, so that it runs first on the response.
    "apps.security.middleware.SessionRefreshMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # user.is_verified(), then the second factor for supervisors, compliance and administrators.
    "django_otp.middleware.OTPMiddleware",
    "apps.security.middleware.StaffTwoFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: it turns a locked-out login into a 429 page.
    "axes.middleware.AxesMiddleware",
    # A login refused for the per-username delay answers 429 with the wait.
    "apps.security.throttling.LoginDelayMiddleware",
]

ROOT_URLCONF = "remotebank.urls"
ASGI_APPLICATION = "remotebank.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTHENTICATION_BACKENDS = [
    # django-axes must come first so that a locked-out user is refused before
    # the password is even checked.
    "axes.backends.AxesStandaloneBackend",
    # Then the soft per-username delay (apps/security/throttling.py).
    "apps.security.throttling.LoginDelayBackend",
    # ModelBackend, reading the profile with the user and the permissions in one query.
    "apps.staff.authentication.StaffModelBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Chinese first, English second (PRODUCT.md).
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
# Our own static files, plus Debian's janus.js and webrtc-adapter (packages
# libjs-janus-gateway and libjs-webrtc-adapter) when installed.
STATICFILES_DIRS = [
    BASE_DIR / "static",
    *(
        (prefix, path)
        for prefix, path in (
            ("vendor/janus", "/usr/share/javascript/janus-gateway"),
            ("vendor/webrtc-adapter", "/usr/share/javascript/webrtc-adapter"),
        )
        if Path(path).is_dir()
    ),
]
STATIC_ROOT = env_path("REMOTEBANK_STATIC_ROOT", VAR_DIR / "static")
MEDIA_URL = "/media/"
MEDIA_ROOT = env_path("REMOTEBANK_MEDIA_ROOT", VAR_DIR / "media")
# STORAGES (filesystem by default, S3-compatible by environment): remotebank/settings/storage.py.

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "admin:login"

# Staff sessions: short-lived and gone when the browser closes. The idle
# deadline slides with use: apps.security.middleware.SessionRefreshMiddleware
# writes it again at most every SESSION_REFRESH_SECONDS (Django's
# SESSION_SAVE_EVERY_REQUEST wrote the session row on every request), so a
# session ends between AGE - REFRESH and AGE after its last request.
SESSION_COOKIE_AGE = env_int("REMOTEBANK_SESSION_SECONDS", 30 * 60)
SESSION_REFRESH_SECONDS = env_int("REMOTEBANK_SESSION_REFRESH_SECONDS", 60)
if not 0 <= SESSION_REFRESH_SECONDS < SESSION_COOKIE_AGE:
    raise ImproperlyConfigured(
        "REMOTEBANK_SESSION_REFRESH_SECONDS must be at least 0 and below REMOTEBANK_SESSION_SECONDS"
    )
SESSION_SAVE_EVERY_REQUEST = False
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# django-axes: failed-login lockout of addresses (limits and parameters:
# remotebank/settings/security.py).
AXES_LOCKOUT_TEMPLATE = "staff/locked_out.html"
AXES_VERBOSE = False

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "apps.common.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "RemoteBank API",
    "DESCRIPTION": "Remote video banking platform (远程银行).",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

# Real photos used by tests and the identity-registry sandbox; never copied
# into the project (../shared/datasets/faces by default).
FACES_DATASET_DIR = env_path("REMOTEBANK_FACES_DIR", BASE_DIR.parent / "shared" / "datasets" / "faces")

# Gate 1 limits per visit (R6.1): ID-card uploads, minimum seconds between
# uploads, and wrong account numbers before the visit is refused.
GATE1_MAX_ID_CARD_UPLOADS = env_int("REMOTEBANK_GATE1_MAX_UPLOADS", 6)
GATE1_UPLOAD_COOLDOWN_SECONDS = env_int("REMOTEBANK_GATE1_UPLOAD_COOLDOWN_SECONDS", 2)
GATE1_MAX_ACCOUNT_ATTEMPTS = env_int("REMOTEBANK_GATE1_MAX_ACCOUNT_ATTEMPTS", 3)
# Uploads above this many bytes are refused before being read into memory.
GATE1_MAX_UPLOAD_BYTES = env_int("REMOTEBANK_GATE1_MAX_UPLOAD_BYTES", 25 * 1024 * 1024)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

from remotebank.settings.audit import *  # noqa: E402,F403
from remotebank.settings.celery import *  # noqa: E402,F403
from remotebank.settings.deadlines import *  # noqa: E402,F403
from remotebank.settings.face import *  # noqa: E402,F403
from remotebank.settings.gate1 import *  # noqa: E402,F403
from remotebank.settings.janus import *  # noqa: E402,F403
from remotebank.settings.liveness import *  # noqa: E402,F403
from remotebank.settings.location import *  # noqa: E402,F403
from remotebank.settings.media_capture import *  # noqa: E402,F403
from remotebank.settings.security import *  # noqa: E402,F403
from remotebank.settings.storage import *  # noqa: E402,F403
from remotebank.settings.turn import *  # noqa: E402,F403
from remotebank.settings.verification import *  # noqa: E402,F403

# Calls (R1.4): how long a dropped participant may take to rejoin, and how
# long a new call may take to connect, before the call is ended.
CALL_REJOIN_GRACE_SECONDS = env_int("REMOTEBANK_CALL_REJOIN_GRACE_SECONDS", 60)
CALL_CONNECT_TIMEOUT_SECONDS = env_int("REMOTEBANK_CALL_CONNECT_TIMEOUT_SECONDS", 120)

# Recordings (R3.2): how many days after a service is closed its media files
# (recordings, originals, snapshots) are kept before `recordings_purge_expired`
# removes them; their hashes and audit records are kept for ever.
RECORDINGS_RETENTION_DAYS = env_int("REMOTEBANK_RECORDINGS_RETENTION_DAYS", 5 * 365)
if RECORDINGS_RETENTION_DAYS < 1:
    raise ImproperlyConfigured("REMOTEBANK_RECORDINGS_RETENTION_DAYS must be at least 1.")
# A Janus server that stops answering (crash, lost machine): the dispatcher
# pings each server with live calls at most every CHECK seconds, and ends its
# live calls (media_server_failed) once it has failed to answer for FAILURE
# seconds (one lost ping is not a dead server).
CALL_MEDIA_SERVER_CHECK_SECONDS = env_int("REMOTEBANK_CALL_MEDIA_SERVER_CHECK_SECONDS", 5)
CALL_MEDIA_SERVER_FAILURE_SECONDS = env_int("REMOTEBANK_CALL_MEDIA_SERVER_FAILURE_SECONDS", 10)
from remotebank.settings.channels import *  # noqa: E402,F403
from remotebank.settings.database import *  # noqa: E402,F403
