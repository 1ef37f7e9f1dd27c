"""Every write of the queueing app, one topic per module (import from the module itself).

- ``configuration``: queues and overflow targets.
- ``entries``: a customer's place in the queue.
- ``agents``: agents' presence and state.
- ``offers``: the dispatcher's offers and the agent's answer.
- ``housekeeping``: what only time triggers (the ``run_dispatcher`` loop).

Services that only an API view or a Celery task calls run in
``transaction.atomic(durable=True)``: their commit is the commit, and a
caller that wraps them in a transaction fails loudly instead of delaying the
after-commit side effects. Services that other services (or tests) also call
inside their own transaction stay non-durable.
"""
