# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""Credentials and the registry auth flows: anonymous, Basic and Bearer tokens.

The client sends a request; when the registry answers 401 it hands the
``WWW-Authenticate`` challenge to :meth:`Authenticator.handle_challenge`, which picks
Basic or fetches a Bearer token from the realm (docker's token protocol, or the OAuth2
refresh-token grant when an identity token is known). Tokens are cached per
``(realm, service, scopes)`` until shortly before they expire, and a cached token whose
scopes cover a request is reused, so a copy engine does not fetch one per request.

Secrets never appear in ``repr()``/``str()`` of anything here nor in error messages.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence
from urllib.parse import urlencode

from ansible_collections.dockyard.registry.plugins.module_utils._errors import (
    Denied,
    ServerError,
    Unauthorized,
    Unsupported,
)
from ansible_collections.dockyard.registry.plugins.module_utils._reference import Registry

__all__ = [
    "Credentials",
    "Authenticator",
    "TokenFetch",
    "parse_challenge",
    "basic_authorization",
    "unauthorized_message",
    "DEFAULT_TOKEN_LIFETIME",
]

# The token spec: "if expires_in is not given, a token is valid for 60 seconds".
DEFAULT_TOKEN_LIFETIME = 60
CLIENT_ID = "dockyard.registry"

# fetch(method, url, headers, body) -> (status, body bytes); raises RegistryError (Unreachable, TLSError...).
# A string: an alias is evaluated at import, and module code still runs on Python 3.8 (no dict[...] there).
TokenFetch = "Callable[[str, str, dict[str, str], bytes | None], tuple[int, bytes]]"


@dataclass(repr=False)
class Credentials:
    """What we may present to a registry. Every field is optional (all None = anonymous)."""

    username: str | None = None
    password: str | None = None
    identity_token: str | None = None  # docker config "identitytoken" (OAuth2 refresh token)
    registry_token: str | None = None  # docker config "registrytoken": a ready bearer token

    @property
    def has_basic(self) -> bool:
        return bool(self.username) and self.password is not None

    @property
    def is_anonymous(self) -> bool:
        return not (self.has_basic or self.identity_token or self.registry_token)

    def __repr__(self) -> str:
        def hidden(value: str | None) -> str:
            return "None" if value is None else "'<hidden>'"

        return "Credentials(username=%r, password=%s, identity_token=%s, registry_token=%s)" % (
            self.username, hidden(self.password), hidden(self.identity_token), hidden(self.registry_token))

    __str__ = __repr__


