# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""registry_sync's selection, prune and result shape, against the in-memory registry of
test_copy (the real registries are exercised by the module_registry_sync integration target)."""

from __future__ import annotations

import pytest

from ansible_collections.dockyard.registry.plugins.module_utils import _sync
from ansible_collections.dockyard.registry.plugins.module_utils._errors import InvalidInput
from ansible_collections.dockyard.registry.plugins.modules import registry_sync
from ansible_collections.dockyard.registry.tests.unit.plugins.module_utils.fake_registry import FakeRegistry

SRC = "src.example:5000"
DST = "dst.example:5000"


def params(**overrides):
    values = dict((name, spec.get("default")) for name, spec in registry_sync.argument_spec().items())
    values.update(source_registry=SRC, destination_registry=DST)
    values.update(overrides)
    return values


@pytest.fixture
def registries(monkeypatch):
    src, dst = FakeRegistry(SRC), FakeRegistry(DST)
    by_host = {SRC: src, DST: dst}

    def fake_client(_params, registry, prefix="", retry_stats=None):
        return by_host[registry.host].client()

    monkeypatch.setattr(_sync, "client_from_params", fake_client)
    return src, dst


def seed(src):
    digests = {}
    for i, tag in enumerate(["1.0", "1.1", "v1.2.0", "2.0", "latest", "1.1-debug"]):
        digests[tag] = src.add_image("team/app", tag, [b"base" * 100, b"own-%d" % i])
    src.add_image("team/tool", "3", [b"base" * 100])
    return digests


def test_selection_prefix_and_destination_name(registries):
    src, dst = registries
    seed(src)
    result = _sync.RegistrySync(params(
        destination_prefix="mirror",
        repositories=[{"name": "team/app", "semver": ">=1.1 <2", "exclude_regex": "debug", "destination": "app"},
                      "team/tool"])).run()
    assert result["changed"] is True
    assert sorted(result["copied"]) == [DST + "/mirror/app:1.1", DST + "/mirror/app:v1.2.0", DST + "/mirror/team/tool:3"]
    assert sorted(dst.tags["mirror/app"]) == ["1.1", "v1.2.0"]
    assert result["failed_images"] == [] and result["skipped_images"] == []
    assert result["blobs_mounted"] >= 1          # the shared base layer went into the second repository by mount
    assert "failed" not in result and "skipped" not in result


def test_rerun_is_a_noop_and_check_mode_writes_nothing(registries):
    src, dst = registries
    seed(src)
    _sync.RegistrySync(params(repositories=["team/app"])).run()
    src.add_image("team/app", "3.0", [b"new"])
    dst.events.clear()
    checked = _sync.RegistrySync(params(repositories=["team/app"]), check_mode=True, diff=True).run()
    assert checked["changed"] is True
    assert checked["copied"] == [DST + "/team/app:3.0"]
    assert len(checked["skipped_images"]) == 6
    assert checked["diff"]["before"] == {DST + "/team/app:3.0": None}
    assert dst.events == []
    done = _sync.RegistrySync(params(repositories=["team/app"])).run()
    again = _sync.RegistrySync(params(repositories=["team/app"])).run()
    assert done["copied"] == [DST + "/team/app:3.0"]
    assert again["changed"] is False and again["copied"] == []


def test_prune_only_touches_synced_repositories(registries):
    src, dst = registries
    seed(src)
    _sync.RegistrySync(params(repositories=["team/app", "team/tool"])).run()
    dst.add_image("other/repo", "keep-me", [b"x"])
    result = _sync.RegistrySync(params(repositories=[{"name": "team/app", "tags": ["2.0"]}], prune=True)).run()
    assert sorted(result["pruned"]) == sorted(DST + "/team/app:" + t for t in ["1.0", "1.1", "v1.2.0", "latest", "1.1-debug"])
    assert sorted(dst.tags["team/app"]) == ["2.0"]
    assert dst.tags["team/tool"] and dst.tags["other/repo"]


def test_unknown_source_repository_is_reported_and_others_continue(registries):
    src, dst = registries
    seed(src)
    result = _sync.RegistrySync(params(repositories=["team/nope", "team/tool"])).run()
    assert result["copied"] == [DST + "/team/tool:3"]
    assert [f["error_kind"] for f in result["failed_images"]] == ["not_found"]
    assert "team/nope" in result["failed_images"][0]["reference"]


def test_two_sources_into_one_destination_is_refused(registries):
    src, _dst = registries
    seed(src)
    with pytest.raises(InvalidInput, match="would receive both"):
        _sync.RegistrySync(params(repositories=[{"name": "team/app", "tags": ["1.0"], "destination": "x"},
                                                {"name": "team/tool", "tags": ["1.0"], "destination": "x"}])).run()


def test_bad_platform(registries):
    with pytest.raises(InvalidInput, match="os/arch"):
        _sync.RegistrySync(params(repositories=["team/app"], platforms=["amd64"])).run()
