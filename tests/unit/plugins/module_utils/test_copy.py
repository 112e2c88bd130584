# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The copy engine's planner and executor against an in-memory registry.

The fake implements the client's methods with the rules a real distribution registry
enforces (a manifest PUT needs its blobs and child manifests, an upload must hash to its
digest); the real client and registries are exercised by the integration targets.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading

import pytest

from ansible_collections.dockyard.registry.plugins.module_utils import _copy
from ansible_collections.dockyard.registry.plugins.module_utils._copy import (
    CopyJob,
    execute,
    filter_index,
    parse_range,
    parse_version,
    plan_copies,
    retag,
    select_tags,
)
from ansible_collections.dockyard.registry.plugins.module_utils._errors import (
    DigestMismatch,
    InvalidInput,
    NotFound,
    ServerError,
)
from ansible_collections.dockyard.registry.plugins.module_utils._reference import (
    parse_reference,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Desc:
    def __init__(self, digest, media_type, size):
        self.digest = digest
        self.media_type = media_type
        self.size = size


class Manifest:
    def __init__(self, digest, media_type, raw):
        self.digest = digest
        self.media_type = media_type
        self.raw = raw


class FakeRegistry:
    """Storage of one registry, shared by every client of it; records every write."""

    def __init__(self, host):
        self.host = host
        self.blobs = {}         # repo -> {digest: bytes}
        self.manifests = {}     # repo -> {digest: (media_type, raw)}
        self.tags = {}          # repo -> {tag: digest}
        self.events = []        # ("blob"|"manifest"|"mount"|"delete", repo, ref)
        self.calls = []         # every call: (method, repo, ref)
        self.mount_allowed = True
        self.fail_manifest_get = {}   # (repo, ref) -> exception
        self.fail_upload = {}         # digest -> number of failures left
        self.lock = threading.Lock()

    def client(self):
        return FakeClient(self)

    # helpers for tests
    def add_blob(self, repo, data):
        self.blobs.setdefault(repo, {})[sha(data)] = data
        return sha(data)

    def add_image(self, repo, tag, layers, config=b'{"architecture":"amd64","os":"linux"}'):
        descs = []
        for data in [config] + list(layers):
            self.add_blob(repo, data)
            descs.append({"mediaType": "application/octet-stream", "digest": sha(data), "size": len(data)})
        raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descs[0],
                          "layers": descs[1:]}, indent=3).encode()
        self.manifests.setdefault(repo, {})[sha(raw)] = (OCI_MANIFEST, raw)
        if tag:
            self.tags.setdefault(repo, {})[tag] = sha(raw)
        return sha(raw)

    def add_index(self, repo, tag, platforms):
        entries = []
        for os_name, arch in platforms:
            config = json.dumps({"architecture": arch, "os": os_name}).encode()
            digest = self.add_image(repo, None, [("layer-" + arch).encode() * 50], config=config)
            raw = self.manifests[repo][digest][1]
            entries.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": len(raw),
                            "platform": {"os": os_name, "architecture": arch}})
        raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, indent=2).encode()
        self.manifests.setdefault(repo, {})[sha(raw)] = (OCI_INDEX, raw)
        self.tags.setdefault(repo, {})[tag] = sha(raw)
        return sha(raw)

    def resolve(self, repo, ref):
        if ref.startswith("sha256:"):
            return ref if ref in self.manifests.get(repo, {}) else None
        return self.tags.get(repo, {}).get(ref)

    def writes(self):
        return [e for e in self.events if e[0] != "delete"]


