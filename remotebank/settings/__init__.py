"""Settings package.

Pick a module with DJANGO_SETTINGS_MODULE:
``remotebank.settings.local`` (default for manage.py and asgi), ``.test`` (pytest)
or ``.production``. Every value comes from the environment (see ``environment.py``
and docs/operations.md); topic modules (database, celery, channels, security)
are imported by ``base``.
"""
