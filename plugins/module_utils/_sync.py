# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""registry_sync's work: select (:func:`_plan.select_sync`), plan (:func:`_plan.plan_copies`),
execute (:func:`_copy.execute`), and the result with its diff."""

from __future__ import annotations

import time

from ansible_collections.dockyard.registry.plugins.module_utils._argspec import client_from_params
from ansible_collections.dockyard.registry.plugins.module_utils._client import RetryStats
from ansible_collections.dockyard.registry.plugins.module_utils._copy import execute
from ansible_collections.dockyard.registry.plugins.module_utils._ecr import repositories_from_params
from ansible_collections.dockyard.registry.plugins.module_utils._plan import (
    normalise_platforms,
    normalise_repositories,
    plan_copies,
    select_sync,
)
from ansible_collections.dockyard.registry.plugins.module_utils._pool import AdaptiveLimit
from ansible_collections.dockyard.registry.plugins.module_utils._reference import parse_registry

__all__ = ["registry_sync", "RegistrySync", "INITIAL_IN_FLIGHT"]

# Requests in flight per registry at the start of a run; AdaptiveLimit grows it up to
# ``concurrency`` while the throughput grows. 16, not 8: through a 50 ms round trip the planning
# phase (a manifest GET per tag of a cold repository) took 0.63 s at 8 and 0.44 s at 16, and the
# whole cold copy of the bench's wan corpus 5.4 s against 5.1 s (3 runs each); on loopback, where
# the registries' CPU bounds the copy, fixed limits of 8, 16 and 32 measured the same.
INITIAL_IN_FLIGHT = 16


class RegistrySync:
    def __init__(self, params: dict, check_mode: bool = False, diff: bool = False,
                 retry_stats: RetryStats | None = None) -> None:
        self.params = params
        self.check_mode = check_mode
        self.diff = diff
        self.retry_stats = retry_stats if retry_stats is not None else RetryStats()

    def run(self) -> dict:
        started = time.monotonic()
        params = self.params
        concurrency = params["concurrency"]
        platforms = normalise_platforms(params["platforms"] or ["all"])
        src_registry = parse_registry(params["source_registry"])
        dst_registry = parse_registry(params["destination_registry"])
        repositories = normalise_repositories(params["repositories"], params["destination_prefix"])
        ecr = repositories_from_params(params, dst_registry, check_mode=self.check_mode)
        if ecr is not None:
            # Before any listing or copying: bad names, credentials or region stop the run here.
            ecr.check_names(entry.destination for entry in repositories)
            ecr.check_access()
        src = client_from_params(params, src_registry, "source_", retry_stats=self.retry_stats)
        dst = client_from_params(params, dst_registry, "destination_", retry_stats=self.retry_stats)
        # concurrency is the cap (threads, and connections per registry); how many requests are
        # in flight to each registry adapts below it, per registry
        limits = [AdaptiveLimit(concurrency, initial=INITIAL_IN_FLIGHT) for _client in (src, dst)]
        src.limiter, dst.limiter = limits

        selection = select_sync(repositories, src, dst, src_registry, dst_registry, prune=params["prune"],
                                concurrency=concurrency)
        plan = plan_copies(selection.jobs, lambda r: src, lambda r: dst, platforms=platforms,
                           prune=selection.prune, concurrency=concurrency, prepare_destination=ecr)
        stop_early = params["fail_fast"] and selection.failures
        result = execute(plan, concurrency=concurrency, fail_fast=params["fail_fast"],
                         check_mode=self.check_mode or bool(stop_early), retry_stats=self.retry_stats)
        if stop_early:
            result.copied, result.pruned = [], []
        output = result.as_dict()
        # "failed" and "skipped" are task status keys for Ansible: a list there would mark the task
        output["failed_images"] = selection.failures + output.pop("failed")
        output["skipped_images"] = output.pop("skipped")
        output["duration"] = round(time.monotonic() - started, 3)
        output["in_flight"] = {"source": {"final": limits[0].limit, "peak": limits[0].peak,
                                          "backoffs": limits[0].backoffs},
                               "destination": {"final": limits[1].limit, "peak": limits[1].peak,
                                               "backoffs": limits[1].backoffs}}
        output["created_repositories"] = list(ecr.created) if ecr is not None else []
        output["changed"] = result.changed or bool(output["created_repositories"])
        if self.diff:
            before, after = {}, {}
            for planned in plan.copies:
                if planned.reference in result.copied:
                    before[planned.reference] = planned.destination_digest
                    after[planned.reference] = planned.source_digest
            for planned in plan.prunes:
                ref = str(planned.reference)
                if ref in result.pruned:
                    before[ref] = planned.digest
                    after[ref] = None
            output["diff"] = {"before": before, "after": after}
        failed = output["failed_images"]
        if failed:
            output.update(failed=True, error_kind=failed[0]["error_kind"],
                          msg="%d image(s) failed to sync; first: %s: %s"
                              % (len(failed), failed[0]["reference"], failed[0]["error"]))
        return output


def registry_sync(params: dict, check_mode: bool = False, diff: bool = False, retry_stats: RetryStats | None = None) -> dict:
    """The module's result for its parameters (what ``run_registry_module`` calls)."""
    return RegistrySync(params, check_mode=check_mode, diff=diff, retry_stats=retry_stats).run()
