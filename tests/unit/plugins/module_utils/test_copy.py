# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The copy engine's executor against the in-memory registry of fake_registry (planning is
test_plan's; the real client and registries are exercised by test_client and the integration
targets)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.dockyard.registry.plugins.module_utils import _copy
from ansible_collections.dockyard.registry.plugins.module_utils._client import RetryStats
from ansible_collections.dockyard.registry.plugins.module_utils._copy import execute, retag
from ansible_collections.dockyard.registry.plugins.module_utils._errors import ServerError
from ansible_collections.dockyard.registry.plugins.module_utils._plan import CopyJob, plan_copies
from ansible_collections.dockyard.registry.plugins.module_utils._reference import parse_reference
from ansible_collections.dockyard.registry.tests.unit.plugins.module_utils.fake_registry import FakeRegistry, sha


@pytest.fixture
def src():
    return FakeRegistry("src.example:5000")


@pytest.fixture
def dst():
    return FakeRegistry("dst.example:5000")


def job(src_ref, dst_ref):
    return CopyJob(parse_reference(src_ref), parse_reference(dst_ref))


def run(src, dst, jobs, check_mode=False, fail_fast=False, platforms="all", prune=(), concurrency=4):
    src_client, dst_client = src.client(), dst.client()
    clients = {src.host: src_client, dst.host: dst_client}
    plan = plan_copies(jobs, lambda r: clients[r.host], lambda r: clients[r.host], platforms=platforms,
                       prune=[parse_reference(p) for p in prune], concurrency=concurrency)
    return plan, execute(plan, concurrency=concurrency, fail_fast=fail_fast, check_mode=check_mode)


BASE = [b"base-layer" * 1000, b"runtime-layer" * 500]


def test_cold_copy_preserves_digest_and_counts(src, dst):
    digest = src.add_image("app", "1.0", BASE + [b"app-1.0"])
    _plan, result = run(src, dst, [job("src.example:5000/app:1.0", "dst.example:5000/app:1.0")])
    assert result.failed == []
    assert result.copied == ["dst.example:5000/app:1.0"]
    assert dst.tags["app"]["1.0"] == digest
    assert dst.manifests["app"][digest] == src.manifests["app"][digest]
    assert result.blobs_uploaded == 4          # config + 3 layers
    assert result.bytes_copied == sum(len(b) for b in src.blobs["app"].values())
    assert result.changed


def test_blobs_deduplicated_in_flight_one_upload_per_registry_then_mounts(src, dst):
    jobs = []
    for i in range(6):
        src.add_image("repo%d" % i, "v1", BASE + [b"own-%d" % i])
        jobs.append(job("src.example:5000/repo%d:v1" % i, "dst.example:5000/mirror/repo%d:v1" % i))
    _plan, result = run(src, dst, jobs)
    assert result.failed == []
    uploads = [e for e in dst.events if e[0] == "blob"]
    shared = [sha(b) for b in BASE] + [sha(b'{"architecture":"amd64","os":"linux"}')]
    for digest in shared:
        assert len([e for e in uploads if e[2] == digest]) == 1, "shared blob uploaded more than once"
    assert result.blobs_uploaded == 3 + 6
    assert result.blobs_mounted == 3 * 5
    for i in range(6):
        assert set(dst.blobs["mirror/repo%d" % i]) == set(src.blobs["repo%d" % i])


def test_same_blob_twice_in_one_repo_is_one_task(src, dst):
    src.add_image("app", "a", BASE)
    src.add_image("app", "b", BASE + [b"more"])
    _plan, result = run(src, dst, [job("src.example:5000/app:a", "dst.example:5000/app:a"),
                                   job("src.example:5000/app:b", "dst.example:5000/app:b")])
    assert result.failed == []
    # config, 2 base, "more": one task each; small blobs in a repository without tags are not HEADed
    assert len([c for c in dst.calls if c[0] == "blob_upload"]) == 4
    assert not [c for c in dst.calls if c[0] == "blob_head"]
    assert result.blobs_uploaded == 4


def test_a_repository_with_tags_gets_a_head_per_blob_and_present_blobs_are_skipped(src, dst):
    src.add_image("app", "a", BASE)
    src.add_image("app", "b", BASE + [b"more"])
    run(src, dst, [job("src.example:5000/app:a", "dst.example:5000/app:a")])
    dst.calls.clear()
    _plan, result = run(src, dst, [job("src.example:5000/app:b", "dst.example:5000/app:b")])
    assert result.failed == [] and result.copied == ["dst.example:5000/app:b"]
    assert len([c for c in dst.calls if c[0] == "blob_head"]) == 4
    assert result.blobs_skipped == 3 and result.blobs_uploaded == 1


