"""Signals the calls app sends, for apps above it (recordings) to react without calls importing them."""

from __future__ import annotations

from django.dispatch import Signal

# Sent by ``apps.calls.services._end`` inside the transaction that ends the
# call, with ``call`` (the ``Call``, already in state ``ended``). Receivers
# must only call a service, and schedule any slow work with
# ``transaction.on_commit``: a rolled-back end must not start anything.
call_ended = Signal()
