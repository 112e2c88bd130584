# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""registry_sync through its real main(), between two real registry processes, with what
registries hold besides container images: a Helm chart, a cosign signature tag, an OCI 1.1
referrer (``subject``, ``artifactType``, the empty config) and BuildKit's attestation
manifests in an index.

Content is pushed with plain urllib calls (independent of the collection's client); both
registries are Debian's ``docker-registry`` (the registry:2 software) on loopback.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from ansible_collections.dockyard.registry.plugins.modules import registry_sync
from ansible_collections.dockyard.registry.tests.unit.plugins.modules.test_registry_info import (
    OCI_INDEX,
    OCI_MANIFEST,
    Pusher,
)
from ansible_collections.dockyard.registry.tests.unit.plugins.modules.utils import run_module as run_main
from ansible_collections.dockyard.registry.tests.unit.plugins.registry_process import running_registry

EMPTY = "application/vnd.oci.empty.v1+json"
ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json"))


def manifest_of(base: str, repository: str, reference: str) -> tuple:
    """(digest, raw bytes, content type) of a manifest, or None when the registry has none."""
    request = urllib.request.Request("%s/v2/%s/manifests/%s" % (base, repository, reference), headers={"Accept": ACCEPT})
    try:
        with urllib.request.urlopen(request) as response:  # nosec B310 - loopback test registry
            return response.headers["Docker-Content-Digest"], response.read(), response.headers["Content-Type"]
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def blob_of(base: str, repository: str, digest: str) -> bytes:
    with urllib.request.urlopen("%s/v2/%s/blobs/%s" % (base, repository, digest)) as response:  # nosec B310
        return response.read()


def tags_of(base: str, repository: str) -> list:
    with urllib.request.urlopen("%s/v2/%s/tags/list" % (base, repository)) as response:  # nosec B310
        return sorted(json.loads(response.read())["tags"] or [])


@pytest.fixture
def registries(tmp_path_factory):
    with running_registry(tmp_path_factory.mktemp("source")) as source:
        with running_registry(tmp_path_factory.mktemp("destination")) as destination:
            pusher = Pusher(source)
            content = {"source": source, "destination": destination}
            # a Helm chart: its own config and layer media types
            config = dict(pusher.blob("charts/web", b'{"name":"web","version":"1.2.3"}'),
                          mediaType="application/vnd.cncf.helm.config.v1+json")
            chart = dict(pusher.blob("charts/web", b"\x1f\x8b not really a tarball " * 64),
                         mediaType="application/vnd.cncf.helm.chart.content.v1.tar+gzip")
            content["chart"] = pusher.manifest("charts/web", "1.2.3", {
                "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [chart]}, OCI_MANIFEST)
            # two images and an index of them with BuildKit's attestation manifests
            amd64, _doc = pusher.image("team/app", "amd64", "amd64", None, [b"amd64 layer"])
            arm64, _doc = pusher.image("team/app", "arm64", "arm64", "v8", [b"arm64 layer"])
            empty = dict(pusher.blob("team/app", b"{}"), mediaType=EMPTY)

            def attestation(of: dict, tag: str) -> dict:
                statement = dict(pusher.blob("team/app", json.dumps({"predicateType": "provenance", "of": of["digest"]}).encode()),
                                 mediaType="application/vnd.in-toto+json")
                document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": empty, "layers": [statement]}
                descriptor = pusher.manifest("team/app", tag, document, OCI_MANIFEST)
                return dict(descriptor, platform={"os": "unknown", "architecture": "unknown"},
                            annotations={"vnd.docker.reference.type": "attestation-manifest",
                                         "vnd.docker.reference.digest": of["digest"]})

            content["attest_amd64"] = attestation(amd64, "attestation-amd64")
            content["attest_arm64"] = attestation(arm64, "attestation-arm64")
            content["amd64"], content["arm64"] = amd64, arm64
            content["index"] = pusher.manifest("team/app", "multi", {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
                dict(amd64, platform={"os": "linux", "architecture": "amd64"}),
                dict(arm64, platform={"os": "linux", "architecture": "arm64", "variant": "v8"}),
                content["attest_amd64"], content["attest_arm64"]]}, OCI_INDEX)
            # a cosign signature tag of the amd64 image, and an OCI 1.1 referrer (an SBOM) of it
            signature = dict(pusher.blob("team/app", b'{"critical":{"image":{}}}'),
                             mediaType="application/vnd.dev.cosign.simplesigning.v1+json",
                             annotations={"dev.cosignproject.cosign/signature": "MEUCIQDx"})
            content["signature_tag"] = amd64["digest"].replace(":", "-") + ".sig"
            pusher.manifest("team/app", content["signature_tag"], {
                "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": empty, "layers": [signature]}, OCI_MANIFEST)
            sbom = dict(pusher.blob("team/app", b'{"spdxVersion":"SPDX-2.3"}'), mediaType="application/spdx+json")
            pusher.manifest("team/app", "sbom", {
                "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/spdx+json",
                "config": empty, "layers": [sbom], "subject": amd64}, OCI_MANIFEST)
            yield content


def sync(capsys, content, **args):
    return run_main(capsys, registry_sync, source_registry=content["source"],
                    destination_registry=content["destination"], repositories=["charts/web", "team/app"],
                    config_path="/nonexistent/config.json", **args).result


def test_artifacts_signatures_referrers_and_attestations_arrive_byte_for_byte(capsys, registries):
    first = sync(capsys, registries)
    assert not first.get("failed"), first
    assert first["changed"] is True and first["failed_images"] == []
    for repository in ("charts/web", "team/app"):
        tags = tags_of(registries["source"], repository)
        assert tags_of(registries["destination"], repository) == tags
        for tag in tags:
            # the same bytes under the same digest: a referrer keeps its subject, an artifact its types
            assert manifest_of(registries["destination"], repository, tag) == manifest_of(registries["source"], repository, tag)
    chart = json.loads(manifest_of(registries["destination"], "charts/web", "1.2.3")[1])
    assert blob_of(registries["destination"], "charts/web", chart["layers"][0]["digest"]).startswith(b"\x1f\x8b")
    sbom = json.loads(manifest_of(registries["destination"], "team/app", "sbom")[1])
    assert sbom["subject"]["digest"] == registries["amd64"]["digest"]
    assert blob_of(registries["destination"], "team/app", sbom["layers"][0]["digest"]) == b'{"spdxVersion":"SPDX-2.3"}'

    again = sync(capsys, registries)
    assert again["changed"] is False and again["copied"] == []
    assert len(again["skipped_images"]) == len(first["copied"])


def test_a_platform_subset_keeps_the_attestations_of_the_kept_platform(capsys, registries):
    result = sync(capsys, registries, platforms=["linux/arm64"], destination_prefix="arm")
    assert not result.get("failed"), result
    digest, raw, content_type = manifest_of(registries["destination"], "arm/team/app", "multi")
    assert content_type == OCI_INDEX and digest != registries["index"]["digest"]
    kept = json.loads(raw)["manifests"]
    assert [entry["digest"] for entry in kept] == [registries["arm64"]["digest"], registries["attest_arm64"]["digest"]]
    for entry in kept:                                   # the children are there, not just named
        assert manifest_of(registries["destination"], "arm/team/app", entry["digest"])[0] == entry["digest"]
    # single manifests (the chart, the signature, the referrer) are copied as they are
    assert manifest_of(registries["destination"], "arm/charts/web", "1.2.3")[0] == registries["chart"]["digest"]
    assert manifest_of(registries["destination"], "arm/team/app", registries["signature_tag"]) is not None
    assert sync(capsys, registries, platforms=["linux/arm64"], destination_prefix="arm")["changed"] is False
