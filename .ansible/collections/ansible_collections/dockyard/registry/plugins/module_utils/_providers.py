# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""Cloud registry logins: turn provider options into a registry address and credentials.

- ``ecr``: boto3 ``get_authorization_token``; the token is base64 ``AWS:<password>`` and the
  registry address comes from ``proxyEndpoint`` unless the caller names one.
- ``gcr``: user ``_json_key``, password = a service account key (JSON).
- ``acr``: a service principal's application id and secret as user and password, or an Azure AD
  access token exchanged for an ACR refresh token (:func:`acr_exchange`, what ``az acr login``
  does), stored as an identity token for the user ``00000000-0000-0000-0000-000000000000``.
- ``ghcr`` / ``dockerhub`` / ``generic``: a user and a password or access token.
- ``auto`` picks one of those from the registry host name.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from urllib.parse import urlsplit, urlunsplit

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
from ansible_collections.dockyard.registry.plugins.module_utils._errors import (
    InvalidInput,
    RegistryError,
    ServerError,
    Unauthorized,
    Unsupported,
)
from ansible_collections.dockyard.registry.plugins.module_utils._reference import (
    DOCKER_HUB,
    host_without_port,
    parse_registry,
)

__all__ = [
    "ACR_TOKEN_USERNAME",
    "PROVIDERS",
    "HAS_BOTO3",
    "BOTO3_IMPORT_ERROR",
    "GCR_USERNAME",
    "ECR_USERNAME",
    "detect_provider",
    "resolve_provider",
    "ecr_host_parts",
    "load_service_account_key",
    "acr_exchange",
    "check_aad_token",
    "ecr_login",
    "login_for",
]

PROVIDERS = ("auto", "generic", "dockerhub", "ghcr", "ecr", "gcr", "acr")
ECR_USERNAME = "AWS"
GCR_USERNAME = "_json_key"
# The user an ACR refresh token is stored with (az acr login, docker login --username 0000...).
ACR_TOKEN_USERNAME = "00000000-0000-0000-0000-000000000000"
_AAD_HINT = ("get a new one, for example: az account get-access-token --resource https://containerregistry.azure.net "
             "--query accessToken -o tsv")

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


def _jwt_claims(token: str) -> dict | None:
    """The claims of a JWT, read without checking its signature (only to give clear errors early)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def check_aad_token(token: str, tenant: str | None = None, now: float | None = None) -> str | None:
    """Refuse an Azure AD access token that cannot work, before it is sent anywhere: not a JWT,
    expired, or issued in another tenant than ``tenant``. Returns the token's tenant (``tid``)."""
    claims = _jwt_claims(token.strip())
    if claims is None:
        raise InvalidInput("aad_access_token is not an Azure AD access token (a JWT: three base64url parts "
                           "separated by \".\"); " + _AAD_HINT)
    now = time.time() if now is None else now
    expires = claims.get("exp")
    if isinstance(expires, (int, float)) and expires <= now:
        raise Unauthorized("the Azure AD access token expired %s UTC; %s"
                           % (time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(expires)), _AAD_HINT))
    token_tenant = claims.get("tid")
    if tenant and token_tenant and str(token_tenant).lower() != tenant.lower():
        raise Unauthorized("the Azure AD access token was issued in tenant %s, not in tenant %s: get a token in "
                           "tenant %s (az account get-access-token --tenant %s ...) or give tenant %s"
                           % (token_tenant, tenant, tenant, tenant, token_tenant))
    return str(token_tenant) if token_tenant else None


def _said(body: bytes, secret: str) -> str:
    """What a token endpoint said, short, and never the token we sent."""
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        errors = data.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            text = "%s: %s" % (errors[0].get("code", ""), errors[0].get("message", ""))
        elif data.get("error") or data.get("error_description"):
            text = "%s: %s" % (data.get("error", ""), data.get("error_description", ""))
    text = " ".join(text.split())[:300]
    return text.replace(secret, "<aad_access_token>") if secret else text


def acr_exchange(client, aad_access_token: str, tenant: str | None = None, now: float | None = None) -> Credentials:
    """Exchange an Azure AD access token for an ACR refresh token, as ``az acr login`` does.

    The registry's challenge names the token service; the exchange goes to ``/oauth2/exchange``
    on the host of its realm (``grant_type=access_token``, ``service``, ``tenant``,
    ``access_token``). The refresh token comes back as an identity token for the user
    ``00000000-0000-0000-0000-000000000000``; the docker CLI and the client trade it for access
    tokens at the realm (``grant_type=refresh_token``).
    """
    token = aad_access_token.strip()
    token_tenant = check_aad_token(token, tenant, now)
    tenant = tenant or token_tenant
    registry = client.registry.display
    challenge = client.challenge()
    if not challenge or challenge[0] != "bearer" or not challenge[1].get("realm") or not challenge[1].get("service"):
        raise Unsupported("%s does not ask for a Bearer token login (GET /v2/ gave no challenge with realm and "
                          "service), so it cannot take an Azure AD token: is this an Azure Container Registry?"
                          % registry, registry=registry)
    realm = urlsplit(challenge[1]["realm"])
    url = urlunsplit((realm.scheme, realm.netloc, "/oauth2/exchange", "", ""))
    form = {"grant_type": "access_token", "service": challenge[1]["service"], "access_token": token}
    if tenant:
        form["tenant"] = tenant
    status, body = client.post_form(url, form, what="exchange an Azure AD token with")
    if status in (400, 401, 403):
        raise Unauthorized("%s refused the Azure AD access token (HTTP %d from %s: %s): check that it is a token for "
                           "the tenant of the registry and not expired, and that its identity has a role on the "
                           "registry (AcrPull or AcrPush); %s"
                           % (registry, status, url, _said(body, token), _AAD_HINT), registry=registry, status=status)
    if status != 200:
        raise ServerError("%s answered HTTP %d to the Azure AD token exchange at %s: %s"
                          % (registry, status, url, _said(body, token)), registry=registry, status=status)
    try:
        refresh = json.loads(body.decode("utf-8")).get("refresh_token")
    except (ValueError, UnicodeDecodeError, AttributeError):
        refresh = None
    if not isinstance(refresh, str) or not refresh:
        raise ServerError("%s answered the Azure AD token exchange at %s without a refresh_token" % (registry, url),
                          registry=registry)
    return Credentials(username=ACR_TOKEN_USERNAME, identity_token=refresh)


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
