# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""Planning a copy: what to copy, what to skip, what to prune - from HEADs and tag lists alone.

``normalise_repositories`` and ``select_sync`` turn registry_sync's ``repositories`` into copy
jobs and prune candidates (listing source tags, and destination tags for prune, in parallel);
``plan_copies`` HEADs every source and destination: equal digests mean *skip* and nothing else is
fetched. Check mode stops after the plan, and the plan already tells the truth about what would
be copied, skipped and pruned. :mod:`_copy` carries a plan out.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

from ansible_collections.dockyard.registry.plugins.module_utils._errors import (
    DigestMismatch,
    InvalidInput,
    NotFound,
    RegistryError,
)
from ansible_collections.dockyard.registry.plugins.module_utils._manifest import (
    INDEX_MEDIA_TYPES,
    Manifest,
    parse_platform,
)
from ansible_collections.dockyard.registry.plugins.module_utils._pool import parallel_map
from ansible_collections.dockyard.registry.plugins.module_utils._reference import (
    ImageReference,
    Registry,
    repository_items,
    validate_repository,
    validate_tag,
)
from ansible_collections.dockyard.registry.plugins.module_utils._tags import TagFilter

__all__ = [
    "REPOSITORY_KEYS",
    "CopyJob",
    "Plan",
    "PlannedCopy",
    "PlannedPrune",
    "RepositorySelection",
    "SyncSelection",
    "normalise_platforms",
    "normalise_repositories",
    "plan_copies",
    "registry_key",
    "select_sync",
]

REPOSITORY_KEYS = ("name", "tags", "tag_regex", "exclude_regex", "semver", "latest", "destination")


def registry_key(registry: Registry) -> tuple:
    """What makes two registries the same one (blobs can be mounted within it)."""
    return (getattr(registry, "scheme", "https"), registry.host)


def normalise_platforms(platforms: Sequence[str] | str | None) -> str | list[str]:
    """``"all"`` or the validated list of ``os/arch[/variant]``; ``all`` anywhere in the list wins."""
    if platforms in (None, "all") or "all" in list(platforms or []):
        return "all"
    platforms = list(platforms)  # type: ignore[arg-type]
    for platform in platforms:
        parse_platform(platform)
    return platforms


# --------------------------------------------------------------------------------------------
# Jobs and the plan
# --------------------------------------------------------------------------------------------

class CopyJob:
    """Copy ``source`` (tag or digest) to ``destination`` (tag or digest)."""

    __slots__ = ("source", "destination")

    def __init__(self, source: ImageReference, destination: ImageReference) -> None:
        self.source = source
        self.destination = destination

    def __repr__(self) -> str:
        return "CopyJob(%s -> %s)" % (self.source, self.destination)


class PlannedCopy:
    """One job after the HEADs: ``action`` is ``copy``, ``skip`` or ``fail``."""

    def __init__(self, job: CopyJob, action: str, source_digest: str | None = None,
                 destination_digest: str | None = None, error: RegistryError | None = None,
                 manifest: Manifest | None = None) -> None:
        self.job = job
        self.action = action
        self.source_digest = source_digest          # digest the destination will have
        self.destination_digest = destination_digest  # digest before the run (None: absent)
        self.error = error
        self.manifest = manifest                    # pre-fetched top manifest (a filtered index)

    @property
    def reference(self) -> str:
        return str(self.job.destination)


class PlannedPrune:
    """A destination tag to delete; ``digest`` is what it points at."""

    def __init__(self, reference: ImageReference, digest: str | None, action: str = "prune",
                 error: RegistryError | None = None) -> None:
        self.reference = reference
        self.digest = digest
        self.action = action    # "prune", "keep" (digest shared with a selected tag), "gone", "fail"
        self.error = error


