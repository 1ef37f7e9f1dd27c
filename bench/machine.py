"""How fast this machine's CPU is right now, for the benches to print beside their figures.

The machines these benches run on are shared virtual machines whose speed
varies by the hour: the same Python loop of 10⁷ additions has taken from
0.63 s to 1.9 s on one 2-core machine (2026-12-02 to 12-04), and the
dispatch batch's latency moved with it (bench/README.md). The load average
counts only this machine's own processes, not the host's other tenants, so
a figure is only comparable with another taken at a similar speed; each
bench of issue 18 prints this reading at its start and its end. It is a
guide, not the whole story: runs at the same reading have differed by up
to a third in the dispatch batch's p50 (2026-12-04, 8.0 against 10.6 ms).
"""

from __future__ import annotations

import time

ADDITIONS = 10_000_000


# Run as module-level code (names in a dict, not a function's locals), as the
# readings of 0.63–1.9 s were taken: inside a function the same loop takes
# about half as long.
_LOOP = compile(f"total = 0\nfor number in range({ADDITIONS}):\n    total += number\n", "<speed>", "exec")


def python_loop_seconds() -> float:
    """Seconds for one pure-Python loop of 10⁷ additions at module level (one core; about 0.6–2 s)."""
    started = time.perf_counter()
    exec(_LOOP, {})
    return time.perf_counter() - started


def speed_line() -> str:
    return f"CPU speed now: 10^7 Python additions in {python_loop_seconds():.2f} s (lower is faster)"
