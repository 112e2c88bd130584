# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""registry_image's work: one image copied (the copy engine with one job), pushed or pulled
(:mod:`_docker_engine`), tagged server-side, or deleted with the guard against removing tags
that share its digest."""

from __future__ import annotations

from typing import Any

from ansible_collections.dockyard.registry.plugins.module_utils._argspec import (
    client_from_params,
    credentials_from_params,
)
from ansible_collections.dockyard.registry.plugins.module_utils._client import RetryStats
from ansible_collections.dockyard.registry.plugins.module_utils._copy import execute, retag
from ansible_collections.dockyard.registry.plugins.module_utils._docker_engine import DockerEngine
from ansible_collections.dockyard.registry.plugins.module_utils._ecr import repositories_from_params
from ansible_collections.dockyard.registry.plugins.module_utils._errors import InvalidInput, NotFound
from ansible_collections.dockyard.registry.plugins.module_utils._plan import CopyJob, normalise_platforms, plan_copies
from ansible_collections.dockyard.registry.plugins.module_utils._pool import parallel_map
from ansible_collections.dockyard.registry.plugins.module_utils._reference import (
    ImageReference,
    parse_reference,
    parse_registry,
    validate_tag,
)

__all__ = ["registry_image", "SOURCE_OPTIONS", "RegistryImage", "SharedDigest"]

SOURCE_OPTIONS = ("source_username", "source_password", "source_ca_cert", "source_client_cert",
                  "source_client_key")


class SharedDigest(InvalidInput):
    """Deleting the manifest would remove other tags too (listed in ``shared_tags``)."""

    def __init__(self, message: str, tags: list, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.tags = tags

    def to_result(self) -> dict:
        return dict(super().to_result(), shared_tags=self.tags)


def _with_default_tag(ref: ImageReference) -> ImageReference:
    return ref if (ref.tag or ref.digest) else ref.with_tag("latest")


class RegistryImage:
    def __init__(self, params: dict, check_mode: bool = False, diff: bool = False,
                 retry_stats: RetryStats | None = None, engine: DockerEngine | None = None) -> None:
        self.params = params
        self.check_mode = check_mode
        self.diff = diff
        self.retry_stats = retry_stats if retry_stats is not None else RetryStats()
        default = parse_registry(params["registry"]) if params.get("registry") else None
        self.default_registry = default
        self.ref = _with_default_tag(parse_reference(params["name"], default))
        self.client = client_from_params(params, self.ref.registry, retry_stats=self.retry_stats)
        self._engine = engine
        self.result = {"changed": False, "digest": None, "copied": False, "pushed": False, "pulled": False,
                       "tags_changed": [], "removed_tags": [], "created_repositories": []}

    # -- helpers ---------------------------------------------------------------------------
    def _head(self, reference: str) -> str | None:
        desc = self.client.manifest_head(self.ref.repository, reference)
        return desc.digest if desc is not None else None

    def engine(self) -> DockerEngine:
        if self._engine is None:
            credentials = credentials_from_params(self.params, self.ref.registry)
            auth = None
            if credentials is not None and credentials.username and credentials.password:
                auth = {"username": credentials.username, "password": credentials.password}
            self._engine = DockerEngine(auth)
        return self._engine

    # -- present ---------------------------------------------------------------------------
    def present(self) -> dict:
        params = self.params
        ecr = repositories_from_params(params, self.ref.registry, check_mode=self.check_mode)
        if ecr is not None:
            if not (params["source"] or params["push"]):
                raise InvalidInput("create_repositories needs source or push: there is nothing to put into a new "
                                   "repository")
            ecr.check_names([self.ref.repository])
            ecr.check_access()
            ecr.prepare(self.ref.registry, self.ref.repository)
            self.result["created_repositories"] = list(ecr.created)
        before = self._head(self.ref.reference)
        after = before
        if params["source"]:
            after = self._copy(before)
        elif params["push"]:
            after, self.result["pushed"] = self.engine().push(
                params["push"], self.ref, before, self.check_mode, lambda: self._head(self.ref.reference))
        elif before is None:
            raise NotFound("%s does not exist; give source or push to create it" % self.ref,
                           registry=self.ref.registry.display, reference=str(self.ref))
        self.result["digest"] = after

        tags = [validate_tag(t) for t in params["tags"] or []]
        tag_before = {}
        if tags:
            if self.ref.digest is None and self.ref.tag in tags:
                tags = [t for t in tags if t != self.ref.tag]
            for tag in tags:
                tag_before[tag] = self._head(tag)
            if self.check_mode and after != before:
                changed_tags = [t for t in tags if tag_before[t] != after]
            else:
                changed_tags = retag(self.client, self.ref.repository, after, tags, check_mode=self.check_mode)
            self.result["tags_changed"] = changed_tags

        if params["pull"]:
            self.result["pulled"] = self.engine().pull(self.ref, after, self.check_mode)

        self.result["changed"] = (after != before or self.result["pushed"] or bool(self.result["tags_changed"])
                                  or self.result["pulled"] or bool(self.result["created_repositories"]))
        if self.diff:
            self.result["diff"] = {
                "before": dict({"digest": before}, **dict(("tag %s" % t, tag_before[t]) for t in tag_before)),
                "after": dict({"digest": after}, **dict(("tag %s" % t, after) for t in tag_before)),
            }
        return self.result

    def _copy(self, before: str | None) -> str | None:
        params = self.params
        source = _with_default_tag(parse_reference(params["source"], self.default_registry))
        same = source.registry == self.ref.registry and not any(params.get(k) for k in SOURCE_OPTIONS)
        src_client = self.client if same else client_from_params(
            params, source.registry, "source_", retry_stats=self.retry_stats)
        platforms = normalise_platforms(params["platforms"] or ["all"])
        plan = plan_copies([CopyJob(source, self.ref)], lambda r: src_client, lambda r: self.client,
                           platforms=platforms, concurrency=params["concurrency"])
        result = execute(plan, concurrency=params["concurrency"], check_mode=self.check_mode,
                         retry_stats=self.retry_stats)
        if result.errors:
            raise result.errors[0]
        counters = result.as_dict()
        keys = ("bytes_copied", "blobs_uploaded", "blobs_mounted", "blobs_skipped", "duration")
        self.result["copy_stats"] = dict((k, counters[k]) for k in keys)
        self.result["copied"] = bool(result.copied)
        return plan.copies[0].source_digest or before

    # -- absent ----------------------------------------------------------------------------
    def absent(self) -> dict:
        params = self.params
        for option in ("source", "push"):
            if params[option]:
                raise InvalidInput("%s cannot be used with state=absent" % option)
        if params["tags"] or params["pull"]:
            raise InvalidInput("tags and pull cannot be used with state=absent")
        if params.get("create_repositories"):
            raise InvalidInput("create_repositories cannot be used with state=absent")
        digest = self._head(self.ref.reference)
        self.result["digest"] = digest
        if digest is None:
            return self.result
        sharing = self._tags_on(digest)
        others = sorted(t for t in sharing if t != self.ref.tag or self.ref.digest)
        if others and not params["force"]:
            raise SharedDigest(
                "refusing to delete %s: its manifest %s also carries the tag(s) %s, and deleting a manifest "
                "removes every tag on it; set force=true to delete them all" % (self.ref, digest, ", ".join(others)),
                others, registry=self.ref.registry.display, reference=str(self.ref))
        if not self.check_mode:
            self.client.manifest_delete(self.ref.repository, digest)
        self.result["changed"] = True
        self.result["removed_tags"] = sorted(sharing)
        if self.diff:
            self.result["diff"] = {"before": {"digest": digest, "tags": sorted(sharing)},
                                   "after": {"digest": None, "tags": []}}
        return self.result

    def _tags_on(self, digest: str) -> list:
        try:
            tags = self.client.tags(self.ref.repository)
        except NotFound:
            return []
        if self.ref.tag and self.ref.tag not in tags and not self.ref.digest:
            tags.append(self.ref.tag)
        digests = parallel_map(self._head, tags, self.params["concurrency"])
        return [t for t, d in zip(tags, digests) if d == digest]

    def run(self) -> dict:
        if self.params["state"] == "absent":
            return self.absent()
        return self.present()


def registry_image(params: dict, check_mode: bool = False, diff: bool = False, retry_stats: RetryStats | None = None) -> dict:
    """The module's result for its parameters (what ``run_registry_module`` calls)."""
    return RegistryImage(params, check_mode=check_mode, diff=diff, retry_stats=retry_stats).run()
