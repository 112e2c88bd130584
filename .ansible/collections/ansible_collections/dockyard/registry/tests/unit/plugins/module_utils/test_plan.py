# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Planning: registry_sync's repositories turned into jobs and prune candidates, and the plan
made from HEADs alone, against the in-memory registry of fake_registry."""

from __future__ import annotations

import json

import pytest

from ansible_collections.dockyard.registry.plugins.module_utils._copy import execute
from ansible_collections.dockyard.registry.plugins.module_utils._errors import Denied, InvalidInput
from ansible_collections.dockyard.registry.plugins.module_utils._plan import (
    CopyJob,
    normalise_platforms,
    normalise_repositories,
    plan_copies,
    select_sync,
)
from ansible_collections.dockyard.registry.plugins.module_utils._reference import parse_reference, parse_registry
from ansible_collections.dockyard.registry.tests.unit.plugins.module_utils.fake_registry import FakeRegistry

BASE = [b"base-layer" * 1000, b"runtime-layer" * 500]


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


def test_equal_digest_is_skipped_from_heads_alone(src, dst):
    src.add_image("app", "1.0", BASE)
    run(src, dst, [job("src.example:5000/app:1.0", "dst.example:5000/app:1.0")])
    src.calls.clear()
    dst.calls.clear()
    dst.events.clear()
    plan, result = run(src, dst, [job("src.example:5000/app:1.0", "dst.example:5000/app:1.0")])
    assert result.skipped == ["dst.example:5000/app:1.0"] and result.copied == []
    assert not result.changed
    assert {c[0] for c in src.calls} == {"manifest_head"}
    assert {c[0] for c in dst.calls} == {"manifest_head"}
    assert dst.events == []


def test_platform_subset_writes_a_new_stable_index(src, dst):
    src.add_index("multi", "latest", [("linux", "amd64"), ("linux", "arm64"), ("linux", "s390x")])
    plan, result = run(src, dst, [job("src.example:5000/multi:latest", "dst.example:5000/multi:latest")],
                       platforms=["linux/arm64"])
    assert result.failed == []
    new = json.loads(dst.manifests["multi"][dst.tags["multi"]["latest"]][1])
    assert [m["platform"]["architecture"] for m in new["manifests"]] == ["arm64"]
    assert len(dst.manifests["multi"]) == 2           # the index + one child
    # a re-run computes the same filtered digest and skips
    _plan, again = run(src, dst, [job("src.example:5000/multi:latest", "dst.example:5000/multi:latest")],
                       platforms=["linux/arm64"])
    assert again.skipped == ["dst.example:5000/multi:latest"]


def test_a_platform_subset_of_a_single_image_copies_it_as_it_is(src, dst):
    digest = src.add_image("app", "1.0", BASE)
    plan, result = run(src, dst, [job("src.example:5000/app:1.0", "dst.example:5000/app:1.0")],
                       platforms=["linux/arm64"])
    assert plan.copies[0].source_digest == digest and plan.copies[0].manifest is None
    assert dst.tags["app"]["1.0"] == digest


def test_prepare_destination_is_called_once_per_repository_and_can_refuse(src, dst):
    src.add_image("app", "1.0", BASE)
    src.add_image("app", "2.0", BASE + [b"two"])
    src.add_image("tool", "1", BASE)
    prepared = []

    def prepare(registry, repository):
        prepared.append((registry.host, repository))
        if repository == "tool":
            raise Denied("the account may not create repository tool", registry=registry.host)

    jobs = [job("src.example:5000/app:1.0", "dst.example:5000/app:1.0"),
            job("src.example:5000/app:2.0", "dst.example:5000/app:2.0"),
            job("src.example:5000/tool:1", "dst.example:5000/tool:1")]
    plan = plan_copies(jobs, lambda r: src.client(), lambda r: dst.client(), prepare_destination=prepare)
    assert prepared == [("dst.example:5000", "app"), ("dst.example:5000", "tool")]
    assert [p.action for p in plan.copies] == ["copy", "copy", "fail"]
    assert plan.copies[2].error.kind == "denied"
    assert not [c for c in dst.calls if c[1] == "tool"]     # nothing asked of a refused repository


@pytest.mark.parametrize("value, expected", [
    (None, "all"), ("all", "all"), (["all"], "all"), (["linux/amd64", "all"], "all"),
    (["linux/amd64", "linux/arm64/v8"], ["linux/amd64", "linux/arm64/v8"]),
])
def test_normalise_platforms(value, expected):
    assert normalise_platforms(value) == expected


def test_normalise_platforms_rejects_a_bad_one():
    with pytest.raises(InvalidInput, match="os/arch"):
        normalise_platforms(["amd64"])


# --- registry_sync's selection ---------------------------------------------------------------------

SRC = parse_registry("src.example:5000")
DST = parse_registry("dst.example:5000")


@pytest.mark.parametrize("item, message", [
    ({"name": "team/app", "tag": "1"}, "unknown keys tag"),
    ({"tags": ["1"]}, "needs a name"),
    ({"name": "Team/App"}, "lower"),
    ({"name": "team/app", "tag_regex": "("}, "regular expression"),
    ({"name": "team/app", "semver": ">=abc"}, "invalid version"),
    ({"name": "team/app", "latest": "many"}, "integer"),
    ({"name": "team/app", "latest": 0}, "latest must be 1 or more"),
    ({"name": "team/app", "tags": "1.0"}, "must be a list"),
    (42, "must be a repository name or a dictionary"),
])
def test_bad_repository_items(item, message):
    with pytest.raises(InvalidInput, match=message) as info:
        normalise_repositories([item], None)
    assert "repositories[0]" in str(info.value)


def test_repositories_get_the_prefix_and_their_destination_name():
    entries = normalise_repositories(["team/app", {"name": "team/tool", "destination": "tools/x", "latest": "2"}],
                                     "/mirror/")
    assert [(e.name, e.destination, e.tags) for e in entries] == [
        ("team/app", "mirror/team/app", None), ("team/tool", "mirror/tools/x", None)]
    assert entries[1].filter.latest == 2


def test_select_sync_lists_filters_and_finds_prune_candidates(src, dst):
    for tag in ("1.0", "1.1", "2.0", "latest"):
        src.add_image("team/app", tag, BASE + [tag.encode()])
    dst.add_image("team/app", "0.9", BASE)
    dst.add_image("team/app", "1.0", BASE)
    entries = normalise_repositories([{"name": "team/app", "semver": "<2"}, "team/nope"], None)
    selection = select_sync(entries, src.client(), dst.client(), SRC, DST, prune=True)
    assert [str(j.destination) for j in selection.jobs] == [
        "dst.example:5000/team/app:1.0", "dst.example:5000/team/app:1.1"]
    assert [str(r) for r in selection.prune] == ["dst.example:5000/team/app:0.9"]
    assert [(f["reference"], f["error_kind"]) for f in selection.failures] == [
        ("src.example:5000/team/nope", "not_found")]


def test_select_sync_with_explicit_tags_lists_nothing(src, dst):
    entries = normalise_repositories([{"name": "team/app", "tags": ["1.0", "2.0"]}], None)
    selection = select_sync(entries, src.client(), dst.client(), SRC, DST)
    assert [str(j.source) for j in selection.jobs] == ["src.example:5000/team/app:1.0", "src.example:5000/team/app:2.0"]
    assert src.calls == [] and dst.calls == []


def test_two_sources_into_one_destination_is_refused(src, dst):
    entries = normalise_repositories([{"name": "team/app", "tags": ["1.0"], "destination": "x"},
                                      {"name": "team/tool", "tags": ["1.0"], "destination": "x"}], None)
    with pytest.raises(InvalidInput, match="would receive both"):
        select_sync(entries, src.client(), dst.client(), SRC, DST)


def test_a_cold_repository_is_listed_once_instead_of_a_head_per_tag(src, dst):
    for tag in ("1", "2", "3", "4"):
        src.add_image("app", tag, BASE + [tag.encode()])
    jobs = [job("src.example:5000/app:%s" % t, "dst.example:5000/app:%s" % t) for t in ("1", "2", "3", "4")]
    plan, result = run(src, dst, jobs, check_mode=True)
    assert [p.action for p in plan.copies] == ["copy"] * 4
    assert [p.source_digest for p in plan.copies] == [src.tags["app"][t] for t in ("1", "2", "3", "4")]
    assert [c for c in dst.calls if c[0] == "manifest_head"] == [("manifest_head", "app", "1")]
    assert [c for c in dst.calls if c[0] == "tags"] == [("tags", "app", None)]
    # the absent tags' source manifests are fetched once, in the plan (no HEAD then GET)
    assert sorted(c[2] for c in src.calls if c[0] == "manifest_get") == ["2", "3", "4"]
    assert all(p.manifest is not None for p in plan.copies[1:])
    assert plan.fresh == {(("https", "dst.example:5000"), "app")}
    assert len(result.copied) == 4


def test_a_no_op_run_lists_nothing(src, dst):
    for tag in ("1", "2", "3"):
        src.add_image("app", tag, BASE + [tag.encode()])
    jobs = [job("src.example:5000/app:%s" % t, "dst.example:5000/app:%s" % t) for t in ("1", "2", "3")]
    run(src, dst, jobs)
    dst.calls.clear()
    plan, result = run(src, dst, jobs)
    assert len(result.skipped) == 3 and not result.changed
    assert {c[0] for c in dst.calls} == {"manifest_head"}
    assert plan.fresh == set()


def test_a_repository_with_other_tags_is_not_fresh_and_copies_only_what_is_missing(src, dst):
    for tag in ("1", "2", "3"):
        src.add_image("app", tag, BASE + [tag.encode()])
    run(src, dst, [job("src.example:5000/app:2", "dst.example:5000/app:2")])
    jobs = [job("src.example:5000/app:%s" % t, "dst.example:5000/app:%s" % t) for t in ("1", "2", "3")]
    dst.calls.clear()
    plan, result = run(src, dst, jobs)
    assert [p.action for p in plan.copies] == ["copy", "skip", "copy"]
    assert plan.fresh == set()
    assert sorted(result.copied) == ["dst.example:5000/app:1", "dst.example:5000/app:3"]
    assert dst.tags["app"] == src.tags["app"]
    # "1" was HEADed, then the list said "3" is missing and "2" is there (HEADed for its digest)
    assert sorted(c[2] for c in dst.calls if c[0] == "manifest_head" and not c[2].startswith("sha256:")) == ["1", "2"]
