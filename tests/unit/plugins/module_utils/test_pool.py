# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The adaptive limit of requests in flight, driven by a fake clock: a registry whose
throughput grows with the limit, one that saturates, one that rate-limits, one whose latency
collapses."""

from __future__ import annotations

import threading

from ansible_collections.dockyard.registry.plugins.module_utils._pool import AdaptiveLimit, parallel_map


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def window(limit, clock, rate, latency, status=None, statuses=None):
    """One adaptation window of requests completing at ``rate(limit)`` per second."""
    count = max(AdaptiveLimit.MIN_WINDOW, 2 * limit.limit)
    per = 1.0 / rate(limit.limit)
    for number in range(count):
        limit.acquire()
        clock.now += per
        limit.release(latency(limit.limit) if callable(latency) else latency,
                      statuses[number] if statuses else status)


def test_grows_to_the_cap_while_throughput_grows_with_it():
    clock = Clock()
    limit = AdaptiveLimit(32, initial=4, clock=clock)
    seen = []
    for _window in range(12):
        window(limit, clock, lambda n: 10.0 * n, 0.1)
        seen.append(limit.limit)
    assert seen == sorted(seen), "never shrinks while throughput keeps growing"
    assert limit.limit == 32 and limit.peak == 32 and limit.backoffs == 0


def test_holds_near_the_knee_when_throughput_stops_growing():
    clock = Clock()
    limit = AdaptiveLimit(64, initial=4, clock=clock)
    for _window in range(40):
        # the registry saturates at 8 requests in flight: more only queue
        window(limit, clock, lambda n: 10.0 * min(n, 8), lambda n: 0.1 * max(1.0, n / 8.0))
    assert 8 <= limit.limit <= 13
    assert limit.peak < 64


def test_429_or_503_halves_at_once_and_growth_waits():
    clock = Clock()
    limit = AdaptiveLimit(32, initial=16, clock=clock)
    limit.acquire()
    limit.release(0.1, 429)
    assert limit.limit == 8 and limit.backoffs == 1
    limit.acquire()
    limit.release(0.1, 503)          # the same window: counted once
    assert limit.limit == 8
    window(limit, clock, lambda n: 10.0 * n, 0.1)      # ends the overloaded window
    for _window in range(AdaptiveLimit.COOLDOWN - 1):
        window(limit, clock, lambda n: 10.0 * n, 0.1)
        assert limit.limit == 8, "no growth during the cool-down"
    window(limit, clock, lambda n: 10.0 * n, 0.1)
    window(limit, clock, lambda n: 10.0 * n, 0.1)
    assert limit.limit > 8


def test_keeps_halving_under_sustained_rate_limiting_but_not_below_the_minimum():
    clock = Clock()
    limit = AdaptiveLimit(32, initial=32, minimum=2, clock=clock)
    for _window in range(10):
        window(limit, clock, lambda n: 10.0, 0.1, status=429)
    assert limit.limit == 2


def test_latency_collapse_with_falling_throughput_backs_off_but_slower_answers_alone_do_not():
    clock = Clock()
    limit = AdaptiveLimit(32, initial=8, clock=clock)
    window(limit, clock, lambda n: 80.0, 0.05)
    window(limit, clock, lambda n: 80.0, 0.05)      # the step to 12 did not pay: back to 8, holding
    assert limit.limit == 8
    window(limit, clock, lambda n: 80.0, 0.5)       # ten times slower answers, as many done: noise
    assert limit.limit == 8 and limit.backoffs == 0
    window(limit, clock, lambda n: 40.0, 0.5)       # ten times slower and half as many: collapse
    assert limit.limit == 6 and limit.backoffs == 1


def test_never_above_the_cap_and_starts_at_the_cap_when_it_is_lower():
    limit = AdaptiveLimit(4, initial=8)
    assert limit.limit == 4
    assert AdaptiveLimit(1).limit == 1


def test_acquire_blocks_at_the_limit_until_a_release():
    limit = AdaptiveLimit(2, initial=2)
    limit.acquire()
    limit.acquire()
    entered = threading.Event()

    def third():
        limit.acquire()
        entered.set()

    thread = threading.Thread(target=third)
    thread.start()
    assert not entered.wait(0.05)
    assert limit.in_flight == 2
    limit.release(0.01, 200)
    thread.join(10)
    assert entered.is_set() and limit.in_flight == 2


def test_threads_never_have_more_in_flight_than_the_limit_while_it_adapts():
    limit = AdaptiveLimit(6, initial=2)
    guard = threading.Lock()
    state = {"now": 0, "most": 0}

    def request(number):
        limit.acquire()
        with guard:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        with guard:
            state["now"] -= 1
        # every 50th answer is a 503: the limit halves while other threads wait
        limit.release(0.001, 503 if number % 50 == 49 else 200)

    parallel_map(request, list(range(400)), 12)
    assert limit.in_flight == 0
    assert state["most"] <= 6      # 12 threads, a cap of 6
    assert limit.backoffs >= 1


def test_parallel_map_keeps_input_order():
    assert parallel_map(lambda x: x * 2, [3, 1, 2], 4) == [6, 2, 4]
    assert parallel_map(lambda x: x, [], 4) == []
