"""The customer's page computes its own place (issue 18, O(1) fan-out): it must equal the real one.

Random sequences of real service calls (joins at every level, leaving,
supervisor moves between two queues, offers to a named agent taken out of
order, declines that put the customer back at the front) run on the
database; every broadcast is recorded. Each waiting customer's page is then
fed its snapshot and its queue's messages shuffled, duplicated and some
dropped, then the dispatcher's resync, and a fresh snapshot if it reports a
gap (as the page asks for one). The place it shows must be the entry's real
place (``selectors.entry_position``), computed by the page's own JavaScript
(``static/queueing/position.js``, run by node) and by its Python mirror
(``apps/queueing/position.py``, which the benches use) alike.
"""

from __future__ import annotations

import itertools
import json
import random
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.customers.models import Customer, CustomerLevel
from apps.queueing import events
from apps.queueing.models import AgentState, EntryState, QueueEntry, ServiceQueue
from apps.queueing.position import Tracker, position_step, position_view
from apps.queueing.selectors import entry_place_snapshot, entry_position, queue_resync_message
from apps.queueing.services.agents import agent_state_set
from apps.queueing.services.configuration import service_queue_upsert
from apps.queueing.services.entries import queue_entry_enqueue, queue_entry_leave, queue_entry_move
from apps.queueing.services.offers import offer_decline, queue_entry_offer_to
from apps.staff.models import StaffProfile
from apps.verification.models import VerificationState
from tests.conftest import CI, SYSTEM
from tests.factories import visit_with_gate1

pytestmark = pytest.mark.django_db(transaction=True)

POSITION_JS = Path(__file__).resolve().parents[2] / "apps/queueing/static/queueing/position.js"
NODE = shutil.which("node")
LEVELS = list(CustomerLevel)
queue_codes = itertools.count(1)

# Reads streams of messages on stdin, prints the page's view after each stream.
NODE_HARNESS = """
const P = require(process.argv[1]);
const streams = JSON.parse(require("fs").readFileSync(0, "utf8"));
const views = streams.map((stream) => {
  let tracker = P.queuePositionInitial();
  for (const message of stream) tracker = P.queuePositionStep(tracker, message);
  return P.queuePositionView(tracker);
});
process.stdout.write(JSON.stringify(views));
"""

operations = st.lists(
    st.one_of(
        st.tuples(st.just("join"), st.sampled_from(LEVELS), st.integers(0, 1)),
        st.tuples(st.just("leave"), st.integers(0, 10_000), st.just(0)),
        st.tuples(st.just("move"), st.integers(0, 10_000), st.just(0)),
        st.tuples(st.just("offer"), st.integers(0, 10_000), st.integers(0, 1)),
        st.tuples(st.just("decline"), st.integers(0, 1), st.just(0)),
        st.tuples(st.just("reconnect"), st.integers(0, 10_000), st.just(0)),
    ),
    min_size=5,
    max_size=30,
)