class Plan:
    def __init__(self, copies: list[PlannedCopy], prunes: list[PlannedPrune], src_client_for: Callable,
                 dst_client_for: Callable, platforms: str | list[str], fresh: set | None = None) -> None:
        self.copies = copies
        self.prunes = prunes
        self.src_client_for = src_client_for
        self.dst_client_for = dst_client_for
        self.platforms = platforms
        # (registry key, repository) of destination repositories without a tag before the run:
        # a hint for the engine (small blobs go straight to an upload, without a HEAD each)
        self.fresh = fresh if fresh is not None else set()

    def _with(self, action: str) -> list[PlannedCopy]:
        return [p for p in self.copies if p.action == action]

    @property
    def to_copy(self) -> list[PlannedCopy]:
        return self._with("copy")

    @property
    def to_skip(self) -> list[PlannedCopy]:
        return self._with("skip")

    @property
    def to_prune(self) -> list[PlannedPrune]:
        return [p for p in self.prunes if p.action == "prune"]

    @property
    def failures(self) -> list:
        return self._with("fail") + [p for p in self.prunes if p.action == "fail"]


def _source_side(job: CopyJob, src: Any, platforms: str | list[str], dst_absent: bool) -> tuple:
    """(digest the destination will have, a manifest fetched on the way or None). When the
    destination is known not to have the tag, the manifest is fetched at once (a GET instead of
    a HEAD now and a GET later)."""
    source = job.source
    if dst_absent:
        try:
            manifest = src.manifest_get(source.repository, source.reference)
        except NotFound:
            manifest = None
        src_desc = manifest.descriptor() if manifest is not None else None
    else:
        manifest = None
        src_desc = src.manifest_head(source.repository, source.reference)
    if src_desc is None:
        raise NotFound("source image %s not found: check the repository name and tag" % source,
                       reference=str(source))
    if source.digest and src_desc.digest and src_desc.digest != source.digest:
        raise DigestMismatch("source %s answered digest %s" % (source, src_desc.digest), reference=str(source))
    target_digest = src_desc.digest or source.digest
    prefetched = manifest
    if platforms != "all" and (src_desc.media_type in INDEX_MEDIA_TYPES or not src_desc.media_type):
        if manifest is None:
            manifest = src.manifest_get(source.repository, source.reference)
        if manifest.is_index:
            prefetched = manifest.filtered(platforms)
            target_digest = prefetched.digest
    return target_digest, prefetched


def _destination_side(job: CopyJob, dst: Any) -> str | None:
    """The digest the destination reference has now (None: absent)."""
    desc = dst.manifest_head(job.destination.repository, job.destination.reference)
    return desc.digest if desc is not None else None


def _combine(job: CopyJob, source: Any, destination: Any, dst_absent: bool) -> PlannedCopy:
    """The plan of one job from what its source and destination said (each a value or the
    RegistryError it raised; a source error wins)."""
    try:
        if isinstance(source, RegistryError):
            raise source
        target_digest, prefetched = source
        if job.destination.digest and target_digest and job.destination.digest != target_digest:
            raise InvalidInput("destination %s names digest %s but the source has %s"
                               % (job.destination, job.destination.digest, target_digest),
                               reference=str(job.destination))
        if dst_absent:
            return PlannedCopy(job, "copy", target_digest, None, manifest=prefetched)
        if isinstance(destination, RegistryError):
            raise destination
        if destination is not None and destination == target_digest:
            return PlannedCopy(job, "skip", target_digest, destination)
        return PlannedCopy(job, "copy", target_digest, destination, manifest=prefetched)
    except RegistryError as exc:
        return PlannedCopy(job, "fail", error=exc)


