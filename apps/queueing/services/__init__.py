"""Every write of the queueing app, one topic per module (import from the module itself).

- ``configuration``: queues and overflow targets.
- ``entries``: a customer's place in the queue.
- ``agents``: agents' presence and state.
- ``offers``: the dispatcher's offers and the agent's answer.
- ``housekeeping``: what only time triggers (the ``run_dispatcher`` loop).
"""
