# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one model of OCI content: a registry's answer made a Manifest (or a clear ServerError),
descriptors, the blob walk, platforms, index filtering and inspection."""

from __future__ import annotations

import json

import pytest

from ansible_collections.dockyard.registry.plugins.module_utils._errors import InvalidInput, ServerError
from ansible_collections.dockyard.registry.plugins.module_utils._manifest import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    FOREIGN_LAYER_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    SCHEMA1_MEDIA_TYPES,
    Manifest,
    filter_index,
    inspect_image,
    parse_platform,
    sha256_digest,
)
from ansible_collections.dockyard.registry.tests.unit.plugins.module_utils.fake_registry import FakeRegistry

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64
IMAGE = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
         "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D1, "size": 10},
         "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": D2, "size": 20},
                    {"mediaType": FOREIGN_LAYER_TYPES[0], "digest": D3, "size": 30},
                    {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": D2, "size": 20}]}
REQUEST = "GET /v2/team/app/manifests/1.0"


def answer(document, content_type=OCI_MANIFEST, raw=None):
    raw = raw if raw is not None else json.dumps(document).encode()
    return Manifest.from_answer(raw, content_type, sha256_digest(raw), registry="reg.example:5000",
                                reference="reg.example:5000/team/app:1.0", request=REQUEST)


# --- a registry's answer -------------------------------------------------------------------------

@pytest.mark.parametrize("content_type, document, expected", [
    (OCI_MANIFEST, IMAGE, OCI_MANIFEST),
    (OCI_MANIFEST + "; charset=utf-8", IMAGE, OCI_MANIFEST),
    ("application/json", {"mediaType": OCI_INDEX, "manifests": []}, OCI_INDEX),
    ("application/json", {"schemaVersion": 2, "manifests": []}, OCI_INDEX),
    ("application/octet-stream", {"schemaVersion": 2, "config": {}, "layers": []}, OCI_MANIFEST),
    (None, {"schemaVersion": 1, "name": "x", "fsLayers": []}, SCHEMA1_MEDIA_TYPES[0]),
    (SCHEMA1_MEDIA_TYPES[1], {"schemaVersion": 1, "name": "x"}, SCHEMA1_MEDIA_TYPES[1]),
    (DOCKER_MANIFEST_LIST, {"mediaType": DOCKER_MANIFEST_LIST, "manifests": []}, DOCKER_MANIFEST_LIST),
    ("application/vnd.example.artifact+json", {"layers": []}, "application/vnd.example.artifact+json"),
])
def test_the_media_type_comes_from_the_answer_or_the_document(content_type, document, expected):
    manifest = answer(document, content_type)
    assert manifest.media_type == expected
    assert manifest.document == document


@pytest.mark.parametrize("content_type, raw, texts", [
    ("text/html; charset=utf-8", b"<!DOCTYPE html><html>Sign in</html>", ["an HTML page", "text/html", "Sign in"]),
    ("application/json", b"<html><body>502 Bad Gateway</body></html>", ["an HTML page", "502 Bad Gateway"]),
    (OCI_MANIFEST, b"\xff\xfe not json", ["a body that is not JSON"]),
    (OCI_MANIFEST, b"", ["not JSON", "(empty)"]),
    (OCI_MANIFEST, b"[1, 2]", ["JSON but not an object (a list)"]),
    ("text/plain", b"hello", ["not JSON", "hello"]),
    ("image/png", json.dumps(IMAGE).encode(), ["Content-Type image/png", "not a manifest media type"]),
    ("text/html", json.dumps(IMAGE).encode(), ["Content-Type text/html, which is not a manifest media type"]),
    (OCI_MANIFEST, json.dumps(dict(IMAGE, mediaType=DOCKER_MANIFEST)).encode(),
     ["Content-Type %s" % OCI_MANIFEST, "mediaType %s" % DOCKER_MANIFEST]),
    ("application/json", b'{"schemaVersion": 2}', ["neither its Content-Type nor its content"]),
])
def test_an_answer_that_is_no_manifest_is_a_server_error_naming_registry_and_request(content_type, raw, texts):
    with pytest.raises(ServerError) as info:
        answer(None, content_type, raw)
    message = str(info.value)
    for text in texts:
        assert text in message, message
    assert "reg.example:5000" in message
    if "neither" not in texts[0]:
        assert REQUEST in message, message
    assert info.value.kind == "server_error"


# --- descriptors and the blob walk ----------------------------------------------------------------

def test_blobs_are_config_then_layers_once_each_without_foreign_layers():
    manifest = answer(IMAGE)
    assert [(b.digest, b.size) for b in manifest.blobs()] == [(D1, 10), (D2, 20)]
    assert manifest.config().digest == D1
    assert manifest.children() == [] and not manifest.is_index


def test_an_artifact_blobs_list_and_a_layer_with_urls_count_as_expected():
    document = {"mediaType": "application/vnd.oci.artifact.manifest.v1+json",
                "blobs": [{"digest": D1, "size": 1}, {"digest": D2, "size": 2, "urls": ["https://x/y"]}]}
    assert [b.digest for b in answer(document, "application/vnd.oci.artifact.manifest.v1+json").blobs()] == [D1]


@pytest.mark.parametrize("layers, text", [
    ([{"digest": "sha256:short", "size": 1}], "'sha256:short' is not a digest"),
    ([{"size": 1}], "None is not a digest"),
    ([{"digest": D1, "size": "12"}], "size '12'"),
    ([{"digest": D1, "size": -5}], "size -5"),
    (["not a dict"], "a descriptor is not a JSON object"),
    ({"digest": D1}, "'layers' is not a list"),
])
def test_a_bad_descriptor_is_a_server_error_naming_the_manifest_and_the_entry(layers, text):
    manifest = answer(dict(IMAGE, layers=layers))
    with pytest.raises(ServerError) as info:
        manifest.blobs()
    assert text in str(info.value)
    assert "reg.example:5000/team/app:1.0" in str(info.value)


def test_index_children_with_platforms():
    index = {"mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": D1, "size": 5, "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": OCI_MANIFEST, "digest": D2, "size": 6,
         "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}]}
    manifest = answer(index, OCI_INDEX)
    assert manifest.is_index
    assert [c.platform_info() for c in manifest.children()] == [
        {"os": "linux", "architecture": "amd64", "variant": None, "digest": D1},
        {"os": "linux", "architecture": "arm64", "variant": "v8", "digest": D2}]
    with pytest.raises(ServerError, match=r"manifests\[1\]"):
        answer(dict(index, manifests=[index["manifests"][0], {"size": 1}]), OCI_INDEX).children()


# --- platforms and index filtering -----------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [("linux/amd64", ("linux", "amd64", None)),
                                             (" linux / arm64 / v8 ", ("linux", "arm64", "v8"))])
def test_parse_platform(value, expected):
    assert parse_platform(value) == expected


@pytest.mark.parametrize("value", ["linux", "linux/", "a/b/c/d", ""])
def test_parse_platform_rejects(value):
    with pytest.raises(InvalidInput, match="os/arch"):
        parse_platform(value)


def test_filter_index_all_is_byte_exact_and_no_match_is_an_error():
    raw = json.dumps({"manifests": [{"digest": "sha256:" + "a" * 64, "platform": {"os": "linux", "architecture": "amd64"}}]},
                     indent=7).encode()
    assert filter_index(raw, "all") is raw
    assert filter_index(raw, ["linux/amd64"]) is raw
    with pytest.raises(InvalidInput, match="linux/amd64"):
        filter_index(raw, ["linux/arm64"])
    with pytest.raises(InvalidInput):
        filter_index(raw, ["linux"])


def test_a_filtered_index_is_a_new_manifest_with_its_own_digest():
    index = {"mediaType": OCI_INDEX, "manifests": [
        {"digest": D1, "size": 5, "platform": {"os": "linux", "architecture": "amd64"}},
        {"digest": D2, "size": 6, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}]}
    manifest = answer(index, OCI_INDEX)
    assert manifest.filtered("all") is manifest
    subset = manifest.filtered(["linux/arm64/v8"])
    assert subset.digest == sha256_digest(subset.raw) != manifest.digest
    assert [c.digest for c in subset.children()] == [D2]
    assert subset.media_type == OCI_INDEX
    assert manifest.filtered(["linux/arm64"]).raw == subset.raw     # stable from run to run


def test_a_filtered_index_keeps_the_attestations_of_the_platforms_it_keeps():
    def attestation(digest, of):
        return {"mediaType": OCI_MANIFEST, "digest": digest, "size": 7,
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                                "vnd.docker.reference.digest": of}}
    d4, d5 = "sha256:" + "4" * 64, "sha256:" + "5" * 64
    index = {"mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": D1, "size": 5, "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": OCI_MANIFEST, "digest": D2, "size": 6, "platform": {"os": "linux", "architecture": "arm64"}},
        attestation(D3, D1), attestation(d4, D2),
        # not BuildKit's attestation of a kept image: another reference type, no annotations
        dict(attestation(d5, D1), annotations={"vnd.docker.reference.type": "something-else",
                                               "vnd.docker.reference.digest": D1}),
    ]}
    manifest = answer(index, OCI_INDEX)
    assert [c.digest for c in manifest.filtered(["linux/amd64"]).children()] == [D1, D3]
    assert [c.digest for c in manifest.filtered(["linux/arm64"]).children()] == [D2, d4]
    assert manifest.filtered(["linux/amd64", "linux/arm64"]).digest != manifest.digest   # d5 dropped
    assert [c.digest for c in manifest.filtered(["unknown/unknown"]).children()] == [D3, d4, d5]
    with pytest.raises(InvalidInput, match="linux/s390x"):      # attestations alone are no match
        manifest.filtered(["linux/s390x"])


# --- inspection ---------------------------------------------------------------------------------

def test_inspect_a_single_image_reads_created_labels_and_platform():
    registry = FakeRegistry("reg.example:5000")
    config = json.dumps({"architecture": "arm64", "variant": "v8", "os": "linux", "created": "2024-05-01T00:00:00Z",
                         "config": {"Labels": {"a": "b"}}}).encode()
    digest = registry.add_image("app", "1", [b"layer one", b"layer two"], config=config)
    info = inspect_image(registry.client(), "app", "1")
    assert (info.digest, info.created, info.labels) == (digest, "2024-05-01T00:00:00Z", {"a": "b"})
    assert info.platforms == [{"os": "linux", "architecture": "arm64", "variant": "v8", "digest": digest}]
    raw = registry.manifests["app"][digest][1]
    assert info.size == len(raw) + len(config) + len(b"layer one") + len(b"layer two")
    assert sorted(info.blobs.values()) == sorted([len(config), 9, 9])
    assert inspect_image(registry.client(), "app", "2") is None


def test_inspect_an_index_counts_shared_blobs_once_and_what_is_missing():
    registry = FakeRegistry("reg.example:5000")
    index = registry.add_index("multi", "v1", [("linux", "amd64"), ("linux", "arm64")])
    document = json.loads(registry.manifests["multi"][index][1])
    missing = document["manifests"][1]["digest"]
    present = registry.manifests["multi"][document["manifests"][0]["digest"]][1]
    del registry.manifests["multi"][missing]          # a partial copy of the index
    info = inspect_image(registry.client(), "multi", "v1")
    assert info.missing_children == [missing]
    assert [p["architecture"] for p in info.platforms] == ["amd64", "arm64"]
    assert (info.created, info.labels) == (None, {})
    assert info.size == len(registry.manifests["multi"][index][1]) + len(present) + sum(info.blobs.values())
    assert info.as_result()["exists"] is True


def test_a_config_that_is_not_an_image_config_gives_no_created():
    registry = FakeRegistry("reg.example:5000")
    registry.add_image("app", "1", [b"x"], config=b"not json")
    info = inspect_image(registry.client(), "app", "1")
    assert (info.created, info.labels, info.platforms) == (None, {}, [])
