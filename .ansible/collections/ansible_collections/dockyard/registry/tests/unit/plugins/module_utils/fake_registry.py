# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""An in-memory registry with the client's methods, for the planner, the engine and the modules.

The fake enforces the rules a real distribution registry does (a manifest PUT needs its blobs
and child manifests, an upload must hash to its digest) and hands out the client's own content
models (Descriptor, Manifest, VerifyingReader); the real client and registries are exercised by
test_client and the integration targets.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading

from ansible_collections.dockyard.registry.plugins.module_utils._errors import (
    DigestMismatch,
    NotFound,
    ServerError,
)
from ansible_collections.dockyard.registry.plugins.module_utils._manifest import (
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Manifest,
)
from ansible_collections.dockyard.registry.plugins.module_utils._transport import VerifyingReader

__all__ = ["FakeRegistry", "FakeClient", "sha"]

CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeBody(io.BytesIO):
    """A response body: read() and close()."""


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
        self.cut_bodies = {}          # digest -> number of downloads left that end halfway
        self.lock = threading.Lock()

    def client(self):
        return FakeClient(self)

    # helpers for tests
    def add_blob(self, repo, data):
        self.blobs.setdefault(repo, {})[sha(data)] = data
        return sha(data)

    def add_image(self, repo, tag, layers, config=b'{"architecture":"amd64","os":"linux"}'):
        descs = []
        for number, data in enumerate([config] + list(layers)):
            self.add_blob(repo, data)
            descs.append({"mediaType": LAYER if number else CONFIG, "digest": sha(data), "size": len(data)})
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
        self.fail_tags = {}     # repo -> exception raised by tags() (after the first n calls: fail_tags_after)
        self.fail_tags_after = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        pass

    def catalog(self):
        self._call("catalog", None, None)
        return sorted(self.r.tags)

    def _call(self, *call):
        with self.r.lock:
            self.r.calls.append(call)

    def manifest_head(self, repo, ref):
        self._call("manifest_head", repo, ref)
        digest = self.r.resolve(repo, ref)
        if digest is None:
            return None
        media_type, raw = self.r.manifests[repo][digest]
        return Descriptor(digest, media_type, len(raw))

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

    def blob_open(self, repo, digest, size=None):
        """Like the client: a VerifyingReader over the body (which may be cut halfway)."""
        self._call("blob_open", repo, digest)
        data = self.r.blobs.get(repo, {}).get(digest)
        if data is None:
            raise NotFound("blob unknown")
        with self.r.lock:
            cut = self.r.cut_bodies.get(digest, 0)
            if cut:
                self.r.cut_bodies[digest] = cut - 1
        body = FakeBody(data[:len(data) // 2] if cut else data)
        return VerifyingReader(body, digest, size if size is not None and size >= 0 else len(data),
                               lambda: {"registry": self.r.host, "reference": "%s@%s" % (repo, digest)})

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

    def blob_upload(self, repo, digest, stream, size, open_stream=None, mount_from=None):
        """Like the client: with ``mount_from`` a mount is asked for first (recorded as a
        ``blob_mount`` call); when the registry declines, the bytes go up. Returns the outcome."""
        if mount_from is not None and self.blob_mount(repo, digest, mount_from):
            return "mounted"
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
            hasher.update(chunk)
            body.append(chunk)
        data = b"".join(body)
        if "sha256:" + hasher.hexdigest() != digest or len(data) != size:
            raise DigestMismatch("digest invalid")
        with self.r.lock:
            self.r.blobs.setdefault(repo, {})[digest] = data
            self.r.events.append(("blob", repo, digest))
        return "uploaded"

    def tags(self, repo):
        self._call("tags", repo, None)
        if repo in self.fail_tags:
            if self.fail_tags_after <= 0:
                raise self.fail_tags[repo]
            self.fail_tags_after -= 1
        if repo not in self.r.tags:
            raise NotFound("name unknown")
        return sorted(self.r.tags[repo])
