# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""The copy engine behind ``registry_sync`` and ``registry_image``: carrying out a plan.

:mod:`_plan` decides (HEADs only) what to copy, skip and prune; ``execute`` does it with one
bounded worker pool (:mod:`_pool`) shared by every image and blob of the run. The main thread
is a small scheduler: worker tasks never wait for other tasks (a waiting worker could
dead-lock a bounded pool), they return and the scheduler submits what became ready. The order
per image is fixed: blobs, then child manifests (by digest), then the index, the tag last. An
interrupted run therefore never leaves a tag on a half-pushed image, and a re-run finishes the
job (present blobs and child manifests are found by HEAD and skipped).

Blobs are de-duplicated in flight: one task per (destination repository, digest), and one
*upload* per digest per destination registry; the other repositories of that registry wait for
it and then mount it (``POST /blobs/uploads/?mount=&from=``), falling back to an upload when
the registry refuses the mount. Blob bodies stream from the source to the destination through
the client's verifying reader (:class:`_transport.VerifyingReader`); a body that does not hash
to its digest is never completed on the destination.
"""

from __future__ import annotations

import queue
import time
from typing import Any

from ansible_collections.dockyard.registry.plugins.module_utils._errors import (
    RegistryError,
    ServerError,
    Unreachable,
    Unsupported,
)
from ansible_collections.dockyard.registry.plugins.module_utils._manifest import Manifest
from ansible_collections.dockyard.registry.plugins.module_utils._plan import Plan, PlannedCopy, registry_key
from ansible_collections.dockyard.registry.plugins.module_utils._pool import worker_pool

__all__ = [
    "CopyResult",
    "execute",
    "retag",
]

# Whole-blob attempts on top of the client's own retries (which already re-open the source
# through ``open_stream``): one more fresh start once the client's retry budget is spent.
BLOB_ATTEMPTS = 2
BLOB_RETRY_BASE = 0.5
# Blobs up to this size are uploaded without a HEAD first into a repository that had no tag
# (a cold copy): the HEAD would almost always say 404, and costs a round trip per blob. A
# larger blob is HEADed, so an interrupted copy resumed later does not send it again.
HEADLESS_BLOB_LIMIT = 1024 * 1024


# --------------------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------------------

class CopyResult:
    def __init__(self) -> None:
        self.copied: list[str] = []
        self.skipped: list[str] = []
        self.pruned: list[str] = []
        self.failed: list[dict] = []
        self.errors: list[RegistryError] = []  # the exceptions behind ``failed``
        self.bytes_copied = 0
        self.blobs_uploaded = 0
        self.blobs_mounted = 0
        self.blobs_skipped = 0
        self.duration = 0.0
        self.digests: dict[str, str] = {}  # destination reference -> digest

    @property
    def changed(self) -> bool:
        return bool(self.copied or self.pruned)

    def add_failure(self, reference: Any, error: BaseException, source: Any = None) -> None:
        self.errors.append(error)
        entry = {"reference": str(reference), "error": str(error),
                 "error_kind": getattr(error, "kind", "error")}
        if source is not None:
            entry["source"] = str(source)
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
# Execution
# --------------------------------------------------------------------------------------

class _Cancelled(RegistryError):
    kind = "cancelled"


class _ImageRun:
    def __init__(self, planned: PlannedCopy, src, dst, same_registry: bool, fresh: bool = False) -> None:
        self.planned = planned
        self.job = planned.job
        self.src = src
        self.dst = dst
        self.same_registry = same_registry
        self.fresh = fresh          # the destination repository had no tag when planned
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
        self.dst_registry = image.job.destination.registry.display
        self.same_registry = image.same_registry
        self.fresh = image.fresh
        self.waiters: list[tuple] = []          # (image, callback)
        self.followers: list[_BlobTask] = []    # waiting for this upload to mount from it
        self.done = False
        self.error: RegistryError | None = None


class _Executor:
    def __init__(self, plan: Plan, concurrency: int, fail_fast: bool, result: CopyResult,
                 retry_stats: Any = None) -> None:
        self.plan = plan
        self.concurrency = max(1, int(concurrency))
        self.fail_fast = fail_fast
        self.result = result
        self.retry_stats = retry_stats
        self.pool: Any = None
        self.pending: dict = {}                 # future -> (on_value, on_error, is_dead)
        # futures as they complete (their done callback puts them here): the scheduler takes
        # one at a time, O(1) each, where ``wait(FIRST_COMPLETED)`` walked every pending future
        # on every call (a thousand images keep a thousand futures pending)
        self.completed: Any = queue.SimpleQueue()
        self.blobs: dict[tuple, _BlobTask] = {}     # (registry key, repo, digest) -> task
        self.owners: dict[tuple, _BlobTask] = {}    # (registry key, digest) -> the task doing the one upload
        self.known: dict[tuple, str] = {}       # (registry key, digest) -> repository that has it
        self.stopping = False
        self.images: list[_ImageRun] = []

    # --- scheduling -------------------------------------------------------------------
    def submit(self, image, func, callback, *args) -> None:
        if self.stopping or image.failed:
            return
        self._submit(func, args, callback, lambda exc: self.fail(image, exc),
                     lambda: image.failed)

    def _submit(self, func, args: tuple, on_value, on_error, is_dead) -> None:
        future = self.pool.submit(func, *args)
        self.pending[future] = (on_value, on_error, is_dead)
        future.add_done_callback(self.completed.put)

    def run(self) -> None:
        self.pool = worker_pool(self.concurrency)
        try:
            for planned in self.plan.copies:
                if planned.action != "copy":
                    continue
                job = planned.job
                dst_key = registry_key(job.destination.registry)
                image = _ImageRun(planned, self.plan.src_client_for(job.source.registry),
                                  self.plan.dst_client_for(job.destination.registry),
                                  registry_key(job.source.registry) == dst_key,
                                  (dst_key, job.destination.repository) in self.plan.fresh)
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
            future = self.completed.get()
            entry = self.pending.pop(future, None)
            # None: cancelled when the run stopped, already off the books
            if entry is not None and not future.cancelled():
                self.settle(future, *entry)
            if self.stopping:
                for pending in list(self.pending):
                    if pending.cancel():
                        self.pending.pop(pending, None)

    @staticmethod
    def settle(future, on_value, on_error, is_dead) -> None:
        try:
            value = future.result()
        except RegistryError as exc:
            on_error(exc)
            return
        except Exception as exc:  # pylint: disable=broad-except
            on_error(ServerError("unexpected error: %s: %s" % (type(exc).__name__, exc)))
            return
        if is_dead():
            return
        try:
            on_value(value)
        except RegistryError as exc:
            on_error(exc)

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
        prefetched = image.planned.manifest
        if image.planned.source_digest and not image.fresh:
            # The whole image may already be in the destination under its digest (another
            # tag has it): then only the tag is missing, no blob needs a look. Not asked in a
            # repository without tags: a top manifest is only ever put with its tag.
            self.submit(image, image.dst.manifest_head, lambda desc: self.on_top_head(node, desc),
                        dest.repository, image.planned.source_digest)
        elif prefetched is not None:
            try:
                self.on_manifest(node, prefetched)
            except RegistryError as exc:
                # a schema 1 or malformed manifest the plan fetched: this image fails, the run goes on
                self.fail(image, exc)
        else:
            self.submit(image, image.src.manifest_get, lambda m: self.on_manifest(node, m),
                        job.source.repository, node.source_ref)

    def on_top_head(self, node: _ManifestNode, desc) -> None:
        image = node.image
        present = desc is not None and desc.digest in (None, node.expected_digest)
        if image.planned.manifest is not None:
            self.on_manifest(node, image.planned.manifest, already_present=present)
            return
        self.submit(image, image.src.manifest_get,
                    lambda m: self.on_manifest(node, m, already_present=present),
                    image.job.source.repository, node.source_ref)

    def on_manifest(self, node: _ManifestNode, manifest: Manifest, already_present: bool = False) -> None:
        # fetched by digest (the client verified it) or the plan's own filtered index
        image = node.image
        node.manifest = manifest
        if manifest.is_schema1:
            raise Unsupported("%s is a Docker schema 1 manifest, which cannot be copied with its digest "
                              "preserved; convert it to schema 2 or OCI first" % image.job.source,
                              reference=str(image.job.source))
        if already_present:
            self.submit_put(node)
            return
        if manifest.is_index:
            children = manifest.children()
            node.pending = len(children)
            if not children:
                self.submit_put(node)
            for desc in children:
                child = _ManifestNode(image, node, desc.digest, [desc.digest], desc.digest)
                self.submit(image, image.dst.manifest_head, lambda d, c=child: self.on_child_head(c, d),
                            image.job.destination.repository, desc.digest)
            return
        blobs = manifest.blobs()
        node.pending = len(blobs)
        if not blobs:
            self.submit_put(node)
        for blob in blobs:
            self.request_blob(image, blob.digest, blob.size, lambda n=node: self.dep_done(n))

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
        self.result.copied.append(str(image.job.destination))
        self.result.digests[str(image.job.destination)] = node.manifest.digest

    # --- blobs ------------------------------------------------------------------------------
    def request_blob(self, image: _ImageRun, digest: str, size: int, callback) -> None:
        dest = image.job.destination
        key = (registry_key(dest.registry), dest.repository, digest)
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
        """One blob into one destination repository, in as few requests as it takes.

        A repository of the destination registry known to hold the blob (uploaded earlier in
        this run, or the source repository of a same-registry copy) is asked for a mount
        first, without a HEAD: the POST that asks is also the one that opens the upload
        session when the registry declines. Without one, a HEAD first (it saves the bytes
        when the blob is there), except for small blobs in a repository that had no tag:
        they go straight to the upload."""
        candidate = mount_from if mount_from and mount_from != task.repository else None
        if candidate is None and task.same_registry and task.src_repository != task.repository:
            candidate = task.src_repository
        if candidate is None and not (task.fresh and 0 <= task.size <= HEADLESS_BLOB_LIMIT):
            if task.dst.blob_head(task.repository, task.digest) is not None:
                return "skipped"
        return self.upload_blob(task, candidate)

    def upload_blob(self, task: _BlobTask, mount_from: str | None = None) -> str:
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._upload_once(task, mount_from)
            except (ServerError, Unreachable):
                # the client's retries are spent: one fresh start of the whole blob
                if attempt >= BLOB_ATTEMPTS:
                    raise
                delay = BLOB_RETRY_BASE * attempt
                if self.retry_stats is not None:
                    self.retry_stats.record(task.dst_registry, None, delay)
                time.sleep(delay)

    def _upload_once(self, task: _BlobTask, mount_from: str | None) -> str:
        readers = []

        def open_stream():
            # called by the client for every attempt: a retried upload starts from a fresh GET
            for old in readers:
                old.close()
            reader = task.src.blob_open(task.src_repository, task.digest, task.size)
            readers.append(reader)
            return reader

        try:
            return task.dst.blob_upload(task.repository, task.digest, None, task.size, open_stream=open_stream,
                                        mount_from=mount_from)
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
            key = (registry_key(ref.registry), ref.repository, planned.digest)
            by_digest.setdefault(key, []).append(planned)
        for (_reg, repository, digest), group in by_digest.items():
            client = self.plan.dst_client_for(group[0].reference.registry)
            self._submit(client.manifest_delete, (repository, digest),
                         lambda _v, g=group: self.result.pruned.extend(str(p.reference) for p in g),
                         lambda exc, g=group: self.prune_failed(g, exc), lambda: False)

    def prune_failed(self, group: list, error: RegistryError) -> None:
        for planned in group:
            self.result.add_failure(planned.reference, error)
        if self.fail_fast:
            self.stopping = True


def execute(plan: Plan, concurrency: int = 4, fail_fast: bool = False,
            check_mode: bool = False, retry_stats: Any = None) -> CopyResult:
    """Carry out ``plan``; in check mode only report it.

    ``retry_stats`` (a ``RetryStats``) counts the engine's own fresh starts of a blob, on top of
    what the clients count.
    """
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
        result.pruned = [str(p.reference) for p in plan.to_prune]
    elif not (fail_fast and result.failed):
        _Executor(plan, concurrency, fail_fast, result, retry_stats).run()
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
        client.manifest_put(repository, tag, manifest.raw, manifest.media_type)
    return changed