def _views_in_node(streams: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    if NODE is None:
        if CI:
            pytest.fail("node is required under CI=true (the page's own JavaScript is the algorithm under test)")
        pytest.skip("node is not installed")
    done = subprocess.run(
        [NODE, "-e", NODE_HARNESS, str(POSITION_JS)],
        input=json.dumps(streams),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(done.stdout)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=operations, seed=st.integers(0, 2**32 - 1), drop_rate=st.sampled_from([0.0, 0.0, 0.2]))
def test_the_place_the_page_computes_is_the_real_place(
    steps: list[tuple[str, Any, int]],
    seed: int,
    drop_rate: float,
    make_customer: Callable[..., Customer],
    make_skilled_staff: Callable[..., StaffProfile],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(events, "broadcast_now", lambda group, event: sent.append((group, event)))
    number = next(queue_codes)
    # Paused: nothing is offered except by the named offers below (the dispatch task is eager in tests).
    queues = [
        service_queue_upsert(
            actor=SYSTEM, code=f"pos{number}{side}", name="队列", businesses=["activation"], paused=True
        )
        for side in "ab"
    ]
    agents = [make_skilled_staff() for _ in range(2)]
    for agent in agents:
        agent_state_set(actor=SYSTEM, staff=agent, state=AgentState.AVAILABLE)
    offered: dict[int, int] = {}  # agent index -> entry id
    snapshots: dict[int, dict[str, Any]] = {}  # entry id -> the page's latest snapshot

    def waiting() -> list[QueueEntry]:
        return list(QueueEntry.objects.filter(queue__in=queues, state=EntryState.WAITING).order_by("pk"))

    def snapshot(entry_id: int) -> None:
        taken = entry_place_snapshot(entry_id=entry_id)
        assert taken is not None
        snapshots[entry_id] = taken

    for kind, value, side in steps:
        live = waiting()
        if kind == "join":
            customer = make_customer(level=value)
            visit = visit_with_gate1(
                business_code="activation",
                mobile=customer.mobile,
                customer=customer,
                state=VerificationState.QUEUE_READY,
            )
            snapshot(queue_entry_enqueue(visit_id=visit.pk, queue=queues[side]).pk)
        elif kind == "leave" and live:
            queue_entry_leave(entry_id=live[value % len(live)].pk)
        elif kind == "move" and live:
            entry = live[value % len(live)]
            other = queues[1] if entry.queue_id == queues[0].pk else queues[0]
            queue_entry_move(actor=SYSTEM, entry_id=entry.pk, queue_id=other.pk)
            snapshot(entry.pk)  # the "moved" event makes the page follow the new queue
        elif kind == "offer" and live and side not in offered:
            entry = live[value % len(live)]  # any place, not only the head: removals out of order
            queue_entry_offer_to(actor=SYSTEM, entry_id=entry.pk, staff=agents[side])
            offered[side] = entry.pk
        elif kind == "decline" and value in offered:
            entry_id = offered.pop(value)
            offer_decline(actor=agents[value].user, staff=agents[value], entry_id=entry_id)
            snapshot(entry_id)  # "back_in_queue": the page takes a new snapshot
        elif kind == "reconnect" and live:
            snapshot(live[value % len(live)].pk)  # a page reloaded at any moment

    rng = random.Random(seed)
    messages = [json.loads(event["text"]) for group, event in sent if group.startswith("queue.")]
    resyncs = {queue.pk: queue_resync_message(queue=queue) for queue in queues}
    entries = waiting()
    streams = []
    for entry in entries:
        mine = [m for m in messages if m["queue"] == entry.queue_id]
        stream = [snapshots[entry.pk]] + [m for m in mine if rng.random() >= drop_rate]
        stream += rng.sample(mine, k=min(3, len(mine)))  # duplicates, arriving late
        rng.shuffle(stream)  # any order, the snapshot included
        streams.append([*stream, resyncs[entry.queue_id]])

    python_views = []
    asked = 0
    for entry, stream in zip(entries, streams, strict=True):
        tracker = Tracker()
        for message in stream:
            position_step(tracker, message)
        if tracker.gap:
            # What the page does on a gap: ask, and get a fresh snapshot.
            fresh = entry_place_snapshot(entry_id=entry.pk)
            assert fresh is not None
            stream.append(fresh)
            position_step(tracker, fresh)
            asked += 1
        python_views.append(position_view(tracker))
    node_views = _views_in_node(streams)

    for entry, python_view, node_view in zip(entries, python_views, node_views, strict=True):
        real = entry_position(entry=entry)
        assert python_view["known"] and python_view["position"] == real, (entry.pk, python_view, real)
        assert node_view == python_view
    if drop_rate == 0.0:
        # Nothing lost (only reordered and duplicated): no page had to ask for a snapshot.
        assert asked == 0
    assert {q.pk: resyncs[q.pk]["waiting"] for q in queues} == {
        q.pk: QueueEntry.objects.filter(queue=q, state=EntryState.WAITING).count() for q in queues
    }
    # One message per change: the versions of each queue are 1..n without holes or repeats.
    for queue in ServiceQueue.objects.filter(pk__in=[q.pk for q in queues]):
        mine = sorted((m for m in messages if m["queue"] == queue.pk), key=lambda m: m["version"])
        assert [m["version"] for m in mine] == list(range(1, queue.change_version + 1))
        # Each change carried the line's size after it: the last one, the size now.
        if mine:
            assert mine[-1]["waiting"] == QueueEntry.objects.filter(queue=queue, state=EntryState.WAITING).count()
