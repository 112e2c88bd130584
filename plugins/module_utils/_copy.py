# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""The copy engine behind ``registry_sync`` and ``registry_image``.

Two phases:

``plan_copies``
    HEADs only. For every job the destination manifest is HEADed by its tag (or digest)
    and the source manifest by its reference; equal digests mean *skip* and nothing else
    is fetched. Prune candidates are HEADed for their digest. Check mode stops here and
    the plan already tells the truth about what would be copied, skipped and pruned.

``execute``
    One bounded ``ThreadPoolExecutor`` shared by every image and blob of the run. The
    main thread is a small scheduler: worker tasks never wait for other tasks (a waiting
    worker could dead-lock a bounded pool), they return and the scheduler submits what
    became ready. The order per image is fixed: blobs, then child manifests (by digest),
    then the index, the tag last. An interrupted run therefore never leaves a tag on a
    half-pushed image, and a re-run finishes the job (present blobs and child manifests
    are found by HEAD and skipped).

Blobs are de-duplicated in flight: one task per (destination repository, digest), and one
*upload* per digest per destination registry; the other repositories of that registry
wait for it and then mount it (``POST /blobs/uploads/?mount=&from=``), falling back to an
upload when the registry refuses the mount. Blob bodies are streamed from the source to
the destination in chunks and hashed while they pass; a body that does not hash to its
digest is never completed on the destination.

The file also holds the tag selection used by ``registry_sync``: a small semver parser
(``v1.2.3``, ``1.2``, ``1``), ranges such as ``>=1.2 <2``, regex filters and ``latest`` N.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import socket
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from ansible_collections.dockyard.registry.plugins.module_utils._client import BlobStream
from ansible_collections.dockyard.registry.plugins.module_utils._errors import (
    DigestMismatch,
    InvalidInput,
    NotFound,
    RegistryError,
    ServerError,
    Unreachable,
    Unsupported,
)

__all__ = [
    "INDEX_MEDIA_TYPES",
    "CopyJob",
    "CopyResult",
    "Plan",
    "PlannedCopy",
    "PlannedPrune",
    "Version",
    "VersionRange",
    "execute",
    "filter_index",
    "manifest_blobs",
    "parse_platform",
    "parse_range",
    "parse_version",
    "plan_copies",
    "retag",
    "select_tags",
]

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_MEDIA_TYPES = (OCI_INDEX, DOCKER_LIST)
SCHEMA1_MEDIA_TYPES = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
# Layers that live outside registries (Windows base layers); never copied.
FOREIGN_LAYER_TYPES = (
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
)

CHUNK_SIZE = 1024 * 1024
# Whole-blob attempts on top of the client's own retries (which already re-open the source
# through ``open_stream``): one more fresh start once the client's retry budget is spent.
BLOB_ATTEMPTS = 2
BLOB_RETRY_BASE = 0.5


