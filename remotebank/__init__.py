from __future__ import annotations

# Importing the Celery app here makes @shared_task bind to it whichever process
# imports Django first (Daphne, a worker, manage.py, pytest).
from remotebank.celery import app as celery_app

__all__ = ("celery_app",)
