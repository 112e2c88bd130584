# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""The one way this collection runs registry requests in parallel.

``parallel_map`` for "the same call over many items" (planning HEADs, tag lists, the tags of a
digest); ``worker_pool`` for the copy engine's scheduler, which submits as work becomes ready.
Both bound the threads by ``concurrency``; the threads share a pool of keep-alive connections
(see :mod:`_transport`), so the bound is also the most connections opened to one registry.

``AdaptiveLimit`` decides how many of those threads may have a request in flight to one
registry at a time (each client has its own, so a slow registry does not hold the threads the
other side could use): it grows while the completed requests per second grow, and backs off on
429/503 answers and when latency collapses. ``concurrency`` stays the cap.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence, TypeVar

__all__ = ["AdaptiveLimit", "parallel_map", "worker_pool"]

_T = TypeVar("_T")
_R = TypeVar("_R")


def worker_pool(concurrency: int) -> ThreadPoolExecutor:
    """A bounded pool of at least one worker thread (use it as a context manager)."""
    return ThreadPoolExecutor(max_workers=max(1, int(concurrency)), thread_name_prefix="dockyard")


def parallel_map(func: Callable[[_T], _R], items: Sequence[_T], concurrency: int) -> list[_R]:
    """``[func(item) for item in items]`` with up to ``concurrency`` calls at once, results in
    input order; the first exception raised is raised here. Runs in the calling thread when
    there is only one item or ``concurrency`` is 1."""
    items = list(items)
    if not items:
        return []
    if concurrency <= 1 or len(items) == 1:
        return [func(item) for item in items]
    with worker_pool(min(concurrency, len(items))) as pool:
        return list(pool.map(func, items))


class AdaptiveLimit:
    """How many requests may be in flight to one registry: ``initial`` at first, then adapted
    once per window of completed requests (at least ``MIN_WINDOW``, and twice the limit),
    between ``minimum`` and ``maximum``.

    * probing: the limit grows by half (at least one) after every window whose throughput
      (requests completed per second) was ``GROWTH`` times the previous window's, at the lower
      limit; when a step did not pay, the limit goes back to where it was and holds;
    * holding: every ``PROBE`` windows it tries a quarter (at least one) more, and keeps it only
      when that pays;
    * a 429 or 503 answer (the registry says it is overloaded): halve at once, no growth for
      ``COOLDOWN`` windows, then probe again;
    * latency collapse - a window's median latency over ``COLLAPSE`` times the lowest median
      seen, and its throughput below ``DROP`` times what it was: back off by a quarter, then hold.

    ``acquire()`` blocks while the limit is reached; ``release(latency, status)`` reports the
    request's time to its answer and its status. Thread-safe; ``clock`` is injected by tests.
    """

    GROWTH = 1.10
    COLLAPSE = 4.0
    DROP = 0.75
    COOLDOWN = 3
    PROBE = 4
    MIN_WINDOW = 32

    def __init__(self, maximum: int, initial: int = 8, minimum: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.maximum = max(1, int(maximum))
        self.minimum = max(1, min(int(minimum), self.maximum))
        self.limit = max(self.minimum, min(int(initial), self.maximum))
        self._clock = clock
        self._cond = threading.Condition()
        self.in_flight = 0
        self.peak = self.limit              # the highest limit reached (for reports)
        self.backoffs = 0                   # times it backed off (429/503 or latency)
        self._base_latency: float | None = None
        self._probing = True
        self._previous: tuple[int, float] | None = None   # (limit, throughput) before the last step up
        self._held = 0.0                    # throughput while holding
        self._plateau = 0
        self._cooldown = 0
        self._new_window(clock())

    def _new_window(self, now: float) -> None:
        self._started = now
        self._latencies: list[float] = []
        self._overloaded = False

    def acquire(self) -> None:
        with self._cond:
            while self.in_flight >= self.limit:
                self._cond.wait()
            self.in_flight += 1

    def release(self, latency: float, status: int | None = None) -> None:
        with self._cond:
            self.in_flight -= 1
            self._latencies.append(max(0.0, latency))
            if status in (429, 503) and not self._overloaded:
                self._overloaded = True
                self._set(self.limit // 2)
                self.backoffs += 1
                self._hold(self.COOLDOWN)
            if len(self._latencies) >= max(self.MIN_WINDOW, 2 * self.limit):
                self._adapt(self._clock())
            self._cond.notify_all()

    def _set(self, limit: int) -> None:
        self.limit = max(self.minimum, min(self.maximum, limit))
        self.peak = max(self.peak, self.limit)

    def _hold(self, cooldown: int = 0) -> None:
        self._probing = False
        self._previous = None
        self._plateau = 0
        self._held = 0.0
        self._cooldown = cooldown

    def _adapt(self, now: float) -> None:
        throughput = len(self._latencies) / max(now - self._started, 1e-6)
        median = sorted(self._latencies)[len(self._latencies) // 2]
        overloaded = self._overloaded
        self._new_window(now)
        if overloaded:
            return
        if self._cooldown:
            self._cooldown -= 1
            if not self._cooldown:
                self._probing = True
            return
        if self._base_latency is None or median < self._base_latency:
            self._base_latency = median
        reference = self._previous[1] if self._previous else (self._held or None)
        gained = reference is None or throughput >= reference * self.GROWTH
        dropped = reference is not None and throughput < reference * self.DROP
        # slower answers alone are no reason (a loaded machine makes them noisy): slower answers
        # *and* fewer of them are
        if median > self.COLLAPSE * self._base_latency and dropped:
            self._set(self.limit - max(1, self.limit // 4))
            self.backoffs += 1
            self._hold(self.COOLDOWN)
            return
        if self._probing:
            if gained:
                if self.limit >= self.maximum:
                    self._hold()
                    self._held = throughput
                    return
                self._previous = (self.limit, throughput)
                self._set(self.limit + max(1, self.limit // 2))
                return
            # the last step did not pay: back to where it was
            limit, before = self._previous  # type: ignore[misc]
            self._set(limit)
            self._hold()
            self._held = before
            return
        self._held = max(self._held, throughput) if self._held else throughput
        self._plateau += 1
        if self._plateau >= self.PROBE and self.limit < self.maximum:
            self._probing = True
            self._previous = (self.limit, self._held)
            self._plateau = 0
            self._set(self.limit + max(1, self.limit // 4))