def _digest_of(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _ref_str(ref) -> str:
    return str(ref)


def _registry_key(registry) -> tuple:
    return (getattr(registry, "scheme", "https"), registry.host)


# --------------------------------------------------------------------------------------
# Jobs, plan and result
# --------------------------------------------------------------------------------------

class CopyJob:
    """Copy ``source`` (tag or digest) to ``destination`` (tag or digest)."""

    __slots__ = ("source", "destination")

    def __init__(self, source, destination) -> None:
        self.source = source
        self.destination = destination

    def __repr__(self) -> str:
        return "CopyJob(%s -> %s)" % (self.source, self.destination)


class PlannedCopy:
    """One job after the HEADs: ``action`` is ``copy``, ``skip`` or ``fail``."""

    def __init__(self, job: CopyJob, action: str, source_digest: str | None = None,
                 destination_digest: str | None = None, error: RegistryError | None = None,
                 manifest=None) -> None:
        self.job = job
        self.action = action
        self.source_digest = source_digest          # digest the destination will have
        self.destination_digest = destination_digest  # digest before the run (None: absent)
        self.error = error
        self.manifest = manifest                    # pre-fetched top manifest (filtered index)

    @property
    def reference(self) -> str:
        return _ref_str(self.job.destination)


class PlannedPrune:
    """A destination tag to delete; ``digest`` is what it points at."""

    def __init__(self, reference, digest: str | None, action: str = "prune",
                 error: RegistryError | None = None) -> None:
        self.reference = reference
        self.digest = digest
        self.action = action    # "prune", "keep" (digest shared with a selected tag), "gone", "fail"
        self.error = error


class Plan:
    def __init__(self, copies: list, prunes: list, src_client_for, dst_client_for,
                 platforms) -> None:
        self.copies = copies
        self.prunes = prunes
        self.src_client_for = src_client_for
        self.dst_client_for = dst_client_for
        self.platforms = platforms

    def _with(self, action: str) -> list:
        return [p for p in self.copies if p.action == action]

    @property
    def to_copy(self) -> list:
        return self._with("copy")

    @property
    def to_skip(self) -> list:
        return self._with("skip")

    @property
    def to_prune(self) -> list:
        return [p for p in self.prunes if p.action == "prune"]

    @property
    def failures(self) -> list:
        return self._with("fail") + [p for p in self.prunes if p.action == "fail"]


class CopyResult:
    def __init__(self) -> None:
        self.copied = []            # type: list[str]
        self.skipped = []           # type: list[str]
        self.pruned = []            # type: list[str]
        self.failed = []            # type: list[dict]
        self.errors = []            # type: list[RegistryError]  the exceptions behind ``failed``
        self.bytes_copied = 0
        self.blobs_uploaded = 0
        self.blobs_mounted = 0
        self.blobs_skipped = 0
        self.duration = 0.0
        self.digests = {}           # type: dict[str, str]  destination reference -> digest

    @property
    def changed(self) -> bool:
        return bool(self.copied or self.pruned)

    def add_failure(self, reference, error: BaseException, source=None) -> None:
        self.errors.append(error)
        entry = {"reference": _ref_str(reference), "error": str(error),
                 "error_kind": getattr(error, "kind", "error")}
        if source is not None:
            entry["source"] = _ref_str(source)
        self.failed.append(entry)

    def as_dict(self) -> dict:
        return {
            "copied": list(self.copied),
            "skipped": list(self.skipped),
            "pruned": list(self.pruned),
            "failed": list(self.failed),
            "bytes_copied": self.bytes_copied,
            "blobs_uploaded": self.blobs_uploaded,
            "blobs_mounted": self.blobs_mounted,
            "blobs_skipped": self.blobs_skipped,
            "duration": round(self.duration, 3),
        }


# --------------------------------------------------------------------------------------
# Manifests and platforms
# --------------------------------------------------------------------------------------

def _load_json(raw: bytes, what: str) -> dict:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ServerError("%s is not valid JSON: %s" % (what, exc))
    if not isinstance(data, dict):
        raise ServerError("%s is not a JSON object" % what)
    return data


def _media_type(manifest) -> str:
    media_type = getattr(manifest, "media_type", None) or ""
    if media_type and media_type not in ("application/json", "application/octet-stream"):
        return media_type.split(";")[0].strip()
    data = _load_json(manifest.raw, "manifest")
    if data.get("mediaType"):
        return data["mediaType"]
    if "manifests" in data:
        return OCI_INDEX
    return OCI_MANIFEST


def manifest_blobs(data: dict) -> list:
    """``[(digest, size)]`` of the config and layers a single-image manifest references."""
    blobs = []
    seen = set()
    entries = []
    if isinstance(data.get("config"), dict):
        entries.append(data["config"])
    for key in ("layers", "blobs"):
        entries.extend(d for d in data.get(key) or [] if isinstance(d, dict))
    for desc in entries:
        if desc.get("mediaType") in FOREIGN_LAYER_TYPES or desc.get("urls"):
            continue
        digest = desc.get("digest")
        if not digest or digest in seen:
            continue
        seen.add(digest)
        blobs.append((digest, int(desc.get("size") or -1)))
    return blobs


def parse_platform(value: str) -> tuple:
    """``"linux/arm64/v8"`` -> ``("linux", "arm64", "v8")``; the variant is optional."""
    parts = [p.strip() for p in str(value).split("/")]
    if len(parts) not in (2, 3) or not all(parts):
        raise InvalidInput("invalid platform %r: expected os/arch or os/arch/variant, e.g. linux/amd64" % (value,))
    return tuple(parts) if len(parts) == 3 else (parts[0], parts[1], None)


def _platform_matches(desc: dict, wanted: list) -> bool:
    platform = desc.get("platform") or {}
    os_name = platform.get("os")
    arch = platform.get("architecture")
    variant = platform.get("variant")
    for w_os, w_arch, w_variant in wanted:
        if os_name == w_os and arch == w_arch and (w_variant is None or w_variant == variant):
            return True
    return False


def filter_index(raw: bytes, platforms) -> bytes:
    """The index keeping only ``platforms``; byte-exact when nothing is dropped.

    A subset is a new document, hence a new digest (documented for ``platforms``).
    It is serialised compactly with the original key order, so the result is stable
    from run to run and a re-sync sees the same digest.
    """
    if platforms in (None, "all") or platforms == ["all"]:
        return raw
    wanted = [parse_platform(p) for p in platforms]
    data = _load_json(raw, "index")
    manifests = [d for d in data.get("manifests") or [] if isinstance(d, dict)]
    kept = [d for d in manifests if _platform_matches(d, wanted)]
    if not kept:
        found = sorted({"/".join(x for x in ((d.get("platform") or {}).get("os"),
                                             (d.get("platform") or {}).get("architecture"),
                                             (d.get("platform") or {}).get("variant")) if x)
                        for d in manifests})
        raise InvalidInput("no manifest in the index matches platforms %s (the index has: %s)"
                           % (", ".join(platforms), ", ".join(found) or "none"))
    if len(kept) == len(manifests):
        return raw
    data["manifests"] = kept
    return json.dumps(data, separators=(",", ":")).encode("utf-8")


# --------------------------------------------------------------------------------------
# Planning (HEADs only)
# --------------------------------------------------------------------------------------

class _PlanManifest:
    """A manifest fetched during planning (only for a filtered index)."""

    def __init__(self, digest: str, media_type: str, raw: bytes) -> None:
        self.digest = digest
        self.media_type = media_type
        self.raw = raw


def _plan_one(job: CopyJob, src, dst, platforms) -> PlannedCopy:
    source, destination = job.source, job.destination
    try:
        src_desc = src.manifest_head(source.repository, source.reference)
        if src_desc is None:
            raise NotFound("source image %s not found: check the repository name and tag" % source,
                           reference=_ref_str(source))
        if source.digest and src_desc.digest and src_desc.digest != source.digest:
            raise DigestMismatch("source %s answered digest %s" % (source, src_desc.digest),
                                 reference=_ref_str(source))
        target_digest = src_desc.digest or source.digest
        prefetched = None
        subset = platforms not in (None, "all") and list(platforms) != ["all"]
        if subset and (src_desc.media_type in INDEX_MEDIA_TYPES or not src_desc.media_type):
            manifest = src.manifest_get(source.repository, source.reference)
            media_type = _media_type(manifest)
            if media_type in INDEX_MEDIA_TYPES:
                raw = filter_index(manifest.raw, platforms)
                target_digest = _digest_of(raw)
                prefetched = _PlanManifest(target_digest, media_type, raw)
        if destination.digest and target_digest and destination.digest != target_digest:
            raise InvalidInput("destination %s names digest %s but the source has %s"
                               % (destination, destination.digest, target_digest),
                               reference=_ref_str(destination))
        dst_desc = dst.manifest_head(destination.repository, destination.reference)
        dst_digest = dst_desc.digest if dst_desc is not None else None
        if dst_digest is not None and dst_digest == target_digest:
            return PlannedCopy(job, "skip", target_digest, dst_digest)
        return PlannedCopy(job, "copy", target_digest, dst_digest, manifest=prefetched)
    except RegistryError as exc:
        return PlannedCopy(job, "fail", error=exc)


def _run_parallel(func, items: list, concurrency: int) -> list:
    if not items:
        return []
    if concurrency <= 1 or len(items) == 1:
        return [func(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(items))) as pool:
        return list(pool.map(func, items))


def plan_copies(jobs, src_client_for, dst_client_for, platforms="all", prune=(),
                concurrency: int = 4) -> Plan:
    """HEAD every source and destination; return what to copy, skip and prune.

    ``src_client_for(registry)`` / ``dst_client_for(registry)`` return a client for a
    ``Registry``. ``prune`` lists destination references (tags) to delete; a candidate
    whose manifest is also what a selected tag of the same repository will point at is
    kept (``action == "keep"``), because deleting a manifest removes every tag on it.
    """
    jobs = list(jobs)
    if platforms not in (None, "all"):
        platforms = list(platforms)
        for p in platforms:
            if p != "all":
                parse_platform(p)
        if "all" in platforms:
            platforms = "all"

    def plan(job):
        return _plan_one(job, src_client_for(job.source.registry),
                         dst_client_for(job.destination.registry), platforms)

    copies = _run_parallel(plan, jobs, concurrency)

    # digests the selected tags of each destination repository will point at
    kept = {}
    for planned in copies:
        dest = planned.job.destination
        key = (_registry_key(dest.registry), dest.repository)
        for digest in (planned.source_digest, planned.destination_digest if planned.action == "fail" else None):
            if digest:
                kept.setdefault(key, set()).add(digest)

    def head_prune(ref):
        try:
            desc = dst_client_for(ref.registry).manifest_head(ref.repository, ref.reference)
        except RegistryError as exc:
            return PlannedPrune(ref, None, "fail", exc)
        if desc is None:
            return PlannedPrune(ref, None, "gone")
        if desc.digest in kept.get((_registry_key(ref.registry), ref.repository), ()):
            return PlannedPrune(ref, desc.digest, "keep")
        return PlannedPrune(ref, desc.digest, "prune")

    prunes = _run_parallel(head_prune, list(prune), concurrency)
    return Plan(copies, prunes, src_client_for, dst_client_for, platforms)


# --------------------------------------------------------------------------------------
# Streaming with verification
# --------------------------------------------------------------------------------------

class _TransientBlobError(ServerError):
    """A blob body broke off or did not verify; a fresh attempt may succeed."""


class _VerifyingReader:
    """File-like wrapper around the source body that hashes what passes through.

    The final chunk is only handed to the uploader after the whole body verified, so a
    body that does not match its digest never completes on the destination (the
    registry would also refuse it: it checks ``?digest=`` on the closing PUT).
    """

    def __init__(self, stream, digest: str, size: int, reference: str) -> None:
        self._stream = stream
        # the client's BlobStream verifies size and digest itself, withholding the last
        # chunk the same way when it knows the length; hashing 512 MiB twice would only cost CPU
        self._verify = not (isinstance(stream, BlobStream) and stream.size is not None)
        self._digest = digest
        self._size = size
        self._reference = reference
        algo, _sep, self._hex = digest.partition(":")
        if algo != "sha256":
            raise Unsupported("digest algorithm %s of %s is not supported" % (algo, reference))
        self._hash = hashlib.sha256()
        self.count = 0

    def __len__(self) -> int:
        return self._size

    def _raw_read(self, n: int) -> bytes:
        try:
            return self._stream.read(n)
        except http.client.IncompleteRead as exc:
            raise _TransientBlobError("the source body of %s broke off after %d of %d bytes: %s"
                                      % (self._reference, self.count, self._size, exc))
        except (OSError, socket.timeout, http.client.HTTPException) as exc:
            raise _TransientBlobError("reading %s from the source failed after %d bytes: %s"
                                      % (self._reference, self.count, exc))

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = CHUNK_SIZE
        n = min(n, CHUNK_SIZE)
        if self._size >= 0:
            n = min(n, max(self._size - self.count, 0))
            if n == 0:
                self._finish()
                return b""
        chunk = self._raw_read(n)
        if not chunk:
            if self._size >= 0 and self.count < self._size:
                raise _TransientBlobError("the source body of %s ended after %d of %d bytes"
                                          % (self._reference, self.count, self._size))
            self._finish()
            return b""
        if self._verify:
            self._hash.update(chunk)
        self.count += len(chunk)
        if self._size >= 0 and self.count >= self._size:
            self._finish()
        return chunk

    def _finish(self) -> None:
        if self._size >= 0 and self.count != self._size:
            raise DigestMismatch("blob %s: %d bytes instead of %d" % (self._reference, self.count, self._size),
                                 reference=self._reference)
        if self._verify and self._hash.hexdigest() != self._hex:
            raise DigestMismatch("blob %s does not hash to its digest (got sha256:%s); nothing was written"
                                 % (self._reference, self._hash.hexdigest()), reference=self._reference)

    def close(self) -> None:
        try:
            self._stream.close()
        except Exception:  # pylint: disable=broad-except
            pass


# --------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------

class _Cancelled(RegistryError):
    kind = "cancelled"


class _ImageRun:
    def __init__(self, planned: PlannedCopy, src, dst, same_registry: bool) -> None:
        self.planned = planned
        self.job = planned.job
        self.src = src
        self.dst = dst
        self.same_registry = same_registry
        self.failed = False
        self.done = False


class _ManifestNode:
    def __init__(self, image: _ImageRun, parent, source_ref: str, put_refs: list,
                 expected_digest: str | None) -> None:
        self.image = image
        self.parent = parent
        self.source_ref = source_ref
        self.put_refs = put_refs
        self.expected_digest = expected_digest
        self.manifest = None
        self.pending = 0


class _BlobTask:
    def __init__(self, key: tuple, image: _ImageRun, digest: str, size: int) -> None:
        self.key = key              # (registry key, repository, digest)
        self.registry_key = (key[0], digest)
        self.repository = key[1]
        self.digest = digest
        self.size = size
        self.dst = image.dst
        self.src = image.src
        self.src_repository = image.job.source.repository
        self.same_registry = image.same_registry
        self.waiters = []           # [(image, callback)]
        self.followers = []         # _BlobTask waiting for this upload to mount from it
        self.done = False
        self.error = None


class _Executor:
    def __init__(self, plan: Plan, concurrency: int, fail_fast: bool, result: CopyResult) -> None:
        self.plan = plan
        self.concurrency = max(1, int(concurrency))
        self.fail_fast = fail_fast
        self.result = result
        self.pool = None
        self.pending = {}           # future -> (callback, image)
        self.blobs = {}             # (registry key, repo, digest) -> _BlobTask
        self.owners = {}            # (registry key, digest) -> _BlobTask doing the one upload
        self.known = {}             # (registry key, digest) -> repository that has it
        self.stopping = False
        self.images = []

    # --- scheduling -------------------------------------------------------------------
    def submit(self, image, func, callback, *args) -> None:
        if self.stopping or image.failed:
            return
        self._submit(func, args, callback, lambda exc: self.fail(image, exc),
                     lambda: image.failed)

    def _submit(self, func, args: tuple, on_value, on_error, is_dead) -> None:
        future = self.pool.submit(func, *args)
        self.pending[future] = (on_value, on_error, is_dead)

    def run(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=self.concurrency)
        try:
            for planned in self.plan.copies:
                if planned.action != "copy":
                    continue
                job = planned.job
                image = _ImageRun(planned, self.plan.src_client_for(job.source.registry),
                                  self.plan.dst_client_for(job.destination.registry),
                                  _registry_key(job.source.registry) == _registry_key(job.destination.registry))
                self.images.append(image)
                self.start_image(image)
            self.drain()
            if not self.stopping:
                self.start_prunes()
                self.drain()
        finally:
            for future in list(self.pending):
                future.cancel()
            self.pool.shutdown(wait=True)
        for image in self.images:
            if not image.done and not image.failed:
                self.result.add_failure(image.job.destination, _Cancelled(
                    "not copied: fail_fast stopped the run after an earlier failure"), image.job.source)

    def drain(self) -> None:
        while self.pending:
            done, _not_done = wait(list(self.pending), return_when=FIRST_COMPLETED)
            for future in done:
                on_value, on_error, is_dead = self.pending.pop(future)
                if future.cancelled():
                    continue
                try:
                    value = future.result()
                except RegistryError as exc:
                    on_error(exc)
                    continue
                except Exception as exc:  # pylint: disable=broad-except
                    on_error(ServerError("unexpected error: %s: %s" % (type(exc).__name__, exc)))
                    continue
                if is_dead():
                    continue
                try:
                    on_value(value)
                except RegistryError as exc:
                    on_error(exc)
            if self.stopping:
                for future in list(self.pending):
                    if future.cancel():
                        self.pending.pop(future, None)

    def fail(self, image: _ImageRun, error: RegistryError) -> None:
        if not image.failed:
            image.failed = True
            self.result.add_failure(image.job.destination, error, image.job.source)
        if self.fail_fast:
            self.stopping = True

    # --- images and manifests -----------------------------------------------------------
    def start_image(self, image: _ImageRun) -> None:
        job = image.job
        dest = job.destination
        put_refs = [dest.tag] if dest.tag and not dest.digest else [dest.digest or image.planned.source_digest]
        # fetched by the digest the plan saw, so a tag moved meanwhile cannot mix two images
        node = _ManifestNode(image, None, image.planned.source_digest or job.source.reference, put_refs,
                             image.planned.source_digest)
        if image.planned.manifest is not None:
            self.on_manifest(node, image.planned.manifest)
        elif image.planned.source_digest:
            # The whole image may already be in the destination under its digest (another
            # tag has it): then only the tag is missing, no blob needs a look.
            self.submit(image, image.dst.manifest_head, lambda desc: self.on_top_head(node, desc),
                        dest.repository, image.planned.source_digest)
        else:
            self.submit(image, image.src.manifest_get, lambda m: self.on_manifest(node, m),
                        job.source.repository, node.source_ref)

    def on_top_head(self, node: _ManifestNode, desc) -> None:
        image = node.image
        present = desc is not None and desc.digest in (None, node.expected_digest)
        self.submit(image, image.src.manifest_get,
                    lambda m: self.on_manifest(node, m, already_present=present),
                    image.job.source.repository, node.source_ref)

    def on_manifest(self, node: _ManifestNode, manifest, already_present: bool = False) -> None:
        image = node.image
        digest = _digest_of(manifest.raw)
        if node.expected_digest and digest != node.expected_digest:
            raise DigestMismatch("manifest %s@%s fetched from the source hashes to %s"
                                 % (image.job.source.repository, node.expected_digest, digest),
                                 reference=_ref_str(image.job.source))
        node.manifest = _PlanManifest(digest, _media_type(manifest), manifest.raw)
        if node.manifest.media_type in SCHEMA1_MEDIA_TYPES:
            raise Unsupported("%s is a Docker schema 1 manifest, which cannot be copied with its digest "
                              "preserved; convert it to schema 2 or OCI first" % image.job.source,
                              reference=_ref_str(image.job.source))
        if already_present:
            self.submit_put(node)
            return
        data = _load_json(manifest.raw, "manifest of %s" % image.job.source)
        if node.manifest.media_type in INDEX_MEDIA_TYPES:
            children = [d for d in data.get("manifests") or [] if isinstance(d, dict) and d.get("digest")]
            node.pending = len(children)
            if not children:
                self.submit_put(node)
            for desc in children:
                child = _ManifestNode(image, node, desc["digest"], [desc["digest"]], desc["digest"])
                self.submit(image, image.dst.manifest_head, lambda d, c=child: self.on_child_head(c, d),
                            image.job.destination.repository, desc["digest"])
            return
        blobs = manifest_blobs(data)
        node.pending = len(blobs)
        if not blobs:
            self.submit_put(node)
        for digest, size in blobs:
            self.request_blob(image, digest, size, lambda n=node: self.dep_done(n))

    def on_child_head(self, child: _ManifestNode, desc) -> None:
        image = child.image
        if desc is not None:
            # Manifests are only ever put after their blobs, so a present child is complete.
            self.dep_done(child.parent)
            return
        self.submit(image, image.src.manifest_get, lambda m: self.on_manifest(child, m),
                    image.job.source.repository, child.source_ref)

    def dep_done(self, node: _ManifestNode) -> None:
        node.pending -= 1
        if node.pending == 0:
            self.submit_put(node)

    def submit_put(self, node: _ManifestNode) -> None:
        image = node.image
        self.submit(image, self.put_manifest, lambda _v: self.on_put(node), node)

    def put_manifest(self, node: _ManifestNode) -> None:
        image = node.image
        manifest = node.manifest
        for ref in node.put_refs:
            image.dst.manifest_put(image.job.destination.repository, ref, manifest.raw, manifest.media_type)

    def on_put(self, node: _ManifestNode) -> None:
        if node.parent is not None:
            self.dep_done(node.parent)
            return
        image = node.image
        image.done = True
        self.result.copied.append(_ref_str(image.job.destination))
        self.result.digests[_ref_str(image.job.destination)] = node.manifest.digest

    # --- blobs ------------------------------------------------------------------------------
    def request_blob(self, image: _ImageRun, digest: str, size: int, callback) -> None:
        dest = image.job.destination
        key = (_registry_key(dest.registry), dest.repository, digest)
        task = self.blobs.get(key)
        if task is not None:
            if task.done:
                if task.error is None:
                    callback()
                else:
                    raise task.error
            else:
                task.waiters.append((image, callback))
            return
        task = _BlobTask(key, image, digest, size)
        task.waiters.append((image, callback))
        self.blobs[key] = task
        owner = self.owners.get(task.registry_key)
        if owner is not None and not owner.done:
            owner.followers.append(task)
            return
        if owner is None:
            self.owners[task.registry_key] = task
        self.start_blob(task)

    def start_blob(self, task: _BlobTask) -> None:
        if self.stopping:
            return
        if all(image.failed for image, _cb in task.waiters) and not task.followers:
            # every image that wanted it failed already: do not spend the bandwidth
            self.finish_blob(task, _Cancelled("not needed any more"))
            return
        mount_from = self.known.get(task.registry_key)
        # blob failures go to every image waiting for the blob, not to one of them
        self._submit(self.copy_blob, (task, mount_from),
                     lambda outcome: self.finish_blob(task, None, outcome),
                     lambda exc: self.finish_blob(task, exc), lambda: False)

    def finish_blob(self, task: _BlobTask, error, outcome=None) -> None:
        task.done = True
        task.error = error
        if error is None:
            self.known.setdefault(task.registry_key, task.repository)
            if outcome == "uploaded":
                self.result.blobs_uploaded += 1
                self.result.bytes_copied += max(task.size, 0)
            elif outcome == "mounted":
                self.result.blobs_mounted += 1
            else:
                self.result.blobs_skipped += 1
        for image, callback in task.waiters:
            if image.failed:
                continue
            if error is not None:
                self.fail(image, error)
                continue
            try:
                callback()
            except RegistryError as exc:
                self.fail(image, exc)
        followers, task.followers = task.followers, []
        if not followers:
            return
        if error is not None and self.owners.get(task.registry_key) is task:
            # the upload failed: the next repository uploads it itself
            new_owner = followers.pop(0)
            self.owners[task.registry_key] = new_owner
            new_owner.followers.extend(followers)
            self.start_blob(new_owner)
            return
        for follower in followers:
            self.start_blob(follower)

    def copy_blob(self, task: _BlobTask, mount_from: str | None) -> str:
        dst = task.dst
        if dst.blob_head(task.repository, task.digest) is not None:
            return "skipped"
        candidates = []
        if mount_from and mount_from != task.repository:
            candidates.append(mount_from)
        if task.same_registry and task.src_repository not in candidates and task.src_repository != task.repository:
            candidates.append(task.src_repository)
        for repository in candidates:
            try:
                if dst.blob_mount(task.repository, task.digest, repository):
                    return "mounted"
            except NotFound:
                continue
        self.upload_blob(task)
        return "uploaded"

    def upload_blob(self, task: _BlobTask) -> None:
        reference = "%s@%s" % (task.src_repository, task.digest)
        attempt = 0
        while True:
            attempt += 1
            try:
                self._upload_once(task, reference)
                return
            except (_TransientBlobError, ServerError, Unreachable) as exc:
                if attempt >= BLOB_ATTEMPTS:
                    raise
                if isinstance(exc, DigestMismatch):
                    raise
                time.sleep(BLOB_RETRY_BASE * attempt)

    def _upload_once(self, task: _BlobTask, reference: str) -> None:
        readers = []

        def open_stream():
            # called by the client for every attempt: a retried upload starts from a fresh GET
            for old in readers:
                old.close()
            reader = _VerifyingReader(task.src.blob_open(task.src_repository, task.digest),
                                      task.digest, task.size, reference)
            readers.append(reader)
            return reader

        try:
            task.dst.blob_upload(task.repository, task.digest, None, task.size, open_stream=open_stream)
        finally:
            for reader in readers:
                reader.close()

    # --- prune ---------------------------------------------------------------------------------
    def start_prunes(self) -> None:
        by_digest = {}
        for planned in self.plan.prunes:
            if planned.action != "prune":
                continue
            ref = planned.reference
            key = (_registry_key(ref.registry), ref.repository, planned.digest)
            by_digest.setdefault(key, []).append(planned)
        for (_reg, repository, digest), group in by_digest.items():
            client = self.plan.dst_client_for(group[0].reference.registry)
            self._submit(client.manifest_delete, (repository, digest),
                         lambda _v, g=group: self.result.pruned.extend(_ref_str(p.reference) for p in g),
                         lambda exc, g=group: self.prune_failed(g, exc), lambda: False)

    def prune_failed(self, group: list, error: RegistryError) -> None:
        for planned in group:
            self.result.add_failure(planned.reference, error)
        if self.fail_fast:
            self.stopping = True


def execute(plan: Plan, concurrency: int = 4, fail_fast: bool = False,
            check_mode: bool = False) -> CopyResult:
    """Carry out ``plan``; in check mode only report it."""
    started = time.monotonic()
    result = CopyResult()
    for planned in plan.copies:
        if planned.action == "skip":
            result.skipped.append(planned.reference)
            result.digests[planned.reference] = planned.source_digest
        elif planned.action == "fail":
            result.add_failure(planned.job.destination, planned.error, planned.job.source)
    for planned in plan.prunes:
        if planned.action == "fail":
            result.add_failure(planned.reference, planned.error)
    if check_mode:
        result.copied = [p.reference for p in plan.to_copy]
        for p in plan.to_copy:
            result.digests[p.reference] = p.source_digest
        result.pruned = [_ref_str(p.reference) for p in plan.to_prune]
    elif not (fail_fast and result.failed):
        _Executor(plan, concurrency, fail_fast, result).run()
    result.duration = time.monotonic() - started
    return result


# --------------------------------------------------------------------------------------
# Extra tags on the same digest (registry_image ``tags``)
# --------------------------------------------------------------------------------------

def retag(client, repository: str, digest: str, tags, check_mode: bool = False) -> list:
    """Make every tag in ``tags`` point at ``digest`` server-side; return the changed tags.

    The manifest is put again under each tag with its exact bytes, so the digest stays the
    same and no blob moves.
    """
    changed = []
    manifest = None
    for tag in tags:
        desc = client.manifest_head(repository, tag)
        if desc is not None and desc.digest == digest:
            continue
        changed.append(tag)
        if check_mode:
            continue
        if manifest is None:
            manifest = client.manifest_get(repository, digest)
        client.manifest_put(repository, tag, manifest.raw, _media_type(manifest))
    return changed


# --------------------------------------------------------------------------------------
# Tag selection: semver, ranges, regexes, latest N
# --------------------------------------------------------------------------------------

_VERSION_RE = re.compile(
    r"^[vV]?(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?(?:\.(0|[1-9]\d*))?"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?$")


class Version:
    """A semantic version parsed from a tag; missing minor/patch count as 0."""

    __slots__ = ("major", "minor", "patch", "prerelease", "parts")

    def __init__(self, major: int, minor: int, patch: int, prerelease: tuple = (), parts: int = 3) -> None:
        self.major = major
        self.minor = minor
        self.patch = patch
        self.prerelease = prerelease
        self.parts = parts

    def _key(self) -> tuple:
        # a release sorts after its pre-releases; numeric identifiers before alphanumeric ones
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 1 if not self.prerelease else 0, pre)

    def __eq__(self, other) -> bool:
        return isinstance(other, Version) and self._key() == other._key()

    def __lt__(self, other) -> bool:
        return self._key() < other._key()

    def __le__(self, other) -> bool:
        return self._key() <= other._key()

    def __gt__(self, other) -> bool:
        return self._key() > other._key()

    def __ge__(self, other) -> bool:
        return self._key() >= other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        text = "%d.%d.%d" % (self.major, self.minor, self.patch)
        return text + ("-" + ".".join(self.prerelease) if self.prerelease else "")


def parse_version(tag: str):
    """``Version`` for tags such as ``1``, ``1.2``, ``v1.2.3``, ``1.2.3-rc.1``; else None."""
    match = _VERSION_RE.match(tag or "")
    if not match:
        return None
    major, minor, patch, pre = match.groups()
    parts = 1 + (minor is not None) + (patch is not None)
    return Version(int(major), int(minor or 0), int(patch or 0),
                   tuple(pre.split(".")) if pre else (), parts)


_COMPARATOR_RE = re.compile(r"^(>=|<=|==|!=|>|<|=|\^|~)?\s*(.+)$")


class VersionRange:
    """``>=1.2 <2``: comparators separated by spaces must all hold; ``||`` separates
    alternatives. Partial versions follow npm: ``1.2`` alone means ``>=1.2.0 <1.3.0``,
    ``^1.2`` means ``>=1.2.0 <2.0.0``, ``~1.2`` means ``>=1.2.0 <1.3.0``.
    Pre-release tags (``1.3.0-rc1``) never match a range.
    """

    def __init__(self, text: str, alternatives: list) -> None:
        self.text = text
        self.alternatives = alternatives    # [[(op, Version)]]

    def matches(self, version) -> bool:
        if version is None or version.prerelease:
            return False
        for comparators in self.alternatives:
            if all(_compare(version, op, bound) for op, bound in comparators):
                return True
        return False

    def __repr__(self) -> str:
        return "VersionRange(%r)" % self.text


def _compare(version: Version, op: str, bound: Version) -> bool:
    if op == ">=":
        return version >= bound
    if op == ">":
        return version > bound
    if op == "<=":
        return version <= bound
    if op == "<":
        return version < bound
    if op == "!=":
        return version != bound
    return version == bound


def _bump(version: Version, index: int) -> Version:
    if index == 0:
        return Version(version.major + 1, 0, 0, (), 3)
    if index == 1:
        return Version(version.major, version.minor + 1, 0, (), 3)
    return Version(version.major, version.minor, version.patch + 1, (), 3)


def _expand(op: str, version: Version, text: str) -> list:
    exact = Version(version.major, version.minor, version.patch, version.prerelease, 3)
    if op in (">=", ">", "<=", "<", "!="):
        if op == ">" and version.parts < 3:
            return [(">=", _bump(version, version.parts - 1))]
        if op == "<=" and version.parts < 3:
            return [("<", _bump(version, version.parts - 1))]
        return [(op, exact)]
    if op == "^":
        first_nonzero = 0 if version.major or version.parts == 1 else (1 if version.minor or version.parts == 2 else 2)
        return [(">=", exact), ("<", _bump(version, first_nonzero))]
    if op == "~":
        return [(">=", exact), ("<", _bump(version, 0 if version.parts == 1 else 1))]
    # "=", "==" or none: a partial version is a wildcard on the missing parts
    if version.parts == 3:
        return [("==", exact)]
    return [(">=", exact), ("<", _bump(version, version.parts - 1))]


def parse_range(text: str) -> VersionRange:
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("semver range must be a non-empty string such as '>=1.2 <2'")
    alternatives = []
    for alternative in text.split("||"):
        # allow ">= 1.2" as well as ">=1.2"
        tokens = re.findall(r"(?:>=|<=|==|!=|>|<|=|\^|~)?\s*[^\s<>=!^~|]+", alternative)
        if not tokens or "".join(tokens).replace(" ", "") != alternative.replace(" ", ""):
            raise InvalidInput("invalid semver range %r: use comparators like '>=1.2 <2', '^1.4', '~2.1' or '1.x'"
                               % text)
        comparators = []
        for token in tokens:
            match = _COMPARATOR_RE.match(token.strip())
            op, value = match.group(1) or "", match.group(2).strip()
            if value in ("*", "x", "X"):
                continue
            value = re.sub(r"\.[xX*]$", "", re.sub(r"\.[xX*]$", "", value))
            version = parse_version(value)
            if version is None:
                raise InvalidInput("invalid version %r in semver range %r" % (value, text))
            comparators.extend(_expand(op, version, value))
        alternatives.append(comparators)
    return VersionRange(text, alternatives)


def select_tags(tags, tag_regex: str | None = None, exclude_regex: str | None = None,
                semver: str | None = None, latest: int | None = None) -> list:
    """Apply the filters in this order: ``tag_regex``, ``exclude_regex``, ``semver``, ``latest``.

    Regexes use ``re.search`` (anchor them with ``^…$`` to match whole tags). ``latest``
    keeps the N highest versions; tags that are not versions are dropped by it, and so
    are pre-releases. The result keeps the input order.
    """
    try:
        include = re.compile(tag_regex) if tag_regex else None
        exclude = re.compile(exclude_regex) if exclude_regex else None
    except re.error as exc:
        raise InvalidInput("invalid regular expression: %s" % exc)
    selected = [t for t in tags if (include is None or include.search(t))
                and (exclude is None or not exclude.search(t))]
    if semver:
        version_range = parse_range(semver)
        selected = [t for t in selected if version_range.matches(parse_version(t))]
    if latest is not None:
        if int(latest) < 1:
            raise InvalidInput("latest must be 1 or more")
        versions = [(parse_version(t), t) for t in selected]
        versions = [(v, t) for v, t in versions if v is not None and not v.prerelease]
        versions.sort(key=lambda vt: (vt[0], vt[0].parts, vt[1]), reverse=True)
        keep = set(t for _v, t in versions[:int(latest)])
        selected = [t for t in selected if t in keep]
    return selected
