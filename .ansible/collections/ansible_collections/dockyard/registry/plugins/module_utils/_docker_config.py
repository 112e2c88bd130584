# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""Credentials in the docker CLI's ``config.json``, found and stored the way the docker CLI does.

Lookup order (docker/cli ``configfile.GetCredentialsStore``): a ``credHelpers`` entry for the
registry, else the global ``credsStore``, else the ``auths`` section of the file itself. When a
helper is configured the file only carries an empty ``auths`` entry and the secret lives in the
helper (``docker-credential-<name> get|store|erase``, speaking the docker-credential-helpers
protocol: the server URL as plain text on stdin for ``get``/``erase``, a JSON object for ``store``).

The file is rewritten through ``_io.atomic_write`` (temporary file in the same directory, fsync,
rename; owner and SELinux context kept) with mode 0600, keeps every key it does not manage, and
is indented with a tab like the docker CLI writes it. Each read-modify-write holds the file's
``_io.FileLock``, so two logins at once never lose one another's entry. A file that is not
valid JSON, or that is not a regular file, is an error and is never overwritten.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os

from ansible_collections.dockyard.registry.plugins.module_utils import _command, _io
from ansible_collections.dockyard.registry.plugins.module_utils._auth import Credentials
from ansible_collections.dockyard.registry.plugins.module_utils._errors import InvalidInput, RegistryError

__all__ = [
    "HELPER_TOKEN_USERNAME",
    "default_config_path",
    "load_config",
    "find_credentials",
    "stored_entry",
    "store_credentials",
    "remove_credentials",
    "helper_for",
    "helper_key",
    "set_credential_helper",
    "CredentialHelper",
]

# A helper stores an identity token with this user name (docker/cli credentials/native_store.go).
HELPER_TOKEN_USERNAME = "<token>"

_HELPER_NOT_FOUND = "credentials not found in native keychain"
_HELPER_TIMEOUT = 60
_SECRET_FIELDS = ("auth", "username", "password", "identitytoken", "registrytoken")
_WHAT = "docker config"


def default_config_path() -> str:
    """``$DOCKER_CONFIG/config.json`` when DOCKER_CONFIG is set, else ``~/.docker/config.json``."""
    directory = os.environ.get("DOCKER_CONFIG")
    if not directory:
        directory = os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(directory, "config.json")


def _resolve(config_path: str | None) -> str:
    return os.path.expanduser(config_path) if config_path else default_config_path()


def load_config(config_path: str | None = None) -> dict:
    """The parsed config file; ``{}`` when it does not exist. InvalidInput when it is not a JSON object."""
    path = _resolve(config_path)
    raw = _io.read_file(path, _WHAT)
    if raw is None:
        return {}
    if not raw.strip():
        # The docker CLI treats an empty file as an empty configuration.
        return {}
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            "docker config %s is not valid JSON (%s); fix or remove it, nothing was changed" % (path, exc))
    if not isinstance(data, dict):
        raise InvalidInput("docker config %s must hold a JSON object, nothing was changed" % path)
    return data


def _strip_scheme(key: str) -> str:
    """docker/cli ``credentials.ConvertToHostname``: drop the scheme and any path."""
    value = key
    if value.startswith("http://"):
        value = value[len("http://"):]
    elif value.startswith("https://"):
        value = value[len("https://"):]
    return value.split("/", 1)[0]


def _lookup_keys(registry) -> list:
    """Keys under which a registry's entry may be written, most specific first."""
    keys = [registry.config_key]
    if registry.host not in keys:
        keys.append(registry.host)
    return keys


def _find_auth_key(auths: dict, registry) -> str | None:
    """The ``auths`` key for this registry: exact key first, then any key that names the same host."""
    for key in _lookup_keys(registry):
        if key in auths:
            return key
    wanted = set(_strip_scheme(key) for key in _lookup_keys(registry))
    if registry.is_docker_hub:
        wanted.update(("index.docker.io", "docker.io", "registry-1.docker.io"))
    for key in auths:
        if _strip_scheme(key) in wanted:
            return key
    return None


def _decode_auth(entry: dict, where: str) -> Credentials | None:
    username = entry.get("username") or None
    password = entry.get("password") or None
    encoded = entry.get("auth")
    if encoded:
        try:
            decoded = base64.b64decode(encoded, validate=False).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise InvalidInput("the \"auth\" field for %s in the docker config is not valid base64" % where)
        if ":" not in decoded:
            raise InvalidInput("the \"auth\" field for %s in the docker config is not \"user:password\"" % where)
        username, password = decoded.split(":", 1)
    identity_token = entry.get("identitytoken") or None
    registry_token = entry.get("registrytoken") or None
    if not (username or password or identity_token or registry_token):
        return None
    return Credentials(username=username or None, password=password or None,
                       identity_token=identity_token, registry_token=registry_token)


