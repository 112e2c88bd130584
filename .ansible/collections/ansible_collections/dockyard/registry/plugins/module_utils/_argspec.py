# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""The options every registry module shares, their ranges, the client built from them, and what
every registry module's ``main()`` does around its backend (``run_registry_module``).

Kept in step with ``plugins/doc_fragments/registry_connection.py``: ``DOCUMENTATION`` documents
``connection_argument_spec()`` without ``registry`` (each module documents that itself: what it
means differs) and without the ``COMMON`` options; ``SOURCE`` and ``DESTINATION`` document the
prefixed options; ``COMMON`` documents ``config_path``, ``timeout`` and ``retries``. A unit test
compares every module's documentation with its argument spec.

This is the edge between Ansible and the collection's code: it reads module parameters and
may call ``module.warn()``; it never fails the module.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from ansible_collections.dockyard.registry.plugins.module_utils._auth import Credentials
from ansible_collections.dockyard.registry.plugins.module_utils._client import RegistryClient, RetryStats
from ansible_collections.dockyard.registry.plugins.module_utils._docker_config import find_credentials
from ansible_collections.dockyard.registry.plugins.module_utils._errors import InvalidInput
from ansible_collections.dockyard.registry.plugins.module_utils._module import run_backend
from ansible_collections.dockyard.registry.plugins.module_utils._reference import Registry

__all__ = [
    "COMMON_OPTIONS",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "RANGES",
    "check_ranges",
    "client_from_params",
    "connection_argument_spec",
    "connection_required_together",
    "credentials_from_params",
    "ecr_argument_spec",
    "run_registry_module",
]

DEFAULT_TIMEOUT = 60
DEFAULT_RETRIES = 5
COMMON_OPTIONS = ("config_path", "timeout", "retries")
# Every numeric option of the registry modules: (lowest, highest, lowest excluded?).
RANGES = {
    "timeout": (0, 3600, True),
    "retries": (0, 20, False),
    "concurrency": (1, 64, False),
}


def connection_argument_spec(prefix: str = "") -> dict:
    """Argument spec for the connection options; ``prefix`` is ``""``, ``"source_"`` or ``"destination_"``.

    ``registry`` is only part of the unprefixed spec (registry_sync names its own
    ``source_registry``/``destination_registry``); ``config_path``, ``timeout`` and ``retries``
    are never prefixed.
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
    spec["retries"] = dict(type="int", default=DEFAULT_RETRIES)
    return spec


def ecr_argument_spec() -> dict:
    """registry_sync's and registry_image's options for an Amazon ECR destination (documented by
    the ``dockyard.registry.ecr_repositories`` fragment): create missing repositories, with these
    settings, through the ECR API these AWS options reach."""
    return dict(
        create_repositories=dict(type="bool", default=False),
        repository_settings=dict(type="dict", options=dict(
            image_tag_mutability=dict(type="str", choices=["mutable", "immutable"], default="mutable"),
            scan_on_push=dict(type="bool", default=False),
            keep_last=dict(type="int"),
            expire_untagged_days=dict(type="int"),
            lifecycle_policy=dict(type="raw"),
            policy=dict(type="raw"),
        )),
        ecr=dict(type="dict", options=dict(
            region=dict(type="str"),
            profile=dict(type="str"),
            registry_id=dict(type="str"),
            endpoint_url=dict(type="str"),
            aws_access_key_id=dict(type="str"),
            aws_secret_access_key=dict(type="str", no_log=True),
            aws_session_token=dict(type="str", no_log=True),
        )),
    )


def connection_required_together(prefix: str = "") -> list:
    """``required_together`` entries for the connection options of one side.

    ``client_cert`` may hold the key too (one PEM file), so only user and password are paired.
    """
    return [[prefix + "username", prefix + "password"]]


def check_ranges(params: dict) -> None:
    """Fail early, naming the option, when a numeric option is out of its range (RANGES)."""
    for option, (low, high, exclusive) in RANGES.items():
        value = params.get(option)
        if value is None:
            continue
        if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
            raise InvalidInput("%s must be a number (got %s)" % (option, value))
        shown = ("%g" % value) if isinstance(value, float) else str(value)
        if exclusive and value <= low:
            raise InvalidInput("%s must be greater than %s (got %s)" % (option, low, shown))
        if exclusive and value > high:
            raise InvalidInput("%s must be at most %s (got %s)" % (option, high, shown))
        if not exclusive and not low <= value <= high:
            raise InvalidInput("%s must be between %s and %s (got %s)" % (option, low, high, shown))


def credentials_from_params(params: dict, registry: Registry, prefix: str = "") -> Credentials | None:
    """Options first, then the docker config.json as the docker CLI would find it, else None (anonymous)."""
    username = params.get(prefix + "username")
    password = params.get(prefix + "password")
    if username or password:
        if not (username and password):
            raise InvalidInput("%susername and %spassword must be given together" % (prefix, prefix))
        return Credentials(username=username, password=password)
    return find_credentials(registry, params.get("config_path"))


def client_from_params(params: dict, registry: Registry, prefix: str = "", credentials: Credentials | None = None,
                       retry_stats: RetryStats | None = None) -> RegistryClient:
    """A ``RegistryClient`` for ``registry`` built from the module parameters of one side.

    ``credentials`` overrides the lookup (registry_login verifies the credentials it is about to
    store); ``retry_stats`` is shared by the clients of one module run, for ``retries_result``.
    """
    if credentials is None:
        credentials = credentials_from_params(params, registry, prefix)
    retries = params.get("retries")
    return RegistryClient(
        registry,
        credentials,
        validate_certs=params.get(prefix + "validate_certs", True),
        ca_cert=params.get(prefix + "ca_cert"),
        client_cert=params.get(prefix + "client_cert"),
        client_key=params.get(prefix + "client_key"),
        timeout=params.get("timeout") or DEFAULT_TIMEOUT,
        retries=DEFAULT_RETRIES if retries is None else retries,
        retry_stats=retry_stats,
        option_prefix=prefix,
    )


def run_registry_module(module: Any, work: Callable[..., dict], report_retries: bool = True) -> tuple[bool, dict]:
    """What a registry module's ``main()`` does between parsing and exiting, in one place.

    Checks the numeric options' ranges, runs the module's backend
    ``work(params, check_mode=, diff=, retry_stats=)`` (which counts its retries in ``retry_stats``)
    through ``_module.run_backend`` (the one mapping of errors to results) and returns
    ``(ok, fields)``: the keyword arguments for ``exit_json`` when ``ok``, else for ``fail_json`` -
    which ``main()`` calls itself (no module_utils file fails the module). Every result gets
    ``retries``, and a warning when anything was retried (as community.hashi_vault does), success
    or not - unless ``report_retries`` is false (a module that sends no retried registry requests,
    such as registry_backend_check).
    """
    stats = RetryStats()

    def checked(params: dict, **kwargs: Any) -> dict:
        check_ranges(params)
        return work(params, **kwargs)

    ok, fields = run_backend(module, checked, retry_stats=stats)
    if not report_retries:
        return ok, fields
    warning = stats.warning()
    if warning:
        module.warn(warning)
    fields["retries"] = stats.as_dict()
    return ok, fields