_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*(?:,|\Z)')
_UNESCAPE = re.compile(r"\\(.)")


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``'Bearer realm="https://a/token",service="reg"'`` -> ``("bearer", {"realm": ..., "service": ...})``.

    Only the first challenge of the header is read. Parameter names are lower-cased.
    An empty or unparsable header gives ``("", {})``.
    """
    header = (header or "").strip()
    scheme, _sep, rest = header.partition(" ")
    if not scheme or "=" in scheme:
        return "", {}
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        match = _PARAM.match(rest, pos)
        if not match or match.end() == pos:
            break
        quoted, bare = match.group(2), match.group(3)
        params[match.group(1).lower()] = _UNESCAPE.sub(r"\1", quoted) if quoted is not None else bare
        pos = match.end()
    return scheme.lower(), params


def basic_authorization(username: str, password: str) -> str:
    raw = ("%s:%s" % (username, password)).encode("utf-8")
    return "Basic " + base64.b64encode(raw).decode("ascii")


def unauthorized_message(registry: Registry, reference: str | None = None, detail: str | None = None) -> str:
    about = " (%s)" % reference if reference else ""
    why = ": %s" % detail if detail else ""
    return ("authentication failed at %s%s%s: bad or missing credentials for %s; log in again "
            "(dockyard.registry.registry_login) or give username/password"
            % (registry.display, about, why, registry.display))


def _scope_key(scopes: Sequence[str]) -> frozenset:
    return frozenset(s for s in scopes if s)


class Authenticator:
    """Answers auth challenges for one registry and caches tokens. Thread-safe.

    ``fetch`` performs a plain HTTP request for the token endpoint (the client passes
    its own transport, TLS settings and retries) and returns ``(status, body)``.
    """

    def __init__(self, registry: Registry, credentials: Credentials | None, fetch: TokenFetch, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        self._credentials = credentials or Credentials()
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.RLock()
        self._scheme: str | None = None  # "basic" / "bearer" once a challenge was seen
        self._realm: str | None = None
        self._service: str | None = None
        self._tokens: dict[tuple[str, str, frozenset], tuple[str, float]] = {}
        self.token_requests = 0  # how many token fetches were made (for tests and stats)

    def __repr__(self) -> str:
        return "Authenticator(registry=%r, scheme=%r)" % (self.registry.display, self._scheme)

    @property
    def scheme(self) -> str | None:
        """``None`` until a challenge was seen, then ``"basic"`` or ``"bearer"``."""
        return self._scheme

    @property
    def credentials(self) -> Credentials:
        return self._credentials

    def authorization(self, scopes: list[str], reference: str | None = None) -> str | None:
        """The ``Authorization`` value for a request needing ``scopes``, or None (send anonymously).

        Before the first challenge we do not know the scheme and send nothing (unless a
        ready registry token was given). Once Bearer is known, a cached token that covers
        ``scopes`` is reused, else a new one is fetched here.
        """
        creds = self._credentials
        if creds.registry_token:
            return "Bearer " + creds.registry_token
        with self._lock:
            if self._scheme == "basic":
                return basic_authorization(creds.username, creds.password) if creds.has_basic else None
            if self._scheme == "bearer":
                token = self._cached_token(scopes)
                if token is None:
                    token = self._fetch_token(scopes, reference)
                return "Bearer " + token
        return None

    def handle_challenge(self, www_authenticate: str, scopes: list[str], reference: str | None = None) -> str:
        """Answer a 401 challenge: return a fresh ``Authorization`` value or raise Unauthorized."""
        scheme, params = parse_challenge(www_authenticate)
        creds = self._credentials
        with self._lock:
            if scheme == "basic":
                if not creds.has_basic:
                    raise Unauthorized(unauthorized_message(self.registry, reference, "the registry requires a login"),
                                       registry=self.registry.display, reference=reference, status=401)
                self._scheme = "basic"
                return basic_authorization(creds.username, creds.password)
            if scheme == "bearer":
                if creds.registry_token:
                    raise Unauthorized(unauthorized_message(self.registry, reference,
                                                            "the stored registry token was refused"),
                                       registry=self.registry.display, reference=reference, status=401)
                realm = params.get("realm")
                if not realm:
                    raise ServerError("%s sent a Bearer challenge without a realm; cannot fetch a token"
                                      % self.registry.display, registry=self.registry.display, reference=reference)
                self._scheme = "bearer"
                self._realm = realm
                self._service = params.get("service", "")
                wanted = list(scopes)
                for extra in (params.get("scope") or "").split():
                    if extra not in wanted:
                        wanted.append(extra)
                # a 401 means the token we sent (if any) is no good: drop what covers these scopes
                key = _scope_key(wanted)
                for cached in [k for k in self._tokens if k[0] == realm and k[2] >= key]:
                    del self._tokens[cached]
                return "Bearer " + self._fetch_token(wanted, reference)
            raise Unsupported("%s asks for authentication scheme %r, which is not supported (Basic and Bearer are)"
                              % (self.registry.display, scheme or www_authenticate[:40]),
                              registry=self.registry.display, reference=reference, status=401)

    def _cached_token(self, scopes: Sequence[str]) -> str | None:
        key = _scope_key(scopes)
        now = self._clock()
        for (realm, service, cached_scopes), (token, expires_at) in list(self._tokens.items()):
            if realm == self._realm and service == self._service and cached_scopes >= key:
                if expires_at > now:
                    return token
                del self._tokens[(realm, service, cached_scopes)]
        return None

    def _fetch_token(self, scopes: Sequence[str], reference: str | None) -> str:
        realm, service = self._realm or "", self._service or ""
        scopes = [s for s in scopes if s]
        creds = self._credentials
        if creds.identity_token:
            form = [("grant_type", "refresh_token"), ("refresh_token", creds.identity_token),
                    ("client_id", CLIENT_ID)]
            if service:
                form.append(("service", service))
            if scopes:
                form.append(("scope", " ".join(scopes)))
            status, body = self._fetch("POST", realm, {"Content-Type": "application/x-www-form-urlencoded"},
                                       urlencode(form).encode("ascii"))
        else:
            query = []
            if service:
                query.append(("service", service))
            query.extend(("scope", scope) for scope in scopes)
            headers = {}
            if creds.has_basic:
                query.append(("account", creds.username))
                headers["Authorization"] = basic_authorization(creds.username, creds.password)
            url = realm
            if query:
                url += ("&" if "?" in realm else "?") + urlencode(query)
            status, body = self._fetch("GET", url, headers, None)
        self.token_requests += 1
        where = "the token server of %s" % self.registry.display
        if status == 401:
            raise Unauthorized(unauthorized_message(self.registry, reference, "%s refused the credentials" % where),
                               registry=self.registry.display, reference=reference, status=401)
        if status == 403:
            raise Denied("%s denied a token for %s: the account lacks permission for %s"
                         % (where, " ".join(scopes) or "login", reference or self.registry.display),
                         registry=self.registry.display, reference=reference, status=403)
        if status != 200:
            raise ServerError("%s answered HTTP %d to a token request" % (where, status),
                              registry=self.registry.display, reference=reference, status=status)
        try:
            data = json.loads(body.decode("utf-8"))
            token = data.get("token") or data.get("access_token")
            lifetime = float(data.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (ValueError, AttributeError, TypeError, UnicodeDecodeError):
            token, lifetime = None, 0.0
        if not token or not isinstance(token, str):
            raise ServerError("%s answered without a token" % where,
                              registry=self.registry.display, reference=reference)
        lifetime = max(lifetime, 1.0)
        # renew a little early so a token does not expire between our check and the request
        margin = min(10.0, lifetime * 0.1)
        self._tokens[(realm, service, _scope_key(scopes))] = (token, self._clock() + lifetime - margin)
        return token