def test_a_large_blob_is_headed_even_in_a_repository_without_tags(src, dst, monkeypatch):
    # an interrupted cold copy leaves blobs in a repository that has no tag yet: the re-run
    # must not send a large one again
    monkeypatch.setattr(_copy, "HEADLESS_BLOB_LIMIT", 9000)     # BASE[0] is 10000 bytes, the rest less
    src.add_image("app", "1", BASE)
    big = sha(BASE[0])
    dst.blobs["app"] = {big: BASE[0]}
    _plan, result = run(src, dst, [job("src.example:5000/app:1", "dst.example:5000/app:1")])
    assert result.failed == []
    assert [c for c in dst.calls if c[0] == "blob_head"] == [("blob_head", "app", big)]
    assert result.blobs_skipped == 1 and result.blobs_uploaded == 2


def test_mounts_are_asked_first_without_a_head(src, dst):
    src.add_image("one", "v1", BASE)
    src.add_image("two", "v1", BASE)
    dst.add_image("two", "old", [b"something else"])     # "two" has tags: not a fresh repository
    _plan, result = run(src, dst, [job("src.example:5000/one:v1", "dst.example:5000/one:v1"),
                                   job("src.example:5000/two:v1", "dst.example:5000/two:v1")], concurrency=1)
    assert result.failed == []
    assert result.blobs_uploaded == 3 and result.blobs_mounted == 3
    mounted = [c[2] for c in dst.calls if c[0] == "blob_mount"]
    headed = [c[2] for c in dst.calls if c[0] == "blob_head" and c[1] == "two"]
    assert not set(mounted) & set(headed)


def test_mount_refused_falls_back_to_upload(src, dst):
    dst.mount_allowed = False
    src.add_image("one", "v1", BASE)
    src.add_image("two", "v1", BASE)
    _plan, result = run(src, dst, [job("src.example:5000/one:v1", "dst.example:5000/one:v1"),
                                   job("src.example:5000/two:v1", "dst.example:5000/two:v1")])
    assert result.failed == []
    assert result.blobs_mounted == 0 and result.blobs_uploaded == 6
    assert any(c[0] == "blob_mount" for c in dst.calls)
    assert dst.tags["two"]["v1"] == src.tags["two"]["v1"]


def test_same_registry_copy_mounts_from_source_repository(src):
    src.add_image("app", "1.0", BASE)
    _plan, result = run(src, src, [job("src.example:5000/app:1.0", "src.example:5000/copy:1.0")])
    assert result.blobs_mounted == 3 and result.blobs_uploaded == 0
    assert src.tags["copy"]["1.0"] == src.tags["app"]["1.0"]


def test_order_blobs_then_children_then_index_and_tag_last(src, dst):
    index = src.add_index("multi", "latest", [("linux", "amd64"), ("linux", "arm64")])
    _plan, result = run(src, dst, [job("src.example:5000/multi:latest", "dst.example:5000/multi:latest")])
    assert result.failed == []
    assert dst.tags["multi"]["latest"] == index
    events = dst.events
    assert events[-1] == ("manifest", "multi", "latest")
    child_puts = [i for i, e in enumerate(events) if e[0] == "manifest" and e[2].startswith("sha256:")]
    blob_writes = [i for i, e in enumerate(events) if e[0] in ("blob", "mount")]
    assert len(child_puts) == 2
    assert max(blob_writes) < max(child_puts) < len(events) - 1
    # the index is byte-exact, so its digest is the source's
    assert dst.manifests["multi"][index][1] == src.manifests["multi"][index][1]


def test_interrupted_run_leaves_no_tag_and_rerun_finishes(src, dst, monkeypatch):
    monkeypatch.setattr(_copy, "BLOB_RETRY_BASE", 0)
    # every blob counts as large here, so the re-run HEADs them all (small ones in a repository
    # without tags are sent again without asking: test_a_large_blob_is_headed_...)
    monkeypatch.setattr(_copy, "HEADLESS_BLOB_LIMIT", 0)
    digest = src.add_image("app", "1.0", BASE + [b"big" * 1000])
    last = sha(b"big" * 1000)
    dst.fail_upload[last] = 99       # the destination keeps failing this blob
    _plan, result = run(src, dst, [job("src.example:5000/app:1.0", "dst.example:5000/app:1.0")])
    assert [f["reference"] for f in result.failed] == ["dst.example:5000/app:1.0"]
    assert result.failed[0]["error_kind"] == "server_error"
    assert "app" not in dst.tags            # no tag on a half-pushed image
    assert not dst.manifests.get("app")
    dst.fail_upload.clear()
    dst.events.clear()
    _plan, result = run(src, dst, [job("src.example:5000/app:1.0", "dst.example:5000/app:1.0")])
    assert result.failed == [] and result.copied == ["dst.example:5000/app:1.0"]
    assert dst.tags["app"]["1.0"] == digest
    assert result.blobs_skipped == 3 and result.blobs_uploaded == 1


