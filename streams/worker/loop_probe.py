"""How long the worker's event loop is held: a probe asks to wake every PROBE_S, and how
late it wakes is how long something kept the loop from running (rules run on it, a large
serialisation). Every agent, timer, web page and Kafka heartbeat of the worker shares that
one loop, so this is the delay each of them may see.

Exported as ``shaftwatch_event_loop_lag_seconds`` (a histogram of every probe's lateness)
and ``shaftwatch_event_loop_lag_max_seconds`` (the worst lateness of the last
``WINDOW_S``). Measured in ``make bench-power`` while the power agent works a backlog.
Python's garbage collections stop every thread, the loop's too, for as long as they take:
``shaftwatch_gc_pause_seconds{generation}`` says how long, so a stall can be told apart
from a slow agent step.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import time

from prometheus_client import Gauge, Histogram

from streams.worker.app import app

PROBE_S = 0.05
WINDOW_S = 60.0
EVENT_LOOP_LAG_SECONDS = Histogram("shaftwatch_event_loop_lag_seconds",
                                   "How late the worker's event-loop probe woke: how long something held the loop",
                                   buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
EVENT_LOOP_LAG_MAX_SECONDS = Gauge("shaftwatch_event_loop_lag_max_seconds",
                                   f"The longest the worker's event loop was held in the last {WINDOW_S:g} s")


GC_PAUSE_SECONDS = Histogram("shaftwatch_gc_pause_seconds", "How long each of the worker's garbage collections took, "
                             "by generation (every thread waits meanwhile)", ["generation"],
                             buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0))
_GC_BY_GENERATION = [GC_PAUSE_SECONDS.labels(generation=str(g)) for g in range(3)]
_gc_started = [0.0]


def _time_gc(phase: str, info: dict) -> None:
    """gc.callbacks hook: a collection's start and stop, in the thread that runs it."""
    if phase == "start":
        _gc_started[0] = time.perf_counter()
    else:
        _GC_BY_GENERATION[info["generation"]].observe(time.perf_counter() - _gc_started[0])


gc.callbacks.append(_time_gc)


@app.on_rebalance_complete.connect
async def _freeze_recovered_state(sender, **kwargs) -> None:
    """Once the tables are recovered (after every rebalance): collect what is garbage now,
    then move every object alive into the permanent generation, which full collections do
    not walk. The recovered state is hundreds of thousands of objects; without this each
    full collection walked them all and held the loop for over 100 ms (make bench-power:
    shaftwatch_gc_pause_seconds, generation 2). Frozen objects are still freed by reference
    counting when the agents replace them."""
    gc.collect()
    gc.freeze()


class LagWindow:
    """The largest of the lags seen in the last ``window_s`` seconds."""

    def __init__(self, window_s: float):
        self.window_s = window_s
        self._lags: collections.deque[tuple[float, float]] = collections.deque()

    def add(self, now: float, lag: float) -> float:
        self._lags.append((now, lag))
        while self._lags and self._lags[0][0] < now - self.window_s:
            self._lags.popleft()
        return max(lag for _, lag in self._lags)


@app.task
async def probe_event_loop() -> None:
    loop = asyncio.get_running_loop()
    window = LagWindow(WINDOW_S)
    while not app.should_stop:
        asked = loop.time()
        await asyncio.sleep(PROBE_S)
        now = loop.time()
        lag = max(0.0, now - asked - PROBE_S)
        EVENT_LOOP_LAG_SECONDS.observe(lag)
        EVENT_LOOP_LAG_MAX_SECONDS.set(window.add(now, lag))