def _outcome(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except RegistryError as exc:
        return exc


def _plan_jobs(entries: list, platforms: str | list[str], concurrency: int) -> list[PlannedCopy]:
    """Plan ``(job, src client, dst client, dst_absent)`` entries: every source and destination
    request of them at once (the two sides of a job do not wait for each other)."""
    calls = []
    for job, src, dst, absent in entries:
        calls.append(functools.partial(_source_side, job, src, platforms, absent))
        calls.append(None if absent else functools.partial(_destination_side, job, dst))
    results = parallel_map(lambda call: None if call is None else _outcome(call), calls, concurrency)
    return [_combine(entry[0], results[2 * n], results[2 * n + 1], entry[3]) for n, entry in enumerate(entries)]


def plan_copies(jobs: Sequence[CopyJob], src_client_for: Callable, dst_client_for: Callable,
                platforms: Sequence[str] | str | None = "all", prune: Sequence[ImageReference] = (),
                concurrency: int = 4,
                prepare_destination: Callable[[Registry, str], None] | None = None) -> Plan:
    """HEAD every source and destination; return what to copy, skip and prune.

    ``src_client_for(registry)`` / ``dst_client_for(registry)`` return a client for a
    ``Registry``. ``prune`` lists destination references (tags) to delete; a candidate
    whose manifest is also what a selected tag of the same repository will point at is
    kept (``action == "keep"``), because deleting a manifest removes every tag on it.

    ``prepare_destination(registry, repository)`` is called once per destination repository
    before any of its manifests is HEADed (a registry that needs repositories created first,
    such as ECR, creates it there, honouring check mode itself); a RegistryError it raises
    fails the jobs of that repository.
    """
    jobs = list(jobs)
    platforms = normalise_platforms(platforms)
    prepared: dict[tuple, RegistryError | None] = {}  # destination repository -> what preparing it raised
    if prepare_destination is not None:
        for job in jobs:
            key = (registry_key(job.destination.registry), job.destination.repository)
            if key in prepared:
                continue
            try:
                prepare_destination(job.destination.registry, job.destination.repository)
                prepared[key] = None
            except RegistryError as exc:
                prepared[key] = exc

    # Per destination repository, the first job is planned with HEADs. When its tag is absent
    # there, the repository's tag list (one request) tells which of the other tags are absent
    # too, so a cold repository costs one list instead of a HEAD per tag; when the tag is
    # there (a no-op or an incremental run), the other tags are HEADed as before and nothing
    # is listed. The decision is per repository.
    groups: dict[tuple, list[int]] = {}
    for number, job in enumerate(jobs):
        groups.setdefault((registry_key(job.destination.registry), job.destination.repository), []).append(number)
    listed: dict[tuple, set | None] = {}    # repository -> its destination tags (None: not listed)
    fresh: set = set()

    copies: list[Any] = [None] * len(jobs)

    def plan(numbers: list[int]) -> None:
        entries, todo = [], []
        for number in numbers:
            job = jobs[number]
            key = (registry_key(job.destination.registry), job.destination.repository)
            error = prepared.get(key)
            if error is not None:
                copies[number] = PlannedCopy(job, "fail", error=error)
                continue
            present = listed.get(key)
            absent = present is not None and job.destination.tag is not None and not job.destination.digest \
                and job.destination.tag not in present
            entries.append((job, src_client_for(job.source.registry), dst_client_for(job.destination.registry),
                            absent))
            todo.append(number)
        for number, planned in zip(todo, _plan_jobs(entries, platforms, concurrency)):
            copies[number] = planned

    def list_destination(key: tuple) -> None:
        job = jobs[groups[key][0]]
        try:
            tags = dst_client_for(job.destination.registry).tags(job.destination.repository)
        except NotFound:
            tags = []
        except RegistryError:
            return      # no list: every tag gets its HEAD
        listed[key] = set(tags)
        if not tags:
            fresh.add(key)

    keys = list(groups)
    plan([groups[key][0] for key in keys])
    # listed also with one job: a repository without tags is "fresh" for the engine
    parallel_map(list_destination, [key for key in keys if copies[groups[key][0]].action == "copy"
                                    and copies[groups[key][0]].destination_digest is None], concurrency)
    plan([n for key in keys for n in groups[key][1:]])

    # digests the selected tags of each destination repository will point at
    kept: dict[tuple, set] = {}
    for planned in copies:
        dest = planned.job.destination
        key = (registry_key(dest.registry), dest.repository)
        for digest in (planned.source_digest, planned.destination_digest if planned.action == "fail" else None):
            if digest:
                kept.setdefault(key, set()).add(digest)

    def head_prune(ref: ImageReference) -> PlannedPrune:
        try:
            desc = dst_client_for(ref.registry).manifest_head(ref.repository, ref.reference)
        except RegistryError as exc:
            return PlannedPrune(ref, None, "fail", exc)
        if desc is None:
            return PlannedPrune(ref, None, "gone")
        if desc.digest in kept.get((registry_key(ref.registry), ref.repository), ()):
            return PlannedPrune(ref, desc.digest, "keep")
        return PlannedPrune(ref, desc.digest, "prune")

    prunes = parallel_map(head_prune, list(prune), concurrency)
    return Plan(copies, prunes, src_client_for, dst_client_for, platforms, fresh)


# --------------------------------------------------------------------------------------------
# registry_sync's selection: repositories -> jobs and prune candidates
# --------------------------------------------------------------------------------------------

class RepositorySelection:
    """One validated item of registry_sync's ``repositories``."""

    def __init__(self, name: str, destination: str, tags: list[str] | None, tag_filter: TagFilter) -> None:
        self.name = name
        self.destination = destination
        self.tags = tags            # explicit tags (no listing), or None: every tag of the source
        self.filter = tag_filter

    def __repr__(self) -> str:
        return "RepositorySelection(%s -> %s)" % (self.name, self.destination)


def normalise_repositories(items: Sequence[Any], prefix: str | None) -> list[RepositorySelection]:
    """Each item (a name or a dict of REPOSITORY_KEYS) validated, filters compiled, the item named in errors."""
    result = []
    for index, item, name in repository_items(items, REPOSITORY_KEYS):
        try:
            destination = str(item.get("destination") or name)
            if prefix:
                destination = "%s/%s" % (prefix.strip("/"), destination)
            destination = validate_repository(destination)
            tags = item.get("tags")
            if tags is not None:
                if not isinstance(tags, list):
                    raise InvalidInput("tags must be a list")
                tags = [validate_tag(str(t)) for t in tags]
            latest = item.get("latest")
            if latest is not None:
                try:
                    latest = int(latest)
                except (TypeError, ValueError):
                    raise InvalidInput("latest must be an integer (got %r)" % (latest,)) from None
            texts = dict((key, str(item[key]) if item.get(key) is not None else None)
                         for key in ("tag_regex", "exclude_regex", "semver"))
            tag_filter = TagFilter(tags, texts["tag_regex"], texts["exclude_regex"], texts["semver"], latest)
        except InvalidInput as exc:
            raise InvalidInput("repositories[%d] (%s): %s" % (index, item["name"], exc)) from None
        result.append(RepositorySelection(name, destination, tags, tag_filter))
    return result


class SyncSelection:
    """What registry_sync will plan: ``jobs``, ``prune`` candidates, and ``failures`` of listing
    (``{"reference", "error", "error_kind"}`` per source repository whose tags could not be listed)."""

    def __init__(self) -> None:
        self.jobs: list[CopyJob] = []
        self.prune: list[ImageReference] = []
        self.failures: list[dict] = []


def select_sync(repositories: Sequence[RepositorySelection], src: Any, dst: Any, src_registry: Registry,
                dst_registry: Registry, prune: bool = False, concurrency: int = 4) -> SyncSelection:
    """List what ``repositories`` select (source tags unless given; destination tags for prune), in
    parallel, and turn it into copy jobs and prune candidates. Raises InvalidInput when two sources
    would land on one destination tag."""

    def one(entry: RepositorySelection) -> tuple:
        try:
            tags = entry.tags if entry.tags is not None else src.tags(entry.name)
            selected = entry.filter.select(tags)
        except RegistryError as exc:
            return entry, None, None, exc
        dst_tags = None
        if prune:
            try:
                dst_tags = dst.tags(entry.destination)
            except NotFound:
                dst_tags = []
            except RegistryError as exc:
                return entry, selected, None, exc
        return entry, selected, dst_tags, None

    selection = SyncSelection()
    seen: dict[str, str] = {}
    for entry, selected, dst_tags, error in parallel_map(one, list(repositories), concurrency):
        if error is not None:
            selection.failures.append({"reference": "%s/%s" % (src_registry.display, entry.name),
                                       "error": str(error), "error_kind": error.kind})
            if selected is None:
                continue
        for tag in selected:
            destination = ImageReference(dst_registry, entry.destination, tag)
            source = ImageReference(src_registry, entry.name, tag)
            key = str(destination)
            if key in seen and seen[key] != str(source):
                raise InvalidInput("%s would receive both %s and %s; give one of them another destination"
                                   % (key, seen[key], source))
            if key not in seen:
                seen[key] = str(source)
                selection.jobs.append(CopyJob(source, destination))
        if prune and dst_tags:
            chosen = set(selected)
            selection.prune.extend(ImageReference(dst_registry, entry.destination, t)
                                   for t in dst_tags if t not in chosen)
    return selection