def test_transient_upload_failures_are_retried_with_a_fresh_stream(src, dst, monkeypatch):
    monkeypatch.setattr(_copy, "BLOB_RETRY_BASE", 0)
    src.add_image("app", "1.0", BASE)
    dst.fail_upload[sha(BASE[0])] = _copy.BLOB_ATTEMPTS - 1
    _plan, result = run(src, dst, [job("src.example:5000/app:1.0", "dst.example:5000/app:1.0")])
    assert result.failed == []
    assert len([c for c in src.calls if c[0] == "blob_open" and c[2] == sha(BASE[0])]) == _copy.BLOB_ATTEMPTS


def test_cut_source_body_never_completes_and_is_retried(src, dst, monkeypatch):
    monkeypatch.setattr(_copy, "BLOB_RETRY_BASE", 0)
    src.add_image("app", "1.0", BASE)
    src.cut_bodies[sha(BASE[0])] = 1          # the first download ends halfway, as the fault proxy does
    stats = RetryStats()
    plan = plan_copies([job("src.example:5000/app:1.0", "dst.example:5000/app:1.0")],
                       lambda r: src.client(), lambda r: dst.client())
    result = execute(plan, retry_stats=stats)
    assert result.failed == []
    assert len([c for c in src.calls if c[0] == "blob_open" and c[2] == sha(BASE[0])]) == 2
    assert dst.blobs["app"][sha(BASE[0])] == BASE[0]
    # the engine's own fresh start of the blob is a retry the module reports
    assert stats.as_dict()["count"] == 1 and stats.as_dict()["network_errors"] == 1


def test_corrupt_source_body_is_a_digest_mismatch_and_nothing_is_committed(src, dst):
    src.add_image("app", "1.0", BASE)
    src.blobs["app"][sha(BASE[1])] = b"x" * len(BASE[1])        # bytes that do not match
    _plan, result = run(src, dst, [job("src.example:5000/app:1.0", "dst.example:5000/app:1.0")])
    assert [f["error_kind"] for f in result.failed] == ["digest_mismatch"]
    assert sha(BASE[1]) not in dst.blobs.get("app", {})
    assert "app" not in dst.tags


def test_failure_of_one_image_does_not_stop_the_others(src, dst):
    for name in ("a", "b", "c"):
        src.add_image(name, "v1", [b"layer-" + name.encode()])
    src.fail_manifest_get[("b", "v1")] = ServerError("boom")
    src.fail_manifest_get[("b", src.tags["b"]["v1"])] = ServerError("boom")
    jobs = [job("src.example:5000/%s:v1" % n, "dst.example:5000/%s:v1" % n) for n in "abc"]
    _plan, result = run(src, dst, jobs)
    assert sorted(result.copied) == ["dst.example:5000/a:v1", "dst.example:5000/c:v1"]
    assert result.failed == [{"reference": "dst.example:5000/b:v1", "source": "src.example:5000/b:v1",
                              "error": "boom", "error_kind": "server_error"}]


def test_a_schema1_manifest_fetched_while_planning_fails_only_its_image(src, dst):
    # a cold repository: the plan fetches the manifests of every tag after the first, so the
    # schema 1 manifest reaches the engine already fetched, and must fail that image alone
    src.add_image("a", "v1", [b"layer-1"])
    raw = json.dumps({"schemaVersion": 1, "name": "a", "tag": "v2", "fsLayers": [], "history": []}).encode()
    src.manifests["a"][sha(raw)] = ("application/vnd.docker.distribution.manifest.v1+json", raw)
    src.tags["a"]["v2"] = sha(raw)
    src.add_image("a", "v3", [b"layer-3"])
    jobs = [job("src.example:5000/a:%s" % t, "dst.example:5000/a:%s" % t) for t in ("v1", "v2", "v3")]
    plan, result = run(src, dst, jobs)
    assert plan.copies[1].manifest is not None, "the test needs the plan to have fetched v2"
    assert sorted(result.copied) == ["dst.example:5000/a:v1", "dst.example:5000/a:v3"]
    assert [(f["reference"], f["error_kind"]) for f in result.failed] == [("dst.example:5000/a:v2", "unsupported")]
    assert "v2" not in dst.tags["a"]


