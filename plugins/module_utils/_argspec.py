# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""The connection options every registry module shares, and the client built from them.

Kept in step with ``plugins/doc_fragments/registry_connection.py``: ``DOCUMENTATION`` documents
``connection_argument_spec()`` (without ``registry``, which each module documents itself because
its default differs), ``SOURCE_DESTINATION`` documents ``connection_argument_spec("source_")``
merged with ``connection_argument_spec("destination_")``. A unit test compares them.
"""

from __future__ import annotations

from ansible_collections.dockyard.registry.plugins.module_utils._auth import Credentials
from ansible_collections.dockyard.registry.plugins.module_utils._client import RegistryClient
from ansible_collections.dockyard.registry.plugins.module_utils._docker_config import find_credentials
from ansible_collections.dockyard.registry.plugins.module_utils._errors import InvalidInput

__all__ = [
    "DEFAULT_TIMEOUT",
    "connection_argument_spec",
    "connection_required_together",
    "credentials_from_params",
    "client_from_params",
]

DEFAULT_TIMEOUT = 60


def connection_argument_spec(prefix: str = "") -> dict:
    """Argument spec for the connection options; ``prefix`` is ``""``, ``"source_"`` or ``"destination_"``.

    ``registry`` is only part of the unprefixed spec (registry_sync names its own
    ``source_registry``/``destination_registry``); ``config_path`` and ``timeout`` are never prefixed.
    """
    spec = {}
    if not prefix:
        spec["registry"] = dict(type="str")
    spec[prefix + "username"] = dict(type="str")
    spec[prefix + "password"] = dict(type="str", no_log=True)
    spec[prefix + "ca_cert"] = dict(type="path")
    spec[prefix + "validate_certs"] = dict(type="bool", default=True)
    spec[prefix + "client_cert"] = dict(type="path")
    spec[prefix + "client_key"] = dict(type="path")
    spec["config_path"] = dict(type="path")
    spec["timeout"] = dict(type="float", default=DEFAULT_TIMEOUT)
    return spec


def connection_required_together(prefix: str = "") -> list:
    """``required_together`` entries for the connection options of one side.

    ``client_cert`` may hold the key too (one PEM file), so only user and password are paired.
    """
    return [[prefix + "username", prefix + "password"]]


def credentials_from_params(params: dict, registry, prefix: str = "") -> Credentials | None:
    """Options first, then the docker config.json as the docker CLI would find it, else None (anonymous)."""
    username = params.get(prefix + "username")
    password = params.get(prefix + "password")
    if username or password:
        if not (username and password):
            raise InvalidInput("%susername and %spassword must be given together" % (prefix, prefix))
        return Credentials(username=username, password=password)
    return find_credentials(registry, params.get("config_path"))


def client_from_params(params: dict, registry, prefix: str = "", credentials: Credentials | None = None) -> RegistryClient:
    """A ``RegistryClient`` for ``registry`` built from the module parameters of one side.

    ``credentials`` overrides the lookup (registry_login verifies the credentials it is about to store).
    """
    if credentials is None:
        credentials = credentials_from_params(params, registry, prefix)
    return RegistryClient(
        registry,
        credentials,
        validate_certs=params.get(prefix + "validate_certs", True),
        ca_cert=params.get(prefix + "ca_cert"),
        client_cert=params.get(prefix + "client_cert"),
        client_key=params.get(prefix + "client_key"),
        timeout=params.get("timeout") or DEFAULT_TIMEOUT,
    )
