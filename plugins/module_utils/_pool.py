# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""The one way this collection runs registry requests in parallel.

``parallel_map`` for "the same call over many items" (planning HEADs, tag lists, the tags of a
digest); ``worker_pool`` for the copy engine's scheduler, which submits as work becomes ready.
Both bound the threads by ``concurrency``; each worker thread keeps its own keep-alive
connections (see :mod:`_transport`), so the bound is also the number of connections per registry.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence, TypeVar

__all__ = ["parallel_map", "worker_pool"]

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