class FakeClient:
    def __init__(self, registry):
        self.r = registry

    def _call(self, *call):
        with self.r.lock:
            self.r.calls.append(call)

    def manifest_head(self, repo, ref):
        self._call("manifest_head", repo, ref)
        digest = self.r.resolve(repo, ref)
        if digest is None:
            return None
        media_type, raw = self.r.manifests[repo][digest]
        return Desc(digest, media_type, len(raw))

    def manifest_get(self, repo, ref):
        self._call("manifest_get", repo, ref)
        if (repo, ref) in self.r.fail_manifest_get:
            raise self.r.fail_manifest_get[(repo, ref)]
        digest = self.r.resolve(repo, ref)
        if digest is None:
            raise NotFound("manifest unknown %s:%s" % (repo, ref))
        media_type, raw = self.r.manifests[repo][digest]
        return Manifest(digest, media_type, raw)

    def manifest_put(self, repo, ref, raw, media_type):
        self._call("manifest_put", repo, ref)
        data = json.loads(raw)
        with self.r.lock:
            # what distribution checks on PUT: every referenced blob / child manifest exists
            for child in data.get("manifests", []):
                assert child["digest"] in self.r.manifests.get(repo, {}), "child manifest missing"
            for desc in [data.get("config")] + data.get("layers", []):
                if desc:
                    assert desc["digest"] in self.r.blobs.get(repo, {}), "blob missing for manifest"
            digest = sha(raw)
            if ref.startswith("sha256:"):
                assert ref == digest
            self.r.manifests.setdefault(repo, {})[digest] = (media_type, raw)
            if not ref.startswith("sha256:"):
                self.r.tags.setdefault(repo, {})[ref] = digest
            self.r.events.append(("manifest", repo, ref))
        return digest

    def manifest_delete(self, repo, digest):
        self._call("manifest_delete", repo, digest)
        with self.r.lock:
            if digest not in self.r.manifests.get(repo, {}):
                raise NotFound("manifest unknown")
            del self.r.manifests[repo][digest]
            for tag, d in list(self.r.tags.get(repo, {}).items()):
                if d == digest:
                    del self.r.tags[repo][tag]
            self.r.events.append(("delete", repo, digest))

    def blob_head(self, repo, digest):
        self._call("blob_head", repo, digest)
        data = self.r.blobs.get(repo, {}).get(digest)
        return None if data is None else len(data)

    def blob_open(self, repo, digest):
        self._call("blob_open", repo, digest)
        data = self.r.blobs.get(repo, {}).get(digest)
        if data is None:
            raise NotFound("blob unknown")
        return io.BytesIO(data)

    def blob_get(self, repo, digest):
        return self.blob_open(repo, digest).read()

    def blob_mount(self, repo, digest, from_repo):
        self._call("blob_mount", repo, digest, from_repo)
        with self.r.lock:
            if not self.r.mount_allowed or digest not in self.r.blobs.get(from_repo, {}):
                return False
            self.r.blobs.setdefault(repo, {})[digest] = self.r.blobs[from_repo][digest]
            self.r.events.append(("mount", repo, digest))
        return True

    def blob_upload(self, repo, digest, stream, size, open_stream=None):
        self._call("blob_upload", repo, digest)
        if open_stream is not None:
            stream = open_stream()
        with self.r.lock:
            left = self.r.fail_upload.get(digest, 0)
            if left:
                self.r.fail_upload[digest] = left - 1
        if left:
            stream.read(10)     # the connection breaks after the upload started
            raise ServerError("503 from the destination")
        hasher = hashlib.sha256()
        body = []
        while True:
            chunk = stream.read(65536)
            if not chunk:
                break
            assert len(chunk) <= _copy.CHUNK_SIZE
            hasher.update(chunk)
            body.append(chunk)
        data = b"".join(body)
        if "sha256:" + hasher.hexdigest() != digest or len(data) != size:
            raise DigestMismatch("digest invalid")
        with self.r.lock:
            self.r.blobs.setdefault(repo, {})[digest] = data
            self.r.events.append(("blob", repo, digest))

    def tags(self, repo):
        if repo not in self.r.tags:
            raise NotFound("name unknown")
        return sorted(self.r.tags[repo])


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
    assert len([c for c in dst.calls if c[0] == "blob_head"]) == 4   # config, 2 base, "more"
    assert result.blobs_uploaded == 4


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


def test_filter_index_all_is_byte_exact_and_no_match_is_an_error():
    raw = json.dumps({"manifests": [{"digest": "sha256:" + "a" * 64, "platform": {"os": "linux", "architecture": "amd64"}}]},
                     indent=7).encode()
    assert filter_index(raw, "all") is raw
    assert filter_index(raw, ["linux/amd64"]) is raw
    with pytest.raises(InvalidInput, match="linux/amd64"):
        filter_index(raw, ["linux/arm64"])
    with pytest.raises(InvalidInput):
        filter_index(raw, ["linux"])


def test_interrupted_run_leaves_no_tag_and_rerun_finishes(src, dst, monkeypatch):
    monkeypatch.setattr(_copy, "BLOB_RETRY_BASE", 0)
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


