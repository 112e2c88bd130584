# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""registry_image's decisions (copy, tags, delete guard) against the in-memory registry of
test_copy; the Docker engine and real registries are exercised by module_registry_image."""

from __future__ import annotations

import pytest

from ansible_collections.dockyard.registry.plugins.module_utils import _docker_engine, _image
from ansible_collections.dockyard.registry.plugins.module_utils._errors import MissingLibrary, NotFound
from ansible_collections.dockyard.registry.plugins.modules import registry_image
from ansible_collections.dockyard.registry.tests.unit.plugins.module_utils.fake_registry import FakeRegistry

HOST = "reg.example:5000"
OTHER = "other.example:5000"


def params(**overrides):
    values = dict((name, spec.get("default")) for name, spec in registry_image.argument_spec().items())
    values.update(overrides)
    return values


@pytest.fixture
def regs(monkeypatch):
    regs = {HOST: FakeRegistry(HOST), OTHER: FakeRegistry(OTHER)}
    monkeypatch.setattr(_image, "client_from_params",
                        lambda _params, registry, prefix="", retry_stats=None: regs[registry.host].client())
    return regs


def run(check_mode=False, diff=False, **kwargs):
    return _image.RegistryImage(params(**kwargs), check_mode=check_mode, diff=diff).run()


def test_copy_in_the_same_registry_mounts_and_tags(regs):
    reg = regs[HOST]
    digest = reg.add_image("app", "1.0", [b"base" * 100, b"own"])
    checked = run(check_mode=True, diff=True, name=HOST + "/copy:1.0", source=HOST + "/app:1.0", tags=["stable"])
    assert checked["changed"] and checked["digest"] == digest
    assert checked["tags_changed"] == ["stable"]
    assert checked["diff"] == {"before": {"digest": None, "tag stable": None},
                               "after": {"digest": digest, "tag stable": digest}}
    assert "copy" not in reg.tags
    result = run(name=HOST + "/copy:1.0", source=HOST + "/app:1.0", tags=["stable", "1.0"])
    assert result["changed"] and result["copied"]
    assert result["copy_stats"]["blobs_mounted"] == 3 and result["copy_stats"]["blobs_uploaded"] == 0
    assert result["tags_changed"] == ["stable"]
    assert reg.tags["copy"] == {"1.0": digest, "stable": digest}
    again = run(name=HOST + "/copy:1.0", source=HOST + "/app:1.0", tags=["stable"])
    assert not again["changed"] and not again["copied"] and again["tags_changed"] == []


def test_copy_across_registries_uploads(regs):
    digest = regs[OTHER].add_image("app", "1.0", [b"layer"])
    result = run(name=HOST + "/app", source=OTHER + "/app:1.0")
    assert result["copy_stats"]["blobs_uploaded"] == 2
    assert regs[HOST].tags["app"]["latest"] == digest


def test_missing_image_without_source(regs):
    with pytest.raises(NotFound, match="give source or push"):
        run(name=HOST + "/nothing:1")


def test_delete_refuses_shared_digest_then_force(regs):
    reg = regs[HOST]
    digest = reg.add_image("app", "1.0", [b"x"])
    reg.tags["app"]["stable"] = digest
    other = reg.add_image("app", "2.0", [b"y"])
    with pytest.raises(_image.SharedDigest) as info:
        run(name=HOST + "/app:1.0", state="absent")
    assert info.value.tags == ["stable"]
    assert reg.tags["app"]["1.0"] == digest
    checked = run(check_mode=True, name=HOST + "/app:1.0", state="absent", force=True)
    assert checked["changed"] and reg.tags["app"]["1.0"] == digest
    result = run(name=HOST + "/app:1.0", state="absent", force=True)
    assert result["removed_tags"] == ["1.0", "stable"] and result["digest"] == digest
    assert reg.tags["app"] == {"2.0": other}
    assert not run(name=HOST + "/app:1.0", state="absent")["changed"]


def test_delete_by_digest_counts_every_tag(regs):
    reg = regs[HOST]
    digest = reg.add_image("app", "1.0", [b"x"])
    with pytest.raises(_image.SharedDigest) as info:
        run(name=HOST + "/app@" + digest, state="absent")
    assert info.value.tags == ["1.0"]


def test_push_and_pull_need_the_docker_sdk(regs, monkeypatch):
    regs[HOST].add_image("app", "1.0", [b"x"])
    monkeypatch.setattr(_docker_engine, "docker", None)
    with pytest.raises(MissingLibrary):
        run(name=HOST + "/app:1.0", pull=True)
    with pytest.raises(MissingLibrary):
        run(name=HOST + "/app:2.0", push="local:tag")