class CredentialHelper:
    """``docker-credential-<name>``, found on PATH, speaking the docker-credential-helpers protocol."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.program = "docker-credential-%s" % name

    def _run(self, action: str, payload: str) -> tuple:
        try:
            code, out, err = _command.run([self.program, action], data=payload.encode("utf-8"),
                                          timeout=_HELPER_TIMEOUT)
        except FileNotFoundError:
            raise InvalidInput("credential helper %s is configured in the docker config but was not found on PATH"
                               % self.program)
        except OSError as exc:  # TimeoutError included
            raise RegistryError("credential helper %s %s failed: %s" % (self.program, action, exc))
        return code, out.decode("utf-8", "replace").strip(), err.decode("utf-8", "replace").strip()

    def _fail(self, action: str, server: str, out: str, err: str) -> RegistryError:
        # Helper output is the helper's own error text; it never echoes the secret we sent.
        detail = (out or err or "no output").splitlines()[0][:200]
        return RegistryError("credential helper %s %s failed for %s: %s" % (self.program, action, server, detail),
                             registry=server)

    def get(self, server: str) -> Credentials | None:
        code, out, err = self._run("get", server)
        if code != 0:
            if _HELPER_NOT_FOUND in out or _HELPER_NOT_FOUND in err:
                return None
            raise self._fail("get", server, out, err)
        try:
            data = json.loads(out)
        except ValueError:
            raise RegistryError("credential helper %s get returned something that is not JSON for %s"
                                % (self.program, server), registry=server)
        username = data.get("Username") or None
        secret = data.get("Secret") or None
        if username == HELPER_TOKEN_USERNAME:
            return Credentials(identity_token=secret)
        if not (username or secret):
            return None
        return Credentials(username=username, password=secret)

    def store(self, server: str, credentials: Credentials) -> None:
        if credentials.identity_token:
            username, secret = HELPER_TOKEN_USERNAME, credentials.identity_token
        else:
            username, secret = credentials.username or "", credentials.password or ""
        payload = json.dumps({"ServerURL": server, "Username": username, "Secret": secret})
        code, out, err = self._run("store", payload)
        if code != 0:
            raise self._fail("store", server, out, err)

    def erase(self, server: str) -> None:
        code, out, err = self._run("erase", server)
        if code != 0 and _HELPER_NOT_FOUND not in out and _HELPER_NOT_FOUND not in err:
            raise self._fail("erase", server, out, err)


def helper_for(config: dict, registry) -> CredentialHelper | None:
    """The helper the docker CLI would use for this registry: ``credHelpers`` entry, else ``credsStore``."""
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict):
        for key in _lookup_keys(registry):
            name = helpers.get(key)
            if name:
                return CredentialHelper(name)
    store = config.get("credsStore")
    if store:
        return CredentialHelper(store)
    return None


def find_credentials(registry, config_path: str | None = None) -> Credentials | None:
    """Credentials for ``registry`` as the docker CLI would find them, or None."""
    config = load_config(config_path)
    helper = helper_for(config, registry)
    if helper is not None:
        # With a helper configured the docker CLI never falls back to the file's auths.
        return helper.get(registry.config_key)
    return stored_entry(config, registry)


def stored_entry(config: dict, registry) -> Credentials | None:
    """Credentials held in the file's ``auths`` section for ``registry`` (helpers not consulted)."""
    auths = config.get("auths")
    if not isinstance(auths, dict):
        return None
    key = _find_auth_key(auths, registry)
    if key is None or not isinstance(auths[key], dict):
        return None
    return _decode_auth(auths[key], key)


def _same(a: Credentials | None, b: Credentials | None) -> bool:
    if a is None or b is None:
        return a is b
    return (a.username, a.password, a.identity_token) == (b.username, b.password, b.identity_token)


def _entry_for(credentials: Credentials) -> dict:
    entry = {}
    if credentials.username is not None or credentials.password is not None:
        raw = "%s:%s" % (credentials.username or "", credentials.password or "")
        entry["auth"] = base64.b64encode(raw.encode("utf-8")).decode("ascii")
    if credentials.identity_token:
        entry["identitytoken"] = credentials.identity_token
    return entry


def _write_config(path: str, config: dict) -> None:
    """Atomically replace ``path`` with ``config``, mode 0600 (it holds credentials), owner kept."""
    data = (json.dumps(config, indent="\t") + "\n").encode("utf-8")
    _io.atomic_write(path, data, what=_WHAT, mode=0o600)


