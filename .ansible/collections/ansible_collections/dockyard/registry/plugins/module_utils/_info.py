# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""registry_info's work: the catalog, the tags of a repository, or one image inspected
(:func:`_manifest.inspect_image`). Read-only."""

from __future__ import annotations

from typing import Any

from ansible_collections.dockyard.registry.plugins.module_utils._argspec import client_from_params
from ansible_collections.dockyard.registry.plugins.module_utils._client import RetryStats
from ansible_collections.dockyard.registry.plugins.module_utils._errors import NotFound
from ansible_collections.dockyard.registry.plugins.module_utils._manifest import inspect_image
from ansible_collections.dockyard.registry.plugins.module_utils._reference import (
    Registry,
    parse_registry,
    validate_digest,
    validate_repository,
    validate_tag,
)

__all__ = ["RegistryInfo", "normalise", "registry_info"]


def registry_info(params: dict, check_mode: bool = False, diff: bool = False,
                  retry_stats: RetryStats | None = None) -> dict:
    """The module's result for its parameters (what ``run_registry_module`` calls); read-only, so
    check and diff mode change nothing."""
    registry = parse_registry(params["registry"])
    repository, reference = normalise(registry, params.get("repository"), params.get("reference"))
    with client_from_params(params, registry, retry_stats=retry_stats) as client:
        return RegistryInfo(client, registry).run(repository, reference)


def normalise(registry: Registry, repository: str | None, reference: str | None) -> tuple:
    """Validated repository (``library/`` added on Docker Hub) and tag or digest."""
    if repository:
        repository = validate_repository(repository)
        if registry.is_docker_hub and "/" not in repository:
            repository = "library/" + repository
    if reference:
        # A tag cannot contain ":", so anything with one must be a digest.
        reference = validate_digest(reference) if ":" in reference else validate_tag(reference)
    return repository, reference


class RegistryInfo:
    """Read-only inspection of one registry through a ``RegistryClient``."""

    def __init__(self, client: Any, registry: Registry) -> None:
        self.client = client
        self.registry = registry

    def run(self, repository: str | None, reference: str | None) -> dict:
        result = {"changed": False, "registry": self.registry.display}
        if not repository:
            result["repositories"] = self.client.catalog()
            return result
        result["repository"] = repository
        if not reference:
            try:
                result["tags"] = self.client.tags(repository)
                result["exists"] = True
            except NotFound:
                result["tags"] = []
                result["exists"] = False
            return result
        result["reference"] = reference
        info = inspect_image(self.client, repository, reference)
        result.update(info.as_result() if info is not None else {"exists": False})
        return result
