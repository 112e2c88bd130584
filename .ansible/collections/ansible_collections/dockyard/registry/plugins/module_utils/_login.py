# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""registry_login's work: verify credentials (GET /v2/) and store them where the docker CLI
looks (:mod:`_docker_config`), or remove them; cloud providers through :mod:`_providers`."""

from __future__ import annotations

import os
import re
import shutil

from ansible_collections.dockyard.registry.plugins.module_utils._argspec import client_from_params
from ansible_collections.dockyard.registry.plugins.module_utils._auth import Credentials
from ansible_collections.dockyard.registry.plugins.module_utils._client import RetryStats
from ansible_collections.dockyard.registry.plugins.module_utils._docker_config import (
    default_config_path,
    find_credentials,
    helper_for,
    helper_key,
    load_config,
    remove_credentials,
    set_credential_helper,
    store_credentials,
)
from ansible_collections.dockyard.registry.plugins.module_utils._errors import InvalidInput, Unauthorized
from ansible_collections.dockyard.registry.plugins.module_utils._providers import (
    ACR_TOKEN_USERNAME,
    ECR_USERNAME,
    acr_exchange,
    login_for,
    resolve_provider,
)
from ansible_collections.dockyard.registry.plugins.module_utils._reference import parse_registry

__all__ = ["registry_login", "RegistryLogin"]

_ABSENT_DEFAULTS = {"ghcr": "ghcr.io", "gcr": "gcr.io"}
_HELPER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SECRET_OPTIONS = ("username", "password", "service_account_key", "aad_access_token", "aws_access_key_id",
                   "aws_secret_access_key", "aws_session_token")


class RegistryLogin:
    """Log in or out; ``run()`` returns the module result (without ``changed`` secrets, ever)."""

    def __init__(self, params: dict, check_mode: bool = False, diff: bool = False,
                 retry_stats: RetryStats | None = None) -> None:
        self.params = params
        self.check_mode = check_mode
        self.want_diff = diff
        self.retry_stats = retry_stats if retry_stats is not None else RetryStats()
        self.config_path = params.get("config_path") or default_config_path()

    def _result(self, registry, provider: str, changed: bool, **extra) -> dict:
        helper = helper_for(load_config(self.config_path), registry)
        result = dict(changed=changed, registry=registry.config_key, provider=provider,
                      config_path=self.config_path,
                      credentials_store=helper.name if helper is not None else None)
        result.update(extra)
        return result

    def _diff(self, registry, before, after) -> dict:
        def side(credentials):
            if credentials is None:
                return {"registry": registry.config_key, "logged_in": False}
            return {"registry": registry.config_key, "logged_in": True, "username": credentials.username}
        before_side, after_side = side(before), side(after)
        if before is not None and after is not None and before_side == after_side:
            # Same user, new secret: say so without showing either secret.
            before_side["secret"] = "old"
            after_side["secret"] = "new"
        return {"before": before_side, "after": after_side}

    def run(self) -> dict:
        params = self.params
        provider = resolve_provider(params["provider"], params.get("registry"), params.get("username"),
                                    params.get("password"))
        if params.get("credential_helper"):
            return self.helper(provider)
        if params.get("aad_access_token") or params.get("tenant"):
            if provider != "acr":
                raise InvalidInput("aad_access_token and tenant are for provider acr (an Azure Container Registry), "
                                   "not for provider %s" % provider)
            if params["state"] == "present":
                return self.acr_token_login()
        if params["state"] == "absent":
            return self.logout(provider)
        return self.login(provider)

    def _address(self, provider: str, what: str):
        address = self.params.get("registry") or _ABSENT_DEFAULTS.get(provider)
        if not address:
            if provider not in ("generic", "dockerhub", "auto"):
                raise InvalidInput("%s with provider %s needs registry" % (what, provider))
            address = "docker.io"
        return parse_registry(address)

    def helper(self, provider: str) -> dict:
        """``credHelpers[<host>] = <credential_helper>`` (or its removal): what ``gcloud auth configure-docker``
        and the Amazon ECR credential helper's set-up do. The helper obtains credentials itself when the
        docker CLI asks, so nothing is verified or stored here."""
        params = self.params
        name = params["credential_helper"]
        if not _HELPER_NAME.match(name) or name.startswith("docker-credential-"):
            raise InvalidInput("credential_helper %r is not a helper name: give the part after docker-credential- "
                               "(gcloud for docker-credential-gcloud, ecr-login for docker-credential-ecr-login)"
                               % name)
        given = [option for option in _SECRET_OPTIONS if params.get(option)]
        if given:
            raise InvalidInput("credential_helper %s fetches the credentials itself; do not give %s"
                               % (name, ", ".join(given)))
        registry = self._address(provider, "credential_helper")
        present = params["state"] == "present"
        current = (load_config(self.config_path).get("credHelpers") or {}).get(helper_key(registry))
        if not present and current not in (None, name):
            # Another helper for this registry: not this task's to remove.
            return self._result(registry, provider, False, credential_helper=name, verified=False)
        changed, before = set_credential_helper(registry, name if present else None, self.config_path,
                                                check_mode=self.check_mode)
        program = "docker-credential-%s" % name
        found = shutil.which(program, path=os.environ.get("PATH")) is not None
        result = self._result(registry, provider, changed, credential_helper=name, helper_found=found,
                              verified=False)
        if present and not found:
            result["warnings"] = ["%s is not on the PATH of the managed node: the docker CLI cannot get credentials "
                                  "for %s until it is installed" % (program, registry.host)]
        if self.want_diff:
            result["diff"] = {"before": {"registry": helper_key(registry), "credential_helper": before},
                              "after": {"registry": helper_key(registry),
                                        "credential_helper": name if present else None}}
        return result

    def acr_token_login(self) -> dict:
        """Azure AD access token -> ACR refresh token (``/oauth2/exchange``), verified, stored as an
        identity token for user 00000000-0000-0000-0000-000000000000, as ``az acr login`` does. A stored
        refresh token the registry still accepts is kept (every exchange gives a new one)."""
        params = self.params
        if not params.get("aad_access_token"):
            raise InvalidInput("tenant needs aad_access_token (an Azure AD access token to exchange)")
        given = [option for option in ("username", "password") if params.get(option)]
        if given:
            raise InvalidInput("aad_access_token logs in with an ACR refresh token; do not give %s (that is the "
                               "service principal login)" % ", ".join(given))
        if not params.get("registry"):
            raise InvalidInput("provider acr needs registry (<name>.azurecr.io)")
        registry = parse_registry(params["registry"])
        before = find_credentials(registry, self.config_path)
        if not params["reauthorize"] and before is not None and before.username == ACR_TOKEN_USERNAME \
                and before.identity_token:
            try:
                with client_from_params(params, registry, credentials=before, retry_stats=self.retry_stats) as client:
                    client.ping()
            except Unauthorized:
                pass
            else:
                result = self._result(registry, "acr", False, username=ACR_TOKEN_USERNAME, verified=True)
                if self.want_diff:
                    result["diff"] = self._diff(registry, before, before)
                return result
        with client_from_params(params, registry, credentials=Credentials(), retry_stats=self.retry_stats) as client:
            credentials = acr_exchange(client, params["aad_access_token"], params.get("tenant"))
        with client_from_params(params, registry, credentials=credentials, retry_stats=self.retry_stats) as client:
            client.ping()
        changed = store_credentials(registry, credentials, self.config_path, check_mode=self.check_mode)
        result = self._result(registry, "acr", changed, username=ACR_TOKEN_USERNAME, verified=True)
        if self.want_diff:
            result["diff"] = self._diff(registry, before, credentials) if changed else \
                self._diff(registry, before, before)
        return result

    def logout(self, provider: str) -> dict:
        address = self.params.get("registry") or _ABSENT_DEFAULTS.get(provider)
        if not address:
            if provider in ("ecr", "acr"):
                raise InvalidInput("state=absent with provider %s needs registry" % provider)
            address = "docker.io"
        registry = parse_registry(address)
        before = find_credentials(registry, self.config_path)
        changed = remove_credentials(registry, self.config_path, check_mode=self.check_mode)
        result = self._result(registry, provider, changed)
        if self.want_diff:
            result["diff"] = self._diff(registry, before if changed else None, None)
        return result

    def login(self, provider: str) -> dict:
        params = self.params
        registry, credentials = login_for(
            provider, params.get("registry"), params.get("username"), params.get("password"),
            region=params.get("region"), profile=params.get("profile"), registry_id=params.get("registry_id"),
            endpoint_url=params.get("endpoint_url"), aws_access_key_id=params.get("aws_access_key_id"),
            aws_secret_access_key=params.get("aws_secret_access_key"),
            aws_session_token=params.get("aws_session_token"),
            service_account_key=params.get("service_account_key"))
        before = find_credentials(registry, self.config_path)

        if provider == "ecr" and not params["reauthorize"] and before is not None \
                and before.username == ECR_USERNAME and before.password:
            try:
                with client_from_params(params, registry, credentials=before, retry_stats=self.retry_stats) as client:
                    client.ping()
            except Unauthorized:
                pass
            else:
                result = self._result(registry, provider, False, username=before.username, verified=True)
                if self.want_diff:
                    result["diff"] = self._diff(registry, before, before)
                return result

        # Verify before writing anything: a rejected login must not replace working credentials.
        with client_from_params(params, registry, credentials=credentials,
                                retry_stats=self.retry_stats) as client:
            client.ping()
        changed = store_credentials(registry, credentials, self.config_path, check_mode=self.check_mode)
        result = self._result(registry, provider, changed, username=credentials.username, verified=True)
        if self.want_diff:
            result["diff"] = self._diff(registry, before, credentials) if changed else \
                self._diff(registry, before, before)
        return result


def registry_login(params: dict, check_mode: bool = False, diff: bool = False, retry_stats: RetryStats | None = None) -> dict:
    """The module's result for its parameters (what ``run_registry_module`` calls)."""
    return RegistryLogin(params, check_mode=check_mode, diff=diff, retry_stats=retry_stats).run()
