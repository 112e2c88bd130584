# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""registry_prune: the rules (validation and the pure decision), and the backend's plan, cap,
failures and deletions against the in-memory registry (the real registries are exercised by the
module_registry_prune integration target)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.dockyard.registry.plugins.module_utils import _prune
from ansible_collections.dockyard.registry.plugins.module_utils._errors import (
    InvalidInput,
    NotFound,
    ServerError,
)
from ansible_collections.dockyard.registry.plugins.module_utils._prune import (
    ImageFacts,
    RegistryPrune,
    Rules,
    decide,
    parse_duration,
    parse_max_delete,
)
from ansible_collections.dockyard.registry.plugins.modules import registry_prune
from ansible_collections.dockyard.registry.tests.unit.plugins.module_utils.fake_registry import FakeRegistry

DAY = 86400.0
NOW = 1_800_000_000.0
HOST = "reg.example:5000"


def digest(n):
    return "sha256:%064x" % n


def rules(**values):
    return Rules(values)


# ---- validation ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [
    ("30d", 30 * DAY), ("12h", 12 * 3600.0), ("2w", 14 * DAY), ("1d12h", 1.5 * DAY), ("90m", 5400.0),
    ("3600s", 3600.0), (" 7D ", 7 * DAY),
])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["30x", "30", "d", "", "-1d", "0d", "1.5d", None, "30 days"])
def test_bad_durations_name_the_option(text):
    with pytest.raises(InvalidInput, match="older_than"):
        parse_duration(text)


@pytest.mark.parametrize("value, parsed", [("10", (10, None)), (3, (3, None)), ("50%", (None, 50.0)),
                                           ("100%", (None, 100.0)), ("12.5 %", (None, 12.5))])
def test_max_delete(value, parsed):
    assert parse_max_delete(value) == parsed


@pytest.mark.parametrize("value", ["0", "-1", "0%", "101%", "half", "", True])
def test_bad_max_delete(value):
    with pytest.raises(InvalidInput, match="max_delete"):
        parse_max_delete(value)


@pytest.mark.parametrize("values, message", [
    (dict(keep_latest=0), "keep_latest must be 1 or more"),
    (dict(keep_latest=-3), "keep_latest must be 1 or more"),
    (dict(keep_latest="many"), "keep_latest must be a whole number"),
    (dict(keep_latest=2, order="date"), "order must be one of semver, created, name"),
    (dict(delete_regex="(unclosed"), "invalid regular expression in delete_regex"),
    (dict(keep_latest=1, keep_regex="[a-"), "invalid regular expression in keep_regex"),
    (dict(older_than="30x"), "older_than must be a duration"),
    (dict(keep_latest=1, keep_digests=["sha256:abc"]), "keep_digests: invalid digest"),
    (dict(keep_regex="^v"), "no rule selects anything to delete"),
    (dict(keep_latest=1, max_delete="0"), "max_delete must be 1 or more"),
])
def test_bad_rules(values, message):
    with pytest.raises(InvalidInput, match=message):
        Rules(values)


def test_errors_name_the_repository_item():
    with pytest.raises(InvalidInput, match=r"repositories\[1\] \(team/b\)\.older_than"):
        _prune.normalise_repositories(["team/a", {"name": "team/b", "older_than": "2x"}], {"keep_latest": 1})
    with pytest.raises(InvalidInput, match="unknown keys latest"):
        _prune.normalise_repositories([{"name": "a", "latest": 1}], {"keep_latest": 1})
    # a task-level rule is named as written, not after the first repository
    with pytest.raises(InvalidInput, match=r"^invalid regular expression in delete_regex"):
        _prune.normalise_repositories(["team/a"], {"delete_regex": "("})
    # a repository may complete the task's rules
    assert _prune.normalise_repositories([{"name": "a", "keep_latest": 3}], {"keep_regex": "^v"})[0][1].keep_latest == 3
    with pytest.raises(InvalidInput, match=r"repositories\[0\] \(a\): no rule selects"):
        _prune.normalise_repositories(["a"], {"keep_regex": "^v"})
    with pytest.raises(InvalidInput, match="listed twice"):
        _prune.normalise_repositories(["a", "a"], {"keep_latest": 1})


