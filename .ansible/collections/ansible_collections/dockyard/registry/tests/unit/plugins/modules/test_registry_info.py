# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""registry_info through its real main(), against a real registry process.

Content is pushed with plain urllib calls (independent of the collection's client), the
registry is Debian's ``docker-registry`` (the registry:2 software) on loopback.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
import urllib.request

import pytest

from ansible_collections.dockyard.registry.plugins.module_utils._client import RegistryClient
from ansible_collections.dockyard.registry.plugins.module_utils._reference import parse_registry
from ansible_collections.dockyard.registry.plugins.module_utils._info import RegistryInfo
from ansible_collections.dockyard.registry.plugins.modules import registry_info
from ansible_collections.dockyard.registry.tests.unit.plugins.modules.utils import run_module as run_main
from ansible_collections.dockyard.registry.tests.unit.plugins.registry_process import running_registry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Pusher:
    """Pushes blobs and manifests with raw HTTP."""

    def __init__(self, base: str) -> None:
        self.base = base

    def blob(self, repository: str, data: bytes) -> dict:
        request = urllib.request.Request("%s/v2/%s/blobs/uploads/" % (self.base, repository), method="POST", data=b"")
        with urllib.request.urlopen(request) as response:  # nosec B310 - loopback test registry
            location = urllib.parse.urljoin(self.base, response.headers["Location"])
        separator = "&" if "?" in location else "?"
        put = urllib.request.Request("%s%sdigest=%s" % (location, separator, digest_of(data)), method="PUT", data=data,
                                     headers={"Content-Type": "application/octet-stream"})
        with urllib.request.urlopen(put) as response:  # nosec B310
            assert response.status == 201
        return {"digest": digest_of(data), "size": len(data)}

    def manifest(self, repository: str, reference: str, document: dict, media_type: str) -> dict:
        raw = json.dumps(document, indent=3).encode()
        request = urllib.request.Request("%s/v2/%s/manifests/%s" % (self.base, repository, reference), method="PUT",
                                         data=raw, headers={"Content-Type": media_type})
        with urllib.request.urlopen(request) as response:  # nosec B310
            assert response.status == 201
        return {"mediaType": media_type, "digest": digest_of(raw), "size": len(raw)}

    def image(self, repository: str, reference: str, arch: str, variant: str | None, layers: list) -> tuple:
        config = {"architecture": arch, "os": "linux", "created": "2024-01-02T03:04:05Z",
                  "config": {"Labels": {"org.example.arch": arch}}, "rootfs": {"type": "layers", "diff_ids": []}}
        if variant:
            config["variant"] = variant
        config_desc = dict(self.blob(repository, json.dumps(config).encode()), mediaType=OCI_CONFIG)
        layer_descs = [dict(self.blob(repository, layer), mediaType=OCI_LAYER) for layer in layers]
        document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_desc, "layers": layer_descs}
        descriptor = self.manifest(repository, reference, document, OCI_MANIFEST)
        return descriptor, document


# Function-scoped like every registry here (see registry_process): a fresh, filled registry per test.
@pytest.fixture
def content(tmp_path_factory):
    with running_registry(tmp_path_factory.mktemp("registry")) as base:
        pusher = Pusher(base)
        shared = b"shared layer " * 100
        amd64, amd64_doc = pusher.image("team/app", "amd64", "amd64", None, [shared, b"amd64 only"])
        arm64, arm64_doc = pusher.image("team/app", "arm64", "arm64", "v8", [shared, b"arm64 layer!"])
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            dict(amd64, platform={"os": "linux", "architecture": "amd64"}),
            dict(arm64, platform={"os": "linux", "architecture": "arm64", "variant": "v8"}),
        ]}
        index_desc = pusher.manifest("team/app", "multi", index, OCI_INDEX)
        _many, many_doc = pusher.image("team/many", "t00", "amd64", None, [b"one small layer"])
        for number in range(1, 25):
            pusher.manifest("team/many", "t%02d" % number, many_doc, OCI_MANIFEST)
        yield {
            "registry": base, "amd64": amd64, "arm64": arm64, "index": index_desc,
            "amd64_doc": amd64_doc, "arm64_doc": arm64_doc, "shared_size": len(shared),
        }


def run_module(capsys, **args) -> dict:
    return run_main(capsys, registry_info, config_path="/nonexistent/config.json", **args).result


