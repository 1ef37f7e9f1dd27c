/*
 * The waiting customer's place in the queue, computed on the page (issue 18: O(1) fan-out).
 *
 * The server never sends one customer their position. It sends:
 *  - a snapshot once, on connect, after a move or a declined offer, and on request:
 *    {type: "position", queue, version, key, ticket, position, state, seconds_each};
 *  - one message per change of who waits in the queue, the same for everyone:
 *    {type: "queue", queue, version, waiting, removed: [[key, ticket], ...], inserted: [...]}
 *    and, every few seconds, the same message with no changes and resync: true
 *    (it names the latest version, so a page that missed the last one notices).
 * Places are ordered by (key, ticket), as the dispatcher orders them; versions
 * are the queue's change counter, bumped in commit order. So the page counts
 * the places that left or joined AHEAD of its own, applying the messages
 * strictly in version order (buffering early ones, ignoring old and duplicate
 * ones). A version that stays missing (a lost message, a restarted server)
 * is a gap: the page asks for a snapshot instead of guessing.
 *
 * apps/queueing/position.py mirrors queuePositionStep for the benches;
 * tests/queueing/test_position.py runs this file through node against the
 * real services.
 */
(function (root) {
  "use strict";

  function placeBefore(a, b) {
    return a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);
  }

  // A fresh tracker: nothing known until the snapshot.
  function queuePositionInitial() {
    return { snapshot: null, pending: {}, gap: false };
  }

  function applyChange(tracker, message) {
    const mine = [tracker.snapshot.key, tracker.snapshot.ticket];
    let ahead = tracker.snapshot.ahead;
    for (const place of message.removed || []) if (placeBefore(place, mine)) ahead -= 1;
    for (const place of message.inserted || []) if (placeBefore(place, mine)) ahead += 1;
    tracker.snapshot.ahead = ahead;
    tracker.snapshot.version = message.version;
    if (typeof message.waiting === "number") tracker.snapshot.waiting = message.waiting;
    if (typeof message.seconds_each === "number") tracker.snapshot.secondsEach = message.seconds_each;
  }

  // Apply every buffered message that is next in version order; note whether a gap remains.
  function drain(tracker) {
    const snap = tracker.snapshot;
    for (;;) {
      const next = tracker.pending[snap.version + 1];
      if (next === undefined) break;
      delete tracker.pending[snap.version + 1];
      applyChange(tracker, next);
    }
    for (const version of Object.keys(tracker.pending)) {
      if (Number(version) <= snap.version) delete tracker.pending[version];
    }
    tracker.gap = Object.keys(tracker.pending).length > 0 || (tracker.heardVersion || 0) > snap.version;
  }

  /*
   * The pure step: (tracker, message) -> tracker (mutated and returned).
   * tracker.gap says a snapshot is needed; queuePositionView says what to show.
   */
  function queuePositionStep(tracker, message) {
    if (message.type === "position") {
      tracker.snapshot = {
        queue: message.queue,
        version: message.version,
        key: message.key,
        ticket: message.ticket,
        state: message.state,
        ahead: message.position > 0 ? message.position - 1 : 0,
        waiting: message.waiting,
        secondsEach: message.seconds_each,
      };
      tracker.heardVersion = Math.max(tracker.heardVersion || 0, message.version);
      for (const version of Object.keys(tracker.pending)) {
        if (tracker.pending[version].queue !== message.queue) delete tracker.pending[version];
      }
      drain(tracker);
      return tracker;
    }
    if (message.type !== "queue") return tracker;
    if (tracker.snapshot !== null && message.queue !== tracker.snapshot.queue) return tracker;
    if (tracker.snapshot === null) {
      // Before the snapshot: keep it; the snapshot says which ones it already counts.
      if (!message.resync) tracker.pending[message.version] = message;
      return tracker;
    }
    if (tracker.snapshot.queue === message.queue) {
      tracker.heardVersion = Math.max(tracker.heardVersion || 0, message.version);
      if (typeof message.seconds_each === "number") tracker.snapshot.secondsEach = message.seconds_each;
    }
    if (message.version > tracker.snapshot.version && !message.resync) {
      tracker.pending[message.version] = message;
    }
    drain(tracker);
    return tracker;
  }

  // What the page shows: the position (0 = not waiting or not known) and the estimated wait.
  function queuePositionView(tracker) {
    const snap = tracker.snapshot;
    if (snap === null || snap.state !== "waiting") return { position: 0, estimatedWaitSeconds: 0, known: snap !== null };
    const position = snap.ahead + 1;
    return {
      position: position,
      estimatedWaitSeconds: Math.round(position * (snap.secondsEach || 0)),
      known: !tracker.gap,
      waiting: snap.waiting,
    };
  }

  /*
   * The page's hook: feed it every socket message; it calls show(view) when
   * the place changes and sendResync() when a gap outlives gapMilliseconds
   * (a message may just be late: versions are sent by different processes).
   */
  function queuePositionFollow(options) {
    const gapMilliseconds = options.gapMilliseconds || 1000;
    let tracker = queuePositionInitial();
    let timer = null;
    let shown = null;
    function update() {
      const view = queuePositionView(tracker);
      const text = JSON.stringify(view);
      if (text !== shown) { shown = text; options.show(view); }
      if (tracker.gap && timer === null) {
        timer = setTimeout(() => {
          timer = null;
          if (tracker.gap) options.sendResync();
        }, gapMilliseconds);
      }
    }
    return {
      receive(message) {
        if (message.type !== "position" && message.type !== "queue") return false;
        tracker = queuePositionStep(tracker, message);
        update();
        return true;
      },
      reset() { tracker = queuePositionInitial(); shown = null; },
      state() { return tracker; },
    };
  }

  const api = { queuePositionInitial, queuePositionStep, queuePositionView, queuePositionFollow, placeBefore };
  if (typeof module === "object" && module.exports) module.exports = api;
  else root.QueuePosition = api;
})(typeof window !== "undefined" ? window : globalThis);