@pytest.mark.parametrize("total, text, allowed", [(10, "50%", 5), (3, "50%", 1), (1, "50%", 0), (7, "100%", 7),
                                                  (7, "3", 3)])
def test_limit(total, text, allowed):
    assert Rules(dict(keep_latest=1, max_delete=text)).limit(total) == allowed


# ---- the decision ------------------------------------------------------------------------------

def images_for(tags, created=None, children=None):
    created = created or {}
    children = children or {}
    images = {}
    for tag, dig in tags.items():
        stamp = created.get(tag)
        images[dig] = ImageFacts(dig, stamp, children.get(dig, ()), {dig: 100, "blob-" + dig: 1000})
    return images


def deleted(tags, r, created=None, children=None, now=NOW):
    decision = decide(tags, images_for(tags, created, children), r, now)
    return sorted(decision.delete), dict((k["tag"], k["rule"]) for k in decision.kept)


SEMVER = {"1.0.0": digest(1), "1.1.0": digest(2), "1.2.0": digest(3), "2.0.0-rc.1": digest(4),
          "2.0.0": digest(5), "latest": digest(5), "main": digest(6)}


def test_keep_latest_semver_keeps_unordered_tags_and_ranks_prereleases():
    gone, kept = deleted(SEMVER, rules(keep_latest=2))
    assert gone == ["1.0.0", "1.1.0", "1.2.0"]
    assert kept == {"2.0.0-rc.1": "keep_latest", "2.0.0": "keep_latest", "latest": "unordered", "main": "unordered"}


def test_keep_latest_counts_images_not_tags():
    tags = {"1.0": digest(1), "1.0.0": digest(1), "0.9": digest(2), "0.8": digest(3)}
    gone, kept = deleted(tags, rules(keep_latest=2))
    assert gone == ["0.8"]
    assert kept == {"1.0": "keep_latest", "1.0.0": "keep_latest", "0.9": "keep_latest"}


def test_keep_latest_by_created_and_by_name():
    tags = {"a": digest(1), "b": digest(2), "c": digest(3), "d": digest(4)}
    created = {"a": NOW - 1 * DAY, "b": NOW - 9 * DAY, "c": NOW - 3 * DAY}
    gone, kept = deleted(tags, rules(keep_latest=2, order="created"), created)
    assert gone == ["b"]
    assert kept == {"a": "keep_latest", "c": "keep_latest", "d": "unordered"}
    gone, _kept = deleted(tags, rules(keep_latest=1, order="name"), created)
    assert gone == ["a", "b", "c"]


def test_older_than_keeps_newer_and_undated_images():
    tags = {"old": digest(1), "new": digest(2), "undated": digest(3)}
    created = {"old": NOW - 40 * DAY, "new": NOW - 2 * DAY}
    gone, kept = deleted(tags, rules(older_than="30d"), created)
    assert gone == ["old"]
    assert kept == {"new": "newer", "undated": "undated"}
    gone, _kept = deleted(tags, rules(older_than="30d", delete_undated=True), created)
    assert gone == ["old", "undated"]


def test_delete_regex_keep_regex_keep_digests():
    tags = {"pr-1": digest(1), "pr-2": digest(2), "pr-3-keep": digest(3), "pr-4": digest(4), "1.0": digest(9)}
    gone, kept = deleted(tags, rules(delete_regex="^pr-", keep_regex="keep$", keep_digests=[digest(4)]))
    assert gone == ["pr-1", "pr-2"]
    assert kept == {"1.0": "not_selected", "pr-3-keep": "keep_regex", "pr-4": "keep_digests"}


def test_a_manifest_with_a_kept_tag_is_never_deleted():
    tags = {"pr-7": digest(1), "1.4.0": digest(1), "pr-8": digest(2)}
    decision = decide(tags, images_for(tags), rules(delete_regex="^pr-"), NOW)
    assert sorted(decision.delete) == ["pr-8"]
    assert decision.delete_digests == [digest(2)]
    assert [k for k in decision.kept if k["tag"] == "pr-7"][0]["rule"] == "shared"