def test_catalog(capsys, content):
    result = run_module(capsys, registry=content["registry"])
    assert result["changed"] is False
    assert result["repositories"] == ["team/app", "team/many"]


def test_tags(capsys, content):
    result = run_module(capsys, registry=content["registry"], repository="team/app")
    assert sorted(result["tags"]) == ["amd64", "arm64", "multi"]
    assert result["exists"] is True
    missing = run_module(capsys, registry=content["registry"], repository="team/nothing-here")
    assert (missing["exists"], missing["tags"]) == (False, [])
    assert not missing.get("failed")


def test_catalog_follows_pagination(content):
    # One repository per page: the registry answers with a Link header each time.
    registry = parse_registry(content["registry"])
    page = urllib.request.urlopen(content["registry"] + "/v2/_catalog?n=1")  # nosec B310
    assert 'rel="next"' in page.headers["Link"]
    client = RegistryClient(registry, page_size=1)
    assert RegistryInfo(client, registry).run(None, None)["repositories"] == ["team/app", "team/many"]


def test_all_tags(content):
    # distribution 2.8.2 sends every tag in one answer whatever n is (it does not page tags/list).
    registry = parse_registry(content["registry"])
    client = RegistryClient(registry, page_size=10)
    result = RegistryInfo(client, registry).run("team/many", None)
    assert sorted(result["tags"]) == ["t%02d" % n for n in range(25)]


def test_single_platform_manifest(capsys, content):
    result = run_module(capsys, registry=content["registry"], repository="team/app", reference="amd64")
    doc = content["amd64_doc"]
    assert result["exists"] is True
    assert result["digest"] == content["amd64"]["digest"]
    assert result["media_type"] == OCI_MANIFEST
    assert result["size"] == content["amd64"]["size"] + doc["config"]["size"] + sum(x["size"] for x in doc["layers"])
    assert result["platforms"] == [{"os": "linux", "architecture": "amd64", "variant": None,
                                    "digest": content["amd64"]["digest"]}]
    assert result["created"] == "2024-01-02T03:04:05Z"
    assert result["labels"] == {"org.example.arch": "amd64"}
    assert result["manifest"] == doc


def test_by_digest(capsys, content):
    result = run_module(capsys, registry=content["registry"], repository="team/app",
                        reference=content["arm64"]["digest"])
    assert result["exists"] is True
    assert result["digest"] == content["arm64"]["digest"]
    assert result["platforms"][0]["variant"] == "v8"


def test_index(capsys, content):
    result = run_module(capsys, registry=content["registry"], repository="team/app", reference="multi")
    assert result["media_type"] == OCI_INDEX
    assert result["digest"] == content["index"]["digest"]
    assert result["platforms"] == [
        {"os": "linux", "architecture": "amd64", "variant": None, "digest": content["amd64"]["digest"]},
        {"os": "linux", "architecture": "arm64", "variant": "v8", "digest": content["arm64"]["digest"]},
    ]
    blobs = {}
    for doc in (content["amd64_doc"], content["arm64_doc"]):
        for item in [doc["config"]] + doc["layers"]:
            blobs[item["digest"]] = item["size"]
    # The shared layer is counted once.
    expected = content["index"]["size"] + content["amd64"]["size"] + content["arm64"]["size"] + sum(blobs.values())
    assert result["size"] == expected
    assert (result["created"], result["labels"]) == (None, {})


@pytest.mark.parametrize("reference", ["no-such-tag",
                                       "sha256:" + "0" * 64])
def test_missing_reference_is_not_a_failure(capsys, content, reference):
    result = run_module(capsys, registry=content["registry"], repository="team/app", reference=reference)
    assert result["exists"] is False
    assert not result.get("failed")
    assert "digest" not in result


@pytest.mark.parametrize("args,message", [
    ({"repository": "Team/App"}, "must be lower case"),
    ({"repository": "team/app", "reference": "bad tag"}, "invalid tag"),
    ({"repository": "team/app", "reference": "sha256:abc"}, "invalid digest"),
    ({"reference": "latest"}, "repository"),
])
def test_invalid_input(capsys, content, args, message):
    result = run_module(capsys, registry=content["registry"], **args)
    assert result["failed"] is True
    assert message in result["msg"]