class BrokenBody(io.BytesIO):
    """A source body cut off halfway (what the fault proxy does)."""

    def read(self, n=-1):
        if self.tell() >= len(self.getvalue()) // 2:
            return b""
        return super().read(min(n, len(self.getvalue()) // 2 - self.tell()))


def test_cut_source_body_never_completes_and_is_retried(src, dst, monkeypatch):
    monkeypatch.setattr(_copy, "BLOB_RETRY_BASE", 0)
    src.add_image("app", "1.0", BASE)
    client = src.client()
    opened = []
    real_open = client.blob_open

    def flaky_open(repo, digest):
        opened.append(digest)
        body = real_open(repo, digest)
        if digest == sha(BASE[0]) and opened.count(digest) == 1:
            return BrokenBody(body.read())
        return body

    client.blob_open = flaky_open
    plan = plan_copies([job("src.example:5000/app:1.0", "dst.example:5000/app:1.0")],
                       lambda r: client, lambda r: dst.client())
    result = execute(plan)
    assert result.failed == []
    assert opened.count(sha(BASE[0])) == 2
    assert dst.blobs["app"][sha(BASE[0])] == BASE[0]


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


@pytest.mark.parametrize("tag, expected", [
    ("1", (1, 0, 0)), ("1.2", (1, 2, 0)), ("v1.2.3", (1, 2, 3)), ("V10.0.1", (10, 0, 1)),
    ("1.2.3-rc.1", (1, 2, 3)), ("1.2.3+build5", (1, 2, 3)),
])
def test_parse_version(tag, expected):
    version = parse_version(tag)
    assert (version.major, version.minor, version.patch) == expected


@pytest.mark.parametrize("tag", ["latest", "1.2.3.4", "01.2", "v", "1.x", "stable-1.2", ""])
def test_parse_version_rejects(tag):
    assert parse_version(tag) is None


@pytest.mark.parametrize("spec, yes, no", [
    (">=1.2 <2", ["1.2", "1.2.0", "v1.9.9", "1.10"], ["1.1.9", "2", "2.0.0", "1.5.0-rc1", "latest"]),
    (">= 1.2 < 2", ["1.3"], ["2.0"]),
    ("^1.4", ["1.4.0", "1.99"], ["1.3.9", "2.0.0"]),
    ("^0.3", ["0.3.1"], ["0.4.0"]),
    ("~2.1", ["2.1.0", "2.1.9"], ["2.2.0"]),
    ("1.2", ["1.2.0", "1.2.7"], ["1.3.0"]),
    ("1.x", ["1.0", "1.9"], ["2.0"]),
    ("=1.2.3", ["v1.2.3"], ["1.2.4"]),
    (">1.2", ["1.3.0"], ["1.2.9"]),
    ("<=1.2", ["1.2.9"], ["1.3.0"]),
    ("<1 || >=3", ["0.9", "3.1"], ["1.0", "2.9"]),
])
def test_semver_ranges(spec, yes, no):
    version_range = parse_range(spec)
    assert [t for t in yes if version_range.matches(parse_version(t))] == yes
    assert [t for t in no if version_range.matches(parse_version(t))] == []


@pytest.mark.parametrize("spec", ["", ">=", ">=abc", "1.2 & 3", ">=1.2 <"])
def test_semver_range_errors(spec):
    with pytest.raises(InvalidInput):
        parse_range(spec)


TAGS = ["latest", "1.0", "1.1", "v1.2.0", "1.10.1", "2.0.0", "2.1.0-rc1", "nightly-2024", "1.1-debug"]


@pytest.mark.parametrize("kwargs, expected", [
    ({}, TAGS),
    ({"tag_regex": r"^v?\d"}, ["1.0", "1.1", "v1.2.0", "1.10.1", "2.0.0", "2.1.0-rc1", "1.1-debug"]),
    ({"exclude_regex": "debug|rc"}, ["latest", "1.0", "1.1", "v1.2.0", "1.10.1", "2.0.0", "nightly-2024"]),
    ({"semver": ">=1.1 <2"}, ["1.1", "v1.2.0", "1.10.1"]),
    ({"latest": 2}, ["1.10.1", "2.0.0"]),
    ({"semver": "<2", "latest": 3}, ["1.1", "v1.2.0", "1.10.1"]),
    ({"tag_regex": "^1", "exclude_regex": "debug", "latest": 1}, ["1.10.1"]),
])
def test_select_tags(kwargs, expected):
    assert select_tags(TAGS, **kwargs) == expected


def test_select_tags_errors():
    with pytest.raises(InvalidInput):
        select_tags(TAGS, tag_regex="(")
    with pytest.raises(InvalidInput):
        select_tags(TAGS, latest=0)