def test_an_index_and_its_platforms():
    index, amd, arm = digest(10), digest(11), digest(12)
    tags = {"1.0": index, "1.0-amd64": amd, "0.9": digest(13)}
    children = {index: (amd, arm)}
    # the index stays (newest): its platform keeps its own tag even though the rules select it
    gone, kept = deleted(tags, rules(keep_latest=1, keep_regex="^0"), children=children)
    assert gone == []
    assert kept["1.0-amd64"] == "index_child"
    # the index goes: its platforms go with it (arm64 is untagged), the tagged platform too
    decision = decide(tags, images_for(tags, children=children), rules(delete_regex="^1"), NOW)
    assert sorted(decision.delete) == ["1.0", "1.0-amd64"]
    assert decision.delete_digests == [index, arm, amd]


def test_deleting_an_index_keeps_platforms_another_kept_index_uses():
    shared, own = digest(20), digest(21)
    tags = {"old": digest(30), "new": digest(31)}
    children = {digest(30): (shared, own), digest(31): (shared,)}
    decision = decide(tags, images_for(tags, children=children), rules(delete_regex="^old$"), NOW)
    assert decision.delete_digests == [digest(30), own]


# ---- the backend against the in-memory registry ------------------------------------------------

def config(created):
    data = {"architecture": "amd64", "os": "linux"}
    if created is not None:
        data["created"] = created
    return json.dumps(data).encode()


def iso(stamp):
    import time
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


def params(**overrides):
    values = dict((name, spec.get("default")) for name, spec in registry_prune.argument_spec().items())
    values.update(registry=HOST)
    values.update(overrides)
    return values


@pytest.fixture
def registry(monkeypatch):
    fake = FakeRegistry(HOST)
    fake.clients = []

    def fake_client(_params, _registry, prefix="", retry_stats=None):
        client = fake.client()
        fake.clients.append(client)
        if getattr(fake, "tags_failure", None):
            client.fail_tags = {fake.tags_failure[0]: fake.tags_failure[1]}
            client.fail_tags_after = fake.tags_failure[2]
        return client

    monkeypatch.setattr(_prune, "client_from_params", fake_client)
    for n, tag in enumerate(["1.0.0", "1.1.0", "1.2.0", "1.3.0", "2.0.0"]):
        fake.add_image("team/app", tag, [b"base" * 100, b"own-%d" % n], config=config(iso(NOW - (50 - n) * DAY)))
    fake.tags["team/app"]["stable"] = fake.tags["team/app"]["1.1.0"]
    fake.add_image("team/tool", "1", [b"tool"], config=config(None))
    return fake


def run(check_mode=False, diff=False, **overrides):
    return RegistryPrune(params(**overrides), check_mode=check_mode, diff=diff, clock=lambda: NOW).run()


def test_check_mode_is_the_plan_and_deletes_nothing(registry):
    result = run(check_mode=True, diff=True, repositories=["team/app"], keep_latest=2, max_delete="3")
    assert result["changed"] is True
    assert result["deleted_tags"] == ["team/app:1.0.0", "team/app:1.2.0"]
    # 1.1.0 would go, but "stable" (not a version, so kept) is on the same manifest
    assert result["kept_by_sharing"] == ["team/app:1.1.0"]
    repo = result["repositories"][0]
    kept = dict((k["tag"], k["rule"]) for k in repo["kept"])
    assert kept == {"1.1.0": "shared", "1.3.0": "keep_latest", "2.0.0": "keep_latest", "stable": "unordered"}
    assert repo["status"] == "planned" and repo["deleted_digests"] == []
    # the two own layers, two configs and two manifests; the shared base stays
    assert result["bytes_unreferenced"] == repo["bytes_unreferenced"] > 0
    assert result["diff"]["after"] == {"team/app": ["1.1.0", "1.3.0", "2.0.0", "stable"]}
    assert [e for e in registry.events if e[0] == "delete"] == []


