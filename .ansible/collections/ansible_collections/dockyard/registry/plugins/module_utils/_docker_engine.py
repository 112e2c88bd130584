# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""Push and pull through the local Docker engine (Docker SDK for Python), for registry_image.

The SDK is imported behind a guard: ``HAS_DOCKER`` / ``DOCKER_IMPORT_ERROR`` (the traceback for
``missing_required_lib``); without it :class:`DockerEngine` raises MissingLibrary.
"""

from __future__ import annotations

import traceback
from typing import Any, Callable

from ansible_collections.dockyard.registry.plugins.module_utils._errors import (
    InvalidInput,
    MissingLibrary,
    NotFound,
    ServerError,
)
from ansible_collections.dockyard.registry.plugins.module_utils._reference import ImageReference

DOCKER_IMPORT_ERROR = None
try:
    import docker
    from docker.errors import APIError, DockerException, ImageNotFound
except ImportError:
    DOCKER_IMPORT_ERROR = traceback.format_exc()
    docker = None

__all__ = ["DOCKER_IMPORT_ERROR", "DockerEngine", "HAS_DOCKER"]

HAS_DOCKER = DOCKER_IMPORT_ERROR is None


class DockerEngine:
    """The local Docker engine; ``auth_config`` is ``{"username", "password"}`` or None."""

    def __init__(self, auth_config: dict | None = None, client: Any = None) -> None:
        self.auth_config = auth_config
        self._client = client

    def _docker(self) -> Any:
        if self._client is None:
            if docker is None:
                raise MissingLibrary("the Docker SDK for Python (docker) is needed for push and pull",
                                     library="docker", import_error=DOCKER_IMPORT_ERROR)
            try:
                self._client = docker.from_env()
            except DockerException as exc:
                raise InvalidInput("cannot talk to the Docker engine: %s" % exc) from None
        return self._client

    def push(self, local: str, ref: ImageReference, before: str | None, check_mode: bool,
             head: Callable[[], str | None]) -> tuple:
        """Push the local image ``local`` as ``ref`` (a tag); returns ``(digest, pushed)``.

        Nothing is pushed when the local image already carries ``before`` (the registry's
        digest for ``ref``) in its RepoDigests. ``head()`` reads the registry's digest after the
        push. In check mode the digest a push would produce is unknown: ``(before, True)``.
        """
        if ref.digest:
            raise InvalidInput("push needs a tag in name, not a digest: %s" % ref)
        client = self._docker()
        try:
            image = client.images.get(local)
        except ImageNotFound:
            raise NotFound("local image %s not found in the Docker engine" % local) from None
        except (APIError, DockerException) as exc:
            raise ServerError("the Docker engine failed to look up %s: %s" % (local, exc)) from None
        repository = ref.name
        if before and "%s@%s" % (repository, before) in (image.attrs.get("RepoDigests") or []):
            return before, False
        if check_mode:
            return before, True
        target = "%s:%s" % (repository, ref.tag)
        added_tag = target not in (image.tags or [])
        pushed = None
        try:
            if added_tag:
                image.tag(repository, ref.tag)
            for line in client.api.push(repository, tag=ref.tag, auth_config=self.auth_config,
                                        stream=True, decode=True):
                if line.get("error"):
                    raise ServerError("the Docker engine failed to push %s: %s" % (target, line["error"]),
                                      registry=ref.registry.display, reference=target)
                aux = line.get("aux") or {}
                if aux.get("Digest"):
                    pushed = aux["Digest"]
        except (APIError, DockerException) as exc:
            raise ServerError("the Docker engine failed to push %s: %s" % (target, exc),
                              registry=ref.registry.display, reference=target) from None
        finally:
            if added_tag:
                try:
                    client.images.remove(target, noprune=True)
                except (APIError, DockerException):
                    pass
        after = head() or pushed
        return after, after != before

    def pull(self, ref: ImageReference, digest: str | None, check_mode: bool) -> bool:
        """Pull ``ref`` unless the engine has it with ``digest``; returns whether it pulled (or would)."""
        client = self._docker()
        repository = ref.name
        wanted = "%s@%s" % (repository, digest)
        local = ref.tag and "%s:%s" % (repository, ref.tag) or wanted
        try:
            image = client.images.get(local)
            if wanted in (image.attrs.get("RepoDigests") or []):
                return False
        except ImageNotFound:
            pass
        except (APIError, DockerException) as exc:
            raise ServerError("the Docker engine failed to look up %s: %s" % (local, exc)) from None
        if check_mode:
            return True
        try:
            for line in client.api.pull(repository, tag=ref.tag or digest, auth_config=self.auth_config,
                                        stream=True, decode=True):
                if line.get("error"):
                    raise ServerError("the Docker engine failed to pull %s: %s" % (local, line["error"]),
                                      registry=ref.registry.display, reference=local)
        except (APIError, DockerException) as exc:
            raise ServerError("the Docker engine failed to pull %s: %s" % (local, exc),
                              registry=ref.registry.display, reference=local) from None
        return True
