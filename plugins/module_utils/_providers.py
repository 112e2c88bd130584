# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""Cloud registry logins: turn provider options into a registry address and credentials.

- ``ecr``: boto3 ``get_authorization_token``; the token is base64 ``AWS:<password>`` and the
  registry address comes from ``proxyEndpoint`` unless the caller names one.
- ``gcr``: user ``_json_key``, password = a service account key (JSON).
- ``acr``: a service principal's application id and secret as user and password.
- ``ghcr`` / ``dockerhub`` / ``generic``: a user and a password or access token.
- ``auto`` picks one of those from the registry host name.
"""

from __future__ import annotations

import base64
import binascii
import json
import os

from ansible_collections.dockyard.registry.plugins.module_utils import _io
from ansible_collections.dockyard.registry.plugins.module_utils._auth import Credentials
from ansible_collections.dockyard.registry.plugins.module_utils._ecr import (
    BOTO3_IMPORT_ERROR,
    BOTO_ERRORS,
    HAS_BOTO3,
    aws_session,
    boto_error,
    ecr_host_parts,
    require_boto3,
)
from ansible_collections.dockyard.registry.plugins.module_utils._errors import InvalidInput, RegistryError
from ansible_collections.dockyard.registry.plugins.module_utils._reference import (
    DOCKER_HUB,
    host_without_port,
    parse_registry,
)

__all__ = [
    "PROVIDERS",
    "HAS_BOTO3",
    "BOTO3_IMPORT_ERROR",
    "GCR_USERNAME",
    "ECR_USERNAME",
    "detect_provider",
    "resolve_provider",
    "ecr_host_parts",
    "load_service_account_key",
    "ecr_login",
    "login_for",
]

PROVIDERS = ("auto", "generic", "dockerhub", "ghcr", "ecr", "gcr", "acr")
ECR_USERNAME = "AWS"
GCR_USERNAME = "_json_key"

_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io", DOCKER_HUB)




def detect_provider(host: str) -> str:
    """The provider ``auto`` chooses for a registry host."""
    name = host_without_port(host)
    if ecr_host_parts(name):
        return "ecr"
    if name == "gcr.io" or name.endswith(".gcr.io") or name.endswith("-docker.pkg.dev"):
        return "gcr"
    if name.endswith(".azurecr.io") or name.endswith(".azurecr.cn") or name.endswith(".azurecr.us"):
        return "acr"
    if name == "ghcr.io":
        return "ghcr"
    if name in _HUB_HOSTS:
        return "dockerhub"
    return "generic"


def resolve_provider(provider: str, registry: str | None = None, username: str | None = None,
                     password: str | None = None) -> str:
    """The provider to use: ``provider`` itself, or for ``auto`` the one the host name suggests.

    ``auto`` on an ECR host with an explicit user and password logs in with them as given
    (``generic``) instead of asking AWS for a token.
    """
    if provider != "auto":
        return provider
    host = parse_registry(registry or "docker.io").host
    chosen = detect_provider(host)
    if chosen == "ecr" and username and password:
        return "generic"
    return chosen


def load_service_account_key(value: str) -> str:
    """A GCP service account key given as JSON content or as a path to a JSON file; returns the JSON text."""
    text = value.strip()
    where = "service account key"
    if not text.startswith("{"):
        path = os.path.expanduser(text)
        where = "service account key file %s" % path
        raw = _io.read_file(path, "service account key file")  # refuses a FIFO or device instead of hanging
        if raw is None:
            raise InvalidInput("%s does not exist (give the path to the key file or the key's JSON content)"
                               % where)
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            raise InvalidInput("cannot read %s: %s" % (where, exc))
    try:
        data = json.loads(text)
    except ValueError:
        # Never echo the content: it is a private key.
        raise InvalidInput("the %s is not valid JSON" % where)
    if not isinstance(data, dict) or data.get("type") != "service_account":
        raise InvalidInput("the %s is not a service account key (\"type\" must be \"service_account\")" % where)
    for field in ("client_email", "private_key"):
        if not data.get(field):
            raise InvalidInput("the %s has no \"%s\"" % (where, field))
    return text



def ecr_login(registry: str | None = None, *, region: str | None = None, profile: str | None = None,
              registry_id: str | None = None, endpoint_url: str | None = None,
              aws_access_key_id: str | None = None, aws_secret_access_key: str | None = None,
              aws_session_token: str | None = None) -> tuple:
    """``(Registry, Credentials)`` for ECR from ``get_authorization_token``.

    When ``registry`` is an ECR host, region and registry id default to the ones in its name.
    The registry address comes from the token's ``proxyEndpoint`` unless ``registry`` is given.
    """
    require_boto3("the ecr provider")
    if registry:
        parts = ecr_host_parts(parse_registry(registry).host)
        if parts:
            registry_id = registry_id or parts[0]
            region = region or parts[1]
    endpoint = endpoint_url or "the AWS ECR endpoint"
    session = aws_session(region=region, profile=profile, aws_access_key_id=aws_access_key_id,
                          aws_secret_access_key=aws_secret_access_key, aws_session_token=aws_session_token)
    try:
        client = session.client("ecr", endpoint_url=endpoint_url or None)
        kwargs = {"registryIds": [registry_id]} if registry_id else {}
        response = client.get_authorization_token(**kwargs)
    except BOTO_ERRORS as exc:
        raise boto_error(exc, endpoint, "get_authorization_token")
    data = response.get("authorizationData") or []
    if not data:
        raise RegistryError("ECR returned no authorization data", registry=endpoint)
    try:
        decoded = base64.b64decode(data[0]["authorizationToken"]).decode("utf-8")
    except (KeyError, binascii.Error, ValueError, UnicodeDecodeError):
        raise RegistryError("ECR returned an authorization token that is not base64 \"AWS:<password>\"",
                            registry=endpoint)
    username, sep, password = decoded.partition(":")
    if not sep or not password:
        raise RegistryError("ECR returned an authorization token that is not \"AWS:<password>\"", registry=endpoint)
    address = registry or data[0].get("proxyEndpoint")
    if not address:
        raise RegistryError("ECR returned no proxyEndpoint; give registry", registry=endpoint)
    return parse_registry(address), Credentials(username=username, password=password)


def _require(provider: str, username: str | None, password: str | None, what: str) -> Credentials:
    if not username or not password:
        raise InvalidInput("provider %s needs username and password (%s)" % (provider, what))
    return Credentials(username=username, password=password)


_DEFAULT_REGISTRY = {
    "dockerhub": "docker.io",
    "ghcr": "ghcr.io",
    "gcr": "gcr.io",
    "generic": "docker.io",
}


def login_for(provider: str, registry: str | None = None, username: str | None = None,
              password: str | None = None, *, region: str | None = None, profile: str | None = None,
              registry_id: str | None = None, endpoint_url: str | None = None,
              aws_access_key_id: str | None = None, aws_secret_access_key: str | None = None,
              aws_session_token: str | None = None,
              service_account_key: str | None = None) -> tuple:
    """``(Registry, Credentials)`` for a login with ``provider`` (already resolved, not ``auto``)."""
    if provider not in PROVIDERS or provider == "auto":
        raise InvalidInput("unknown provider %r: choose one of %s" % (provider, ", ".join(PROVIDERS[1:])))
    if provider == "ecr":
        return ecr_login(registry, region=region, profile=profile, registry_id=registry_id,
                         endpoint_url=endpoint_url, aws_access_key_id=aws_access_key_id,
                         aws_secret_access_key=aws_secret_access_key, aws_session_token=aws_session_token)
    if provider == "acr" and not registry:
        raise InvalidInput("provider acr needs registry (<name>.azurecr.io)")
    address = parse_registry(registry or _DEFAULT_REGISTRY[provider])
    if provider == "gcr":
        if service_account_key:
            if username and username != GCR_USERNAME:
                raise InvalidInput("provider gcr logs in as %s with service_account_key; do not give username"
                                   % GCR_USERNAME)
            return address, Credentials(username=GCR_USERNAME, password=load_service_account_key(service_account_key))
        return address, _require(provider, username, password,
                                 "or service_account_key with a service account key file or content")
    if provider == "acr":
        return address, _require(provider, username, password,
                                 "the service principal's application id and secret")
    if provider in ("ghcr", "dockerhub"):
        return address, _require(provider, username, password, "a user and a personal access token")
    return address, _require(provider, username, password, "the registry user and password")