def test_real_run_deletes_by_digest_and_a_second_run_changes_nothing(registry):
    before = dict(registry.tags["team/app"])
    result = run(repositories=["team/app"], keep_latest=2, keep_regex="^stable$", max_delete="3")
    assert result["changed"] is True
    assert result["deleted_tags"] == ["team/app:1.0.0", "team/app:1.2.0"]
    # 1.1.0 carries the kept tag stable: kept by sharing, not deleted
    assert result["kept_by_sharing"] == ["team/app:1.1.0"]
    assert sorted(registry.tags["team/app"]) == ["1.1.0", "1.3.0", "2.0.0", "stable"]
    assert sorted(e[2] for e in registry.events if e[0] == "delete") == sorted([before["1.0.0"], before["1.2.0"]])
    again = run(repositories=["team/app"], keep_latest=2, keep_regex="^stable$", max_delete="3")
    assert again["changed"] is False and again["deleted_tags"] == []


def test_the_cap_refuses_everything_and_force_passes_it(registry):
    result = run(include=["."], older_than="30d")
    assert result["failed"] is True and result["error_kind"] == "refused"
    assert "team/app: 6 of 6 tags (100%), max_delete 50% allows 3" in result["msg"]
    assert "Nothing was deleted" in result["msg"]
    assert [r["status"] for r in result["repositories"]] == ["refused", "unchanged"]
    assert [e for e in registry.events if e[0] == "delete"] == []
    # the undated team/tool image is kept and said so
    tool = [r for r in result["repositories"] if r["name"] == "team/tool"][0]
    assert tool["kept"][0]["rule"] == "undated" and tool["status"] == "unchanged"
    forced = run(include=["."], older_than="30d", force=True)
    assert "failed" not in forced
    assert registry.tags["team/app"] == {} and list(registry.tags["team/tool"]) == ["1"]


def test_catalog_include_exclude(registry):
    result = run(check_mode=True, include=["^team/"], exclude=["tool"], keep_latest=1, force=True)
    assert [r["name"] for r in result["repositories"]] == ["team/app"]


def test_a_missing_repository_fails_before_anything_is_deleted(registry):
    with pytest.raises(NotFound, match="team/nope does not exist.*nothing was deleted"):
        run(repositories=["team/app", "team/nope"], keep_latest=1, force=True)
    assert [e for e in registry.events if e[0] == "delete"] == []


def test_a_listing_error_spares_that_repository(registry):
    registry.tags_failure = ("team/app", ServerError("503 on tags/list"), 0)
    result = run(include=["."], keep_latest=1, force=True)
    assert result["failed"] is True and result["error_kind"] == "server_error"
    assert result["failed_repositories"] == [{"name": "team/app", "error": "503 on tags/list",
                                              "error_kind": "server_error"}]
    assert len(registry.tags["team/app"]) == 6
    assert "team/app" in result["msg"] and "nothing was deleted" in result["msg"]


def test_a_failure_on_the_second_listing_spares_the_repository(registry):
    # planned from the first listing; the one just before deleting fails
    registry.tags_failure = ("team/app", ServerError("connection cut"), 1)
    result = run(repositories=["team/app"], keep_latest=1, force=True)
    assert result["failed"] is True
    assert len(registry.tags["team/app"]) == 6
    assert result["deleted_tags"] == [] and result["changed"] is False


def test_a_tag_pushed_while_planning_spares_the_repository(registry, monkeypatch):
    original = _prune.plan_repository

    def plan_then_push(client, name, rules, now, concurrency=4):
        plan = original(client, name, rules, now, concurrency)
        registry.add_image(name, "9.9.9", [b"late"])
        return plan

    monkeypatch.setattr(_prune, "plan_repository", plan_then_push)
    result = run(repositories=["team/app"], keep_latest=1, force=True)
    assert result["failed_repositories"][0]["error_kind"] == "concurrent_change"
    assert "added: 9.9.9" in result["failed_repositories"][0]["error"]
    assert len(registry.tags["team/app"]) == 7


def test_index_deleted_with_its_untagged_platforms(registry):
    index = registry.add_index("team/multi", "1.0", [("linux", "amd64"), ("linux", "arm64")])
    registry.add_image("team/multi", "2.0", [b"two"])
    children = [json.loads(raw)["manifests"] for mt, raw in [registry.manifests["team/multi"][index]]][0]
    result = run(repositories=[{"name": "team/multi", "keep_latest": 1, "max_delete": "100%"}])
    assert result["deleted_digests"] == ["team/multi@" + d for d in [index] + [c["digest"] for c in children]]
    assert set(registry.manifests["team/multi"]) == set([registry.tags["team/multi"]["2.0"]])