def test_missing_source_is_reported_per_image(src, dst):
    src.add_image("a", "v1", [b"x"])
    _plan, result = run(src, dst, [job("src.example:5000/a:v1", "dst.example:5000/a:v1"),
                                   job("src.example:5000/a:nope", "dst.example:5000/a:nope")])
    assert result.copied == ["dst.example:5000/a:v1"]
    assert result.failed[0]["reference"] == "dst.example:5000/a:nope"
    assert result.failed[0]["error_kind"] == "not_found"


def test_fail_fast_stops_before_writing_when_planning_failed(src, dst):
    src.add_image("a", "v1", [b"x"])
    _plan, result = run(src, dst, [job("src.example:5000/a:v1", "dst.example:5000/a:v1"),
                                   job("src.example:5000/a:nope", "dst.example:5000/a:nope")], fail_fast=True)
    assert result.copied == []
    assert dst.writes() == []


def test_fail_fast_cancels_what_has_not_started(src, dst):
    names = ["r%02d" % i for i in range(12)]
    for n in names:
        src.add_image(n, "v1", [b"layer-" + n.encode()])
    src.fail_manifest_get[("r00", src.tags["r00"]["v1"])] = ServerError("boom")
    jobs = [job("src.example:5000/%s:v1" % n, "dst.example:5000/%s:v1" % n) for n in names]
    _plan, result = run(src, dst, jobs, fail_fast=True, concurrency=1)
    kinds = {f["reference"]: f["error_kind"] for f in result.failed}
    assert kinds["dst.example:5000/r00:v1"] == "server_error"
    assert len(result.copied) < len(names) - 1
    assert len(result.copied) + len(result.failed) == len(names)
    assert set(kinds.values()) == {"server_error", "cancelled"}


def test_check_mode_plans_and_writes_nothing(src, dst):
    src.add_image("a", "v1", BASE)
    src.add_image("a", "v2", BASE + [b"2"])
    run(src, dst, [job("src.example:5000/a:v1", "dst.example:5000/a:v1")])
    dst.add_image("a", "old", [b"old"])
    dst.events.clear()
    plan, result = run(src, dst, [job("src.example:5000/a:v1", "dst.example:5000/a:v1"),
                                  job("src.example:5000/a:v2", "dst.example:5000/a:v2")],
                       check_mode=True, prune=["dst.example:5000/a:old"])
    assert result.copied == ["dst.example:5000/a:v2"]
    assert result.skipped == ["dst.example:5000/a:v1"]
    assert result.pruned == ["dst.example:5000/a:old"]
    assert dst.events == []
    assert "v2" not in dst.tags["a"] and "old" in dst.tags["a"]


def test_prune_deletes_only_candidates_and_keeps_shared_digests(src, dst):
    keep = src.add_image("a", "v1", BASE)
    run(src, dst, [job("src.example:5000/a:v1", "dst.example:5000/a:v1")])
    dst.tags["a"]["alias-of-v1"] = keep           # same manifest as a selected tag
    gone = dst.add_image("a", "old", [b"old"])
    plan, result = run(src, dst, [job("src.example:5000/a:v1", "dst.example:5000/a:v1")],
                       prune=["dst.example:5000/a:old", "dst.example:5000/a:alias-of-v1", "dst.example:5000/a:missing"])
    assert [p.action for p in plan.prunes] == ["prune", "keep", "gone"]
    assert result.pruned == ["dst.example:5000/a:old"]
    assert gone not in dst.manifests["a"]
    assert dst.tags["a"]["v1"] == keep


def test_new_tag_on_existing_image_copies_no_blob(src, dst):
    digest = src.add_image("a", "v1", BASE)
    run(src, dst, [job("src.example:5000/a:v1", "dst.example:5000/a:v1")])
    src.tags["a"]["stable"] = digest
    dst.calls.clear()
    _plan, result = run(src, dst, [job("src.example:5000/a:stable", "dst.example:5000/a:stable")])
    assert result.copied == ["dst.example:5000/a:stable"]
    assert not [c for c in dst.calls if c[0].startswith("blob")]
    assert dst.tags["a"]["stable"] == digest


def test_copy_by_digest_puts_by_digest(src, dst):
    digest = src.add_image("a", "v1", BASE)
    _plan, result = run(src, dst, [job("src.example:5000/a@" + digest, "dst.example:5000/a@" + digest)])
    assert result.failed == []
    assert digest in dst.manifests["a"] and "a" not in dst.tags


def test_retag_puts_same_bytes_under_new_tags(dst):
    digest = dst.add_image("a", "v1", BASE)
    client = dst.client()
    assert retag(client, "a", digest, ["v1", "stable"], check_mode=True) == ["stable"]
    assert "stable" not in dst.tags["a"]
    assert retag(client, "a", digest, ["v1", "stable"]) == ["stable"]
    assert dst.tags["a"]["stable"] == digest
    assert retag(client, "a", digest, ["v1", "stable"]) == []