@contextlib.contextmanager
def _locked(path: str, check_mode: bool, create_directory: bool):
    """Hold the config file's lock for one read-modify-write (nothing in check mode).

    ``create_directory``: make the directory (0700, as the docker CLI does) first, so that the
    lock file has a home; only done when a write is certain to follow.
    """
    if check_mode:
        yield
        return
    directory = os.path.dirname(_io.resolve_path(path))
    if not os.path.isdir(directory):
        if not create_directory:
            yield
            return
        try:
            os.makedirs(directory, mode=0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise RegistryError("cannot create directory %s for the docker config: %s"
                                % (directory, exc.strerror or exc))
    with _io.FileLock(path, what=_WHAT):
        yield


def store_credentials(registry, credentials: Credentials, config_path: str | None = None,
                      check_mode: bool = False) -> bool:
    """Store ``credentials`` for ``registry``; True when the stored entry changed (or would change)."""
    path = _resolve(config_path)
    # Storing always needs the directory: without it there is no file and so nothing stored yet.
    with _locked(path, check_mode, create_directory=True):
        return _store(path, registry, credentials, check_mode)


def _store(path: str, registry, credentials: Credentials, check_mode: bool) -> bool:
    config = load_config(path)
    helper = helper_for(config, registry)
    auths = config.get("auths")
    if auths is None:
        auths = {}
    if not isinstance(auths, dict):
        raise InvalidInput("\"auths\" in docker config %s is not an object, nothing was changed" % path)
    key = _find_auth_key(auths, registry)

    # An existing entry is updated under its own key (written with or without scheme); a new one
    # gets the key the docker CLI would write.
    target = key if key is not None else registry.config_key
    old_entry = auths.get(target)
    kept = {}
    if isinstance(old_entry, dict):
        kept = dict((k, v) for k, v in old_entry.items() if k not in _SECRET_FIELDS)

    helper_changed = False
    if helper is not None:
        helper_changed = not _same(helper.get(registry.config_key), credentials)
        # The docker CLI keeps a secret-free entry in auths so that the registry stays listed.
        wanted_entry = kept
    else:
        wanted_entry = dict(kept)
        wanted_entry.update(_entry_for(credentials))
    file_changed = old_entry != wanted_entry
    changed = helper_changed or file_changed
    if check_mode or not changed:
        return changed
    if helper_changed:
        helper.store(registry.config_key, credentials)
    if file_changed:
        auths[target] = wanted_entry
        config["auths"] = auths
        _write_config(path, config)
    return True


def remove_credentials(registry, config_path: str | None = None, check_mode: bool = False) -> bool:
    """Remove the entry for ``registry`` (and erase it from the helper); True when something was removed."""
    path = _resolve(config_path)
    with _locked(path, check_mode, create_directory=False):
        return _remove(path, registry, check_mode)


def _remove(path: str, registry, check_mode: bool) -> bool:
    config = load_config(path)
    helper = helper_for(config, registry)
    auths = config.get("auths")
    keys = []
    if isinstance(auths, dict):
        while True:
            key = _find_auth_key(auths, registry)
            if key is None or key in keys:
                break
            keys.append(key)
            auths = dict((k, v) for k, v in auths.items() if k != key)
    in_helper = helper is not None and helper.get(registry.config_key) is not None
    changed = bool(keys) or in_helper
    if check_mode or not changed:
        return changed
    if in_helper:
        helper.erase(registry.config_key)
    if keys:
        config["auths"] = auths
        _write_config(path, config)
    return True


def helper_key(registry) -> str:
    """The ``credHelpers`` key for a registry: its host, as ``gcloud auth configure-docker`` and
    ``docker-credential-ecr-login``'s documentation write it (Docker Hub: ``index.docker.io``)."""
    return "index.docker.io" if registry.is_docker_hub else registry.host


def set_credential_helper(registry, helper: str | None, config_path: str | None = None,
                          check_mode: bool = False) -> tuple:
    """Point ``credHelpers[<host>]`` at ``helper`` (``docker-credential-<helper>``), or remove that
    entry when ``helper`` is None; every other key and entry of the file is kept.

    Returns ``(changed, before)``, ``before`` being the helper named there until now (or None).
    No secret is involved: the helper fetches credentials itself when the docker CLI asks it.
    """
    path = _resolve(config_path)
    with _locked(path, check_mode, create_directory=helper is not None):
        config = load_config(path)
        helpers = config.get("credHelpers")
        if helpers is None:
            helpers = {}
        if not isinstance(helpers, dict):
            raise InvalidInput("\"credHelpers\" in docker config %s is not an object, nothing was changed" % path)
        key = helper_key(registry)
        before = helpers.get(key)
        if before == helper:
            return False, before
        if check_mode:
            return True, before
        helpers = dict(helpers)
        if helper is None:
            del helpers[key]
        else:
            helpers[key] = helper
        if helpers:
            config["credHelpers"] = helpers
        else:
            config.pop("credHelpers", None)
        _write_config(path, config)
        return True, before
