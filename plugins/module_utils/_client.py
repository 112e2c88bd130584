# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""A typed client for the OCI distribution (registry v2) HTTP API.

Bytes move through :mod:`_transport` (keep-alive connections, TLS, proxies); content is
modelled by :mod:`_manifest`. This file is the registry semantics between them: every
request goes through :meth:`RegistryClient._request`, which adds auth (one re-auth on 401),
retries with exponential backoff and jitter (connection errors, 5xx, 429 with
``Retry-After``; bounded in count and in total wait, counted in :class:`RetryStats`),
redirects for blob downloads (``Authorization`` dropped when the redirect leaves the
registry's host), and maps failures to the :mod:`_errors` kinds with messages that name the
registry, the request and the problem, but never a secret.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import io
import json
import random
import re
import socket
import ssl
import threading
import time
from email.utils import parsedate_to_datetime
from typing import BinaryIO, Callable, Sequence, TypeVar
from urllib.parse import quote, urlencode, urljoin, urlsplit

from ansible_collections.dockyard.registry.plugins.module_utils._auth import (
    Authenticator,
    Credentials,
    parse_challenge,
    unauthorized_message,
)
from ansible_collections.dockyard.registry.plugins.module_utils._errors import (
    Denied,
    DigestMismatch,
    InvalidInput,
    NotFound,
    RegistryError,
    ServerError,
    TLSError,
    Unauthorized,
    Unreachable,
    Unsupported,
)
from ansible_collections.dockyard.registry.plugins.module_utils._manifest import (
    MANIFEST_MEDIA_TYPES,
    SCHEMA1_MEDIA_TYPES,
    Descriptor,
    Manifest,
    sha256_digest,
)
from ansible_collections.dockyard.registry.plugins.module_utils._reference import (
    Registry,
    is_digest,
    validate_digest,
)
from ansible_collections.dockyard.registry.plugins.module_utils._transport import (
    ConnectionDropped,
    HttpTransport,
    Transport,
    VerifyingReader,
    readinto_from_read,
    tls_context,
)

__all__ = [
    "RegistryClient",
    "RetryStats",
    "parse_retry_after",
]

USER_AGENT = "dockyard.registry"
DEFAULT_PAGE_SIZE = 1000
MAX_REDIRECTS = 5
ERROR_BODY_LIMIT = 64 * 1024
SMALL_BODY_LIMIT = 32 * 1024 * 1024  # manifests and configs; the spec caps manifests at 4 MiB
RETRY_STATUSES = frozenset([429, 500, 502, 503, 504])
_REDIRECTS = frozenset([301, 302, 303, 307, 308])
_LINK_NEXT = re.compile(r'<([^>]*)>\s*;[^,]*?rel="?next"?', re.IGNORECASE)
_T = TypeVar("_T")


# ---------------------------------------------------------------------------------------------
# Retry policy and what it did
# ---------------------------------------------------------------------------------------------

class RetryStats:
    """What retries happened, for the module result and a warning (a flapping registry must not
    look healthy). One object may be shared by several clients and threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.statuses: dict[str, int] = {}  # HTTP status -> retries it caused
        self.network_errors = 0     # connection errors, timeouts, bodies that broke off
        self.waited = 0.0           # seconds slept before retries
        self.registries: list[str] = []  # in the order they first needed a retry

    def record(self, registry: str, status: int | None, waited: float) -> None:
        with self._lock:
            self.count += 1
            if status is None:
                self.network_errors += 1
            else:
                self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
            self.waited += waited
            if registry not in self.registries:
                self.registries.append(registry)

    def as_dict(self) -> dict:
        with self._lock:
            return {"count": self.count, "statuses": dict(self.statuses), "network_errors": self.network_errors,
                    "waited": round(self.waited, 3)}

    def warning(self) -> str | None:
        """The text for ``module.warn()`` when anything was retried, else None."""
        with self._lock:
            if not self.count:
                return None
            why = ["HTTP %s x%d" % (status, n) for status, n in sorted(self.statuses.items())]
            if self.network_errors:
                why.append("connection errors x%d" % self.network_errors)
            return ("%d request(s) to %s were retried (%s; %.1f s spent waiting): the registry is overloaded, "
                    "rate-limiting or flapping"
                    % (self.count, ", ".join(self.registries), ", ".join(why), self.waited))


class _RetryBudget:
    """Counts the retries of one request and the time spent waiting for them; decides the next wait."""

    def __init__(self, retries: int, max_wait: float, backoff: float, sleep: Callable[[float], None],
                 record: Callable[[int | None, float], None]) -> None:
        self.retries = retries
        self.max_wait = max_wait
        self.backoff = backoff
        self._sleep = sleep
        self._record = record
        self.attempt = 0
        self.waited = 0.0

    def wait(self, retry_after: float | None = None, status: int | None = None) -> bool:
        """Sleep before the next attempt; False when the budget is spent (give up)."""
        if self.attempt >= self.retries:
            return False
        remaining = self.max_wait - self.waited
        if retry_after is not None:
            delay = max(0.0, retry_after)
            if delay > remaining:
                return False
            # Never earlier than asked, but spread by up to a quarter of it (at most the first
            # backoff): threads told to wait the same second otherwise all come back at once, in
            # the order they left - the burst that was rate-limited, again.
            delay = min(delay + random.uniform(0.0, min(self.backoff, delay / 4)), remaining)
        else:
            ceiling = self.backoff * (2 ** self.attempt)
            delay = min(random.uniform(ceiling / 2, ceiling), remaining)
            if delay <= 0 and self.backoff > 0:
                return False
        self.attempt += 1
        self.waited += delay
        self._record(status, delay)
        if delay > 0:
            self._sleep(delay)
        return True


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP-date; None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now())


class _Retry(Exception):
    """Internal: this attempt failed in a way worth retrying (within the budget)."""

    def __init__(self, error: RegistryError, retry_after: float | None = None, response=None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after
        self.response = response     # raw requests: the answer to return once the budget is spent
        self.session: str | None = None  # an upload session the next attempt may reuse


class _Again(Exception):
    """Internal: send again at once, outside the budget (a redirect, a re-auth, a dropped keep-alive)."""


class _Exchange:
    """The state of one request across its attempts."""

    __slots__ = ("url", "origin", "auth_value", "reauthed", "dropped_once", "redirects", "seen")

    def __init__(self, url: str, auth_value: str | None) -> None:
        self.url = url
        self.origin = urlsplit(url)
        self.auth_value = auth_value
        self.reauthed = False
        self.dropped_once = False
        self.redirects = 0
        self.seen = {url}


# ---------------------------------------------------------------------------------------------
# Request bodies
# ---------------------------------------------------------------------------------------------

class _SourceReadError(Exception):
    """Reading the body we were sending failed (e.g. a source blob stream was cut)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__("reading the upload source failed: %s" % (cause,))
        self.cause = cause


class _UploadBody(io.RawIOBase):
    """Exactly ``size`` bytes from ``stream``; source errors are wrapped so they are told apart."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        super().__init__()
        self._stream = stream
        self._remaining = size

    def readable(self) -> bool:
        return True

    def read(self, amt: int = -1) -> bytes:
        if self._remaining <= 0:
            return b""
        if amt is None or amt < 0 or amt > self._remaining:
            amt = self._remaining
        try:
            data = self._stream.read(amt)
        except Exception as exc:
            raise _SourceReadError(exc) from None
        if not data:
            raise _SourceReadError(EOFError("the source ended %d bytes early" % self._remaining))
        self._remaining -= len(data)
        return data

    readinto = readinto_from_read


def _shown(url: str) -> str:
    """A URL for a message: no query (presigned storage URLs carry signatures)."""
    parts = urlsplit(url)
    return "%s://%s%s" % (parts.scheme, parts.netloc, parts.path)


# ---------------------------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------------------------

def _errors_of(body: bytes) -> list[dict]:
    try:
        data = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return []
    errors = data.get("errors") if isinstance(data, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _registry_says(errors: list[dict]) -> str:
    parts = []
    for error in errors[:3]:
        code = str(error.get("code") or "").strip()
        message = str(error.get("message") or "").strip()
        parts.append(("%s: %s" % (code, message)) if code and message else (code or message))
    text = "; ".join(p for p in parts if p)
    return (" (registry says %s)" % text[:300]) if text else ""


class RegistryClient:
    """One registry, one set of credentials; safe to share between threads.

    Keyword-only extras beyond docs/internals.md (all optional): ``backoff`` (first retry
    wait in seconds, doubled each time, jittered), ``page_size`` (``n`` for catalog/tags),
    ``retry_stats`` (a :class:`RetryStats` to count retries in, shared by the clients of one
    module run), ``sleep``/``clock``/``wall_clock`` (injected by unit tests so nothing really
    sleeps), ``user_agent``.
    """

    def __init__(self, registry: Registry, credentials: Credentials | None = None, *,
                 validate_certs: bool = True, ca_cert: str | None = None,
                 client_cert: str | None = None, client_key: str | None = None,
                 timeout: float = 60, retries: int = 5, max_retry_wait: float = 60,
                 transport: Transport | None = None, backoff: float = 0.5,
                 page_size: int = DEFAULT_PAGE_SIZE,
                 retry_stats: RetryStats | None = None,
                 option_prefix: str = "",
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time,
                 user_agent: str = USER_AGENT) -> None:
        self.registry = registry
        self.credentials = credentials or Credentials()
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.max_retry_wait = max_retry_wait
        self.backoff = backoff
        self.page_size = page_size
        self.retry_stats = retry_stats if retry_stats is not None else RetryStats()
        self._sleep = sleep
        self._clock = clock
        self._answered = False  # set once any request got an HTTP answer (see _network_error)
        self._wall_clock = wall_clock
        self._user_agent = user_agent
        if transport is None:
            # An http:// registry's token realm or blob storage may still be HTTPS, so it gets
            # a context too; but loading the system CAs costs ~30-60 ms per client, so for a
            # plain-HTTP registry without certificate files it is built on the first HTTPS
            # connection only. Certificate files are always loaded here: a bad one fails early.
            display = registry.display
            if registry.scheme == "https" or ca_cert or client_cert or client_key:
                context = tls_context(validate_certs, ca_cert, client_cert, client_key, registry=display,
                                      prefix=option_prefix)
            else:
                context = functools.partial(tls_context, validate_certs, registry=display, prefix=option_prefix)
            transport = HttpTransport(context)
        self.transport = transport
        # an _pool.AdaptiveLimit shared by the threads using this client (registry_sync sets
        # one per registry); None: no limit beyond the caller's thread count
        self.limiter = None
        self.auth = Authenticator(registry, self.credentials, self._token_fetch, clock=clock)

    def __repr__(self) -> str:
        return "RegistryClient(%r)" % self.registry.base_url

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> "RegistryClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- helpers --------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return self.registry.base_url + path

    def _ref(self, repository: str | None = None, reference: str | None = None) -> str | None:
        if repository is None:
            return None
        if reference is None:
            return "%s/%s" % (self.registry.display, repository)
        sep = "@" if is_digest(reference) else ":"
        return "%s/%s%s%s" % (self.registry.display, repository, sep, reference)

    @staticmethod
    def _repo_path(repository: str) -> str:
        return quote(repository, safe="/")

    @staticmethod
    def _request_line(method: str, url: str) -> str:
        """``GET /v2/team/app/manifests/1.0`` for messages (no host, no query: upload URLs carry state)."""
        return "%s %s" % (method, urlsplit(url).path or "/")

    def _budget(self) -> _RetryBudget:
        display = self.registry.display
        stats = self.retry_stats
        return _RetryBudget(self.retries, self.max_retry_wait, self.backoff, self._sleep,
                            lambda status, waited: stats.record(display, status, waited))

    def _network_error(self, exc: BaseException, url: str, reference: str | None) -> tuple[RegistryError, bool]:
        """Map a transport exception to (error, retry?)."""
        where = urlsplit(url)
        address = "%s://%s" % (where.scheme, where.netloc)
        registry = self.registry.display
        if isinstance(exc, ssl.SSLCertVerificationError):
            reason = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or "verification failed"
            return TLSError("TLS certificate of %s is not trusted (%s): give ca_cert or trust the CA "
                            "(or validate_certs=false)" % (address, reason),
                            registry=registry, reference=reference), False
        if isinstance(exc, ssl.SSLError):
            reason = getattr(exc, "reason", None) or type(exc).__name__
            if "CERTIFICATE_REQUIRED" in reason or "BAD_CERTIFICATE" in reason or "UNKNOWN_CA" in reason:
                return TLSError("TLS handshake with %s failed (%s): the registry wants a client certificate "
                                "it trusts: give client_cert and client_key" % (address, reason),
                                registry=registry, reference=reference), False
            if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "UNKNOWN_PROTOCOL"):
                # The peer does not speak TLS at all: a CA would not help.
                return TLSError("TLS handshake with %s failed (%s): is it a plain HTTP registry? then write "
                                "it as http://%s" % (address, reason, where.netloc),
                                registry=registry, reference=reference), False
            return TLSError("TLS handshake with %s failed (%s): give ca_cert or trust the CA "
                            "(or validate_certs=false)" % (address, reason),
                            registry=registry, reference=reference), False
        if isinstance(exc, socket.gaierror):
            return Unreachable("cannot resolve %s: the registry is unreachable at %s"
                               % (where.hostname, address), registry=registry, reference=reference), False
        if isinstance(exc, ConnectionRefusedError):
            # Refused after the registry has answered before: it is restarting, retry. Refused
            # on first contact: nothing listens there; waiting would only delay the error.
            why = "connection refused"
            if not self._answered:
                return Unreachable("%s: the registry is unreachable at %s (is it running, and is the port "
                                   "right?)" % (why, address), registry=registry, reference=reference), False
        elif isinstance(exc, (socket.timeout, TimeoutError)):
            why = "no answer within %ss" % self.timeout
        elif isinstance(exc, http.client.HTTPException):
            why = "broken HTTP answer (%s)" % type(exc).__name__
        else:
            why = getattr(exc, "strerror", None) or type(exc).__name__
        return Unreachable("%s: the registry is unreachable at %s" % (why, address),
                           registry=registry, reference=reference), True

    def _status_error(self, method: str, url: str, status: int, body: bytes, content_type: str | None,
                      reference: str | None, what: str) -> RegistryError:
        errors = _errors_of(body)
        codes = {str(e.get("code") or "").upper() for e in errors}
        says = _registry_says(errors)
        if not errors and (content_type or "").split(";")[0].strip().lower() == "text/html":
            says = " (the answer is an HTML page, not the registry's JSON: is a proxy in the way?)"
        request = self._request_line(method, url)
        registry = self.registry.display
        subject = reference or registry
        kw = dict(registry=registry, reference=reference, status=status)
        if status == 401 or "UNAUTHORIZED" in codes:
            return Unauthorized(unauthorized_message(self.registry, reference), **kw)
        if status == 403 or "DENIED" in codes:
            return Denied("%s %s on %s was denied: the account lacks permission%s"
                          % (what, subject, registry, says), **kw)
        if status == 404 or codes & {"MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN", "BLOB_UPLOAD_UNKNOWN"}:
            return NotFound("%s not found on %s: check the name and tag%s" % (subject, registry, says), **kw)
        if status == 405 or "UNSUPPORTED" in codes:
            if method == "DELETE":
                return Unsupported("deletion is disabled on %s: set storage.delete.enabled: true "
                                   "(REGISTRY_STORAGE_DELETE_ENABLED=true) (%s)" % (registry, subject), **kw)
            return Unsupported("%s does not support %s %s%s" % (registry, what, subject, says), **kw)
        if "DIGEST_INVALID" in codes:
            return DigestMismatch("%s rejected %s: the content does not match its digest%s"
                                  % (registry, subject, says), **kw)
        if status == 400 and b"HTTP request to an HTTPS server" in body[:200]:
            return InvalidInput("%s speaks HTTPS: write the registry as %s (without http://)"
                                % (self.registry.base_url, self.registry.host), **kw)
        if status == 429 or "TOOMANYREQUESTS" in codes:
            return ServerError("%s kept rate-limiting %s %s (HTTP 429 to %s) beyond the retry budget%s"
                               % (registry, what, subject, request, says), **kw)
        if status >= 500:
            return ServerError("%s failed to %s %s (HTTP %d to %s)%s"
                               % (registry, what, subject, status, request, says), **kw)
        if 400 <= status < 500:
            return InvalidInput("%s refused to %s %s (HTTP %d to %s)%s"
                                % (registry, what, subject, status, request, says), **kw)
        return ServerError("%s answered HTTP %d to %s (%s %s)%s"
                           % (registry, status, request, what, subject, says), **kw)

    @staticmethod
    def _read_body(response, limit: int = ERROR_BODY_LIMIT) -> bytes:
        try:
            data = response.read(limit + 1) if limit else response.read()
            if limit and len(data) > limit:
                data = data[:limit]
            else:
                response.read()  # drain to EOF so the connection can be reused
        except (OSError, http.client.HTTPException):
            data = b""
        finally:
            response.close()
        return data

    def _token_fetch(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> tuple[int, bytes]:
        """The Authenticator's window to the network: the same retries and TLS settings, no auth of ours."""
        response = self._request(method, url, headers=headers, body=body, raw=True, what="get a token from")
        return response.status, response.body

    # -- the one request path -------------------------------------------------------------

    def _retrying(self, attempt: Callable[[], _T]) -> _T:
        """The one retry loop: ``attempt()`` until it returns, within the retry budget.

        ``_Again`` sends again at once; ``_Retry`` waits (backoff, or Retry-After) and counts.
        """
        budget = self._budget()
        while True:
            try:
                return attempt()
            except _Again:
                continue
            except _Retry as exc:
                if budget.wait(exc.retry_after, exc.error.status):
                    continue
                if exc.response is not None:
                    return exc.response
                raise exc.error from None

    @staticmethod
    def _repeating(attempt: Callable[[], _T]) -> _T:
        """``attempt()`` again after ``_Again`` only: the caller's own loop retries (uploads)."""
        while True:
            try:
                return attempt()
            except _Again:
                continue

    def _request(self, method: str, path_or_url: str, *, scopes: Sequence[str] = (), reference: str | None = None,
                 what: str = "access", headers: dict[str, str] | None = None,
                 body: None | bytes | Callable[[], BinaryIO] = None, size: int | None = None,
                 ok: Sequence[int] = (200,), allow_missing: bool = False, follow_redirects: bool = False,
                 stream: bool = False, retry: bool = True, raw: bool = False):
        """Send a request; return the response (body unread when ``stream``, else read into ``.body``).

        ``body`` is bytes or a callable returning a fresh stream (called again for each
        attempt). ``allow_missing`` returns None for 404 instead of raising NotFound.
        With ``retry=False`` a retryable failure raises :class:`_Retry` for the caller's
        own retry loop (uploads restart from the upload session). ``raw`` (token requests)
        sends no credentials of ours, follows nothing, maps no status: the response is
        returned whatever its status, after retries.
        """
        url = path_or_url if "://" in path_or_url else self._url(path_or_url)
        base_headers = {"User-Agent": self._user_agent}
        base_headers.update(headers or {})
        scopes = list(scopes)
        state = _Exchange(url, None if raw else self.auth.authorization(scopes, reference))

        def attempt():
            return self._attempt(method, state, base_headers, scopes, reference, what, body, size, ok,
                                 allow_missing, follow_redirects, stream, retry, raw)

        return self._retrying(attempt) if retry else self._repeating(attempt)

    def _attempt(self, method: str, state: _Exchange, base_headers: dict[str, str], scopes: list[str],
                 reference: str | None, what: str, body, size: int | None, ok: Sequence[int],
                 allow_missing: bool, follow_redirects: bool, stream: bool, retry: bool, raw: bool):
        """One send; raises _Again or _Retry for the loop, or a RegistryError."""
        url = state.url
        send_headers = dict(base_headers)
        same_host = urlsplit(url)[:2] == state.origin[:2]
        if state.auth_value and same_host:
            send_headers["Authorization"] = state.auth_value
        payload: None | bytes | BinaryIO = None
        if callable(body):
            payload = _UploadBody(body(), size or 0)
            send_headers["Content-Length"] = str(size or 0)
        elif body is not None:
            payload = body
            send_headers["Content-Length"] = str(len(body))
        elif method in ("POST", "PUT"):
            send_headers["Content-Length"] = "0"
        try:
            response = self._send(method, url, send_headers, payload)
        except ConnectionDropped:
            error, _retryable = self._network_error(ConnectionResetError(), url, reference)
            if not retry:
                # an upload restarts from a new session rather than resend into this one
                raise _Retry(error, 0.0) from None
            if not state.dropped_once:
                state.dropped_once = True
                raise _Again() from None
            raise _Retry(error) from None
        except _SourceReadError as exc:
            source = exc.cause
            error = source if isinstance(source, RegistryError) else Unreachable(
                "reading the data to upload to %s failed: %s" % (reference, source),
                registry=self.registry.display, reference=reference)
            if not retry:
                raise _Retry(error) from None
            raise error from None
        except (OSError, http.client.HTTPException) as exc:
            error, retryable = self._network_error(exc, url, reference)
            if retryable:
                raise _Retry(error) from None
            raise error from None

        status = response.status
        self._answered = True
        if raw:
            response.body = self._read_body(response, SMALL_BODY_LIMIT)  # type: ignore[attr-defined]
            if status in RETRY_STATUSES:
                answered = (urlsplit(url).netloc, status, self._request_line(method, url))
                error = ServerError("%s answered HTTP %d to %s" % answered, registry=self.registry.display,
                                    status=status)
                raise _Retry(error, parse_retry_after(response.getheader("Retry-After"), self._wall_clock),
                             response)
            return response
        if status in ok:
            if not stream:
                response.body = self._read_body(response, SMALL_BODY_LIMIT)  # type: ignore[attr-defined]
            return response
        if status in _REDIRECTS:
            self._redirect(response, state, method, reference, follow_redirects)
        if status == 401 and not state.reauthed and same_host:
            challenge = response.getheader("WWW-Authenticate") or ""
            self._read_body(response)
            if challenge:
                state.reauthed = True
                state.auth_value = self.auth.handle_challenge(challenge, scopes, reference)
                raise _Again()
            raise Unauthorized(unauthorized_message(self.registry, reference),
                               registry=self.registry.display, reference=reference, status=401)
        if status == 404 and allow_missing:
            self._read_body(response)
            return None
        content_type = response.getheader("Content-Type")
        data = self._read_body(response)
        if status == 401 and state.reauthed and not self.credentials.is_anonymous:
            challenge = response.getheader("WWW-Authenticate") or ""
            if "insufficient_scope" in challenge:
                raise Denied("%s %s on %s was denied: the account lacks permission (%s)"
                             % (what, reference or "", self.registry.display, " ".join(scopes)),
                             registry=self.registry.display, reference=reference, status=401)
        error = self._status_error(method, url, status, data, content_type, reference, what)
        if status in RETRY_STATUSES:
            raise _Retry(error, parse_retry_after(response.getheader("Retry-After"), self._wall_clock))
        raise error

    def _send(self, method: str, url: str, headers: dict[str, str], payload):
        """The transport's request, within this registry's limit of requests in flight (when
        the client has a ``limiter``, an :class:`_pool.AdaptiveLimit`): it learns the time
        to the answer and its status."""
        limiter = self.limiter
        if limiter is None:
            return self.transport.request(method, url, headers, payload, self.timeout)
        limiter.acquire()
        started = self._clock()
        status = None
        try:
            response = self.transport.request(method, url, headers, payload, self.timeout)
            status = response.status
            return response
        finally:
            limiter.release(self._clock() - started, status)

    def _redirect(self, response, state: _Exchange, method: str, reference: str | None,
                  follow: bool) -> None:
        """Follow a redirect (raises _Again) or say why not (raises ServerError)."""
        location = response.getheader("Location")
        self._read_body(response)
        registry = self.registry.display
        request = self._request_line(method, state.origin.geturl())
        if not location:
            raise ServerError("%s answered %s with a redirect (HTTP %d) without a Location"
                              % (registry, request, response.status),
                              registry=registry, reference=reference, status=response.status)
        target = urljoin(state.url, location)
        if target in state.seen:
            raise ServerError("%s answered %s with a redirect loop (HTTP %d back to %s)"
                              % (registry, request, response.status, _shown(target)),
                              registry=registry, reference=reference, status=response.status)
        if not follow:
            raise ServerError("%s answered %s with a redirect (HTTP %d to %s), which a registry does not send for "
                              "this request: is a proxy or a login page in the way?"
                              % (registry, request, response.status, _shown(target)),
                              registry=registry, reference=reference, status=response.status)
        if state.redirects >= MAX_REDIRECTS:
            raise ServerError("%s answered %s with a redirect loop (%d redirects, the last to %s)"
                              % (registry, request, state.redirects + 1, _shown(target)),
                              registry=registry, reference=reference, status=response.status)
        state.redirects += 1
        state.seen.add(target)
        state.url = target
        raise _Again()

    # -- API ------------------------------------------------------------------------------

    def ping(self) -> None:
        """``GET /v2/`` with credentials: proves reachability, TLS and (when asked for) the login."""
        self._request("GET", "/v2/", what="log in to")

    def challenge(self) -> tuple[str, dict[str, str]] | None:
        """The registry's challenge to an anonymous ``GET /v2/`` (``("bearer", {"realm", "service"})``),
        or None when it answers without asking for a login."""
        response = self._request("GET", "/v2/", raw=True, what="ask for the login method of")
        header = response.getheader("WWW-Authenticate")
        if response.status != 401 or not header:
            return None
        return parse_challenge(header)

    def post_form(self, url: str, form: dict[str, str], what: str) -> tuple[int, bytes]:
        """POST an OAuth2-style form to ``url`` (a token endpoint), with the client's TLS settings and
        retries, none of its credentials; the answer's status and body, whatever the status."""
        response = self._request("POST", url, headers={"Content-Type": "application/x-www-form-urlencoded"},
                                 body=urlencode(form).encode("ascii"), raw=True, what=what)
        return response.status, response.body

    def _paginate(self, path: str, key: str, scopes: Sequence[str], reference: str | None, what: str) -> list[str]:
        items: list[str] = []
        url = "%s?%s" % (path, urlencode({"n": self.page_size})) if self.page_size else path
        seen = set()
        while url and url not in seen:
            seen.add(url)
            response = self._request("GET", url, scopes=scopes, reference=reference, what=what)
            items.extend(self._listed(response, key, self._request_line("GET", url), reference))
            match = _LINK_NEXT.search(response.getheader("Link") or "")
            url = urljoin(self._url(path), match.group(1)) if match else None
        return items

    def _listed(self, response, key: str, request: str, reference: str | None) -> list[str]:
        """The names under ``key`` of a catalog or tag list page; ServerError when it is not one."""
        registry = self.registry.display
        content_type = (response.getheader("Content-Type") or "").split(";")[0].strip() or "none"
        try:
            data = json.loads(response.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise ServerError("%s answered %s with a body that is not JSON (Content-Type %s)%s"
                              % (registry, request, content_type,
                                 ": is a proxy or a login page in the way?" if content_type == "text/html" else ""),
                              registry=registry, reference=reference) from None
        if data is None:
            return []
        if not isinstance(data, dict):
            raise ServerError("%s answered %s with JSON that is not an object (a %s)"
                              % (registry, request, type(data).__name__), registry=registry, reference=reference)
        names = data.get(key)
        if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
            raise ServerError("%s answered %s with %r that is not a list of names"
                              % (registry, request, key), registry=registry, reference=reference)
        return names or []

    def catalog(self) -> list[str]:
        """Every repository name (``/v2/_catalog``, following ``Link`` pages)."""
        return self._paginate("/v2/_catalog", "repositories", ["registry:catalog:*"], None, "list the catalog of")

    def tags(self, repository: str) -> list[str]:
        """Every tag of ``repository``; NotFound when the repository does not exist."""
        return self._paginate("/v2/%s/tags/list" % self._repo_path(repository), "tags",
                              ["repository:%s:pull" % repository], self._ref(repository), "list the tags of")

    def manifest_head(self, repository: str, reference: str) -> Descriptor | None:
        """Digest, media type and size of a manifest from a HEAD; None when it does not exist."""
        ref = self._ref(repository, reference)
        response = self._request("HEAD", "/v2/%s/manifests/%s" % (self._repo_path(repository), reference),
                                 scopes=["repository:%s:pull" % repository], reference=ref, what="read",
                                 headers={"Accept": ", ".join(MANIFEST_MEDIA_TYPES)}, allow_missing=True)
        if response is None:
            return None
        digest = response.getheader("Docker-Content-Digest")
        media_type = (response.getheader("Content-Type") or "").split(";")[0].strip()
        length = response.getheader("Content-Length")
        if not digest and is_digest(reference):
            digest = reference
        if not digest or not is_digest(digest) or not length or not length.isdigit() or \
                media_type not in MANIFEST_MEDIA_TYPES + SCHEMA1_MEDIA_TYPES:
            # Some registries leave headers out of HEAD, or answer a generic type: the GET is the
            # authority (and says clearly what is wrong with an answer that is no manifest).
            try:
                manifest = self.manifest_get(repository, reference)
            except NotFound:
                return None
            return manifest.descriptor()
        return Descriptor(digest, media_type, int(length))

    def manifest_get(self, repository: str, reference: str) -> Manifest:
        """The manifest as stored, digest-checked: against ``reference`` when it is a digest, and
        against the registry's ``Docker-Content-Digest``. ServerError when the answer is no manifest."""
        ref = self._ref(repository, reference)
        path = "/v2/%s/manifests/%s" % (self._repo_path(repository), reference)
        response = self._request("GET", path, scopes=["repository:%s:pull" % repository], reference=ref, what="read",
                                 headers={"Accept": ", ".join(MANIFEST_MEDIA_TYPES)})
        raw = response.body
        registry = self.registry.display
        request = self._request_line("GET", path)
        header = (response.getheader("Docker-Content-Digest") or "").strip()
        if is_digest(reference):
            algorithm = reference.split(":", 1)[0]
            actual = "%s:%s" % (algorithm, hashlib.new(algorithm, raw).hexdigest())
            if actual != reference:
                raise DigestMismatch("%s answered %s with a manifest that hashes to %s: the content does not "
                                     "match the digest asked for" % (registry, request, actual),
                                     registry=registry, reference=ref)
            digest = reference
        else:
            digest = sha256_digest(raw)
            algorithm = "sha256"
        if header and header.split(":", 1)[0] == algorithm and header != digest:
            raise DigestMismatch("%s answered %s with a manifest that hashes to %s, but its Docker-Content-Digest "
                                 "says %s" % (registry, request, digest, header), registry=registry, reference=ref)
        return Manifest.from_answer(raw, response.getheader("Content-Type"), digest, registry=registry,
                                    reference=ref, request=request)

    def manifest_put(self, repository: str, reference: str, raw: bytes, media_type: str) -> str:
        """Store ``raw`` under a tag or digest; returns its digest."""
        ref = self._ref(repository, reference)
        digest = sha256_digest(raw)
        if is_digest(reference) and reference != digest:
            raise DigestMismatch("manifest for %s hashes to %s: refusing to push it under another digest"
                                 % (ref, digest), registry=self.registry.display, reference=ref)
        response = self._request("PUT", "/v2/%s/manifests/%s" % (self._repo_path(repository), reference),
                                 scopes=["repository:%s:pull,push" % repository], reference=ref, what="push",
                                 headers={"Content-Type": media_type}, body=raw, ok=(200, 201, 202))
        returned = response.getheader("Docker-Content-Digest")
        return returned if returned and is_digest(returned) else digest

    def manifest_delete(self, repository: str, digest: str) -> None:
        """Delete a manifest (and with it every tag on it). Unsupported when deletion is disabled."""
        validate_digest(digest)
        ref = self._ref(repository, digest)
        self._request("DELETE", "/v2/%s/manifests/%s" % (self._repo_path(repository), digest),
                      scopes=["repository:%s:delete" % repository], reference=ref, what="delete",
                      ok=(200, 202))

    def blob_head(self, repository: str, digest: str) -> int | None:
        """Size of a blob, None when the repository does not have it."""
        ref = self._ref(repository, digest)
        response = self._request("HEAD", "/v2/%s/blobs/%s" % (self._repo_path(repository), digest),
                                 scopes=["repository:%s:pull" % repository], reference=ref, what="read",
                                 allow_missing=True, follow_redirects=True)
        if response is None:
            return None
        length = response.getheader("Content-Length")
        return int(length) if length and length.isdigit() else -1

    def blob_open(self, repository: str, digest: str, size: int | None = None) -> VerifyingReader:
        """A stream over the blob (redirects followed), verified as it is read; close() it.

        ``size`` is what the manifest says (-1 or None: unknown); the answer's Content-Length
        must agree with it.
        """
        ref = self._ref(repository, digest)
        response = self._request("GET", "/v2/%s/blobs/%s" % (self._repo_path(repository), digest),
                                 scopes=["repository:%s:pull" % repository], reference=ref, what="read",
                                 follow_redirects=True, stream=True)
        length = response.getheader("Content-Length")
        answered = int(length) if length and length.isdigit() else None
        registry = self.registry.display
        if size is not None and size >= 0 and answered is not None and answered != size:
            response.close()
            raise DigestMismatch("%s answered GET /v2/%s/blobs/%s with %d bytes, but the manifest says %d"
                                 % (registry, repository, digest, answered, size), registry=registry, reference=ref)
        expected = size if size is not None and size >= 0 else answered
        return VerifyingReader(response, digest, expected, lambda: {"registry": registry, "reference": ref})

    def blob_get(self, repository: str, digest: str) -> bytes:
        """A small blob (an image config) in memory, digest verified."""
        stream = self.blob_open(repository, digest)
        try:
            chunks = []
            while True:
                chunk = stream.read(1024 * 1024)
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            stream.close()

    def blob_mount(self, repository: str, digest: str, from_repository: str) -> bool:
        """Cross-repository mount; False when the registry declined (then upload)."""
        ref = self._ref(repository, digest)
        query = urlencode({"mount": digest, "from": from_repository})
        response = self._request("POST", "/v2/%s/blobs/uploads/?%s" % (self._repo_path(repository), query),
                                 scopes=["repository:%s:pull,push" % repository,
                                         "repository:%s:pull" % from_repository],
                                 reference=ref, what="mount", ok=(201, 202))
        if response.status == 201:
            return True
        location = response.getheader("Location")
        if location:  # the registry opened an upload session instead: cancel it, best effort
            try:
                self._request("DELETE", urljoin(self._url("/v2/"), location),
                              scopes=["repository:%s:pull,push" % repository], reference=ref,
                              what="cancel the upload of", ok=(200, 202, 204, 404), retry=False)
            except (RegistryError, _Retry):
                pass
        return False

    def _mount_first(self, repository: str, digest: str, from_repository: str, ref: str | None) -> str | None:
        """``POST ?mount=&from=``: None when the registry mounted the blob (201), else the upload
        session it opened instead (202 with a Location: distribution does that when the blob is
        not in ``from_repository``, or mounting is off) for the caller to upload into, or ""
        when there is no session to use (a registry that does not know mounts: start one)."""
        query = urlencode({"mount": digest, "from": from_repository})
        try:
            response = self._request("POST", "/v2/%s/blobs/uploads/?%s" % (self._repo_path(repository), query),
                                     scopes=["repository:%s:pull,push" % repository,
                                             "repository:%s:pull" % from_repository],
                                     reference=ref, what="mount", ok=(201, 202))
        except (NotFound, Unsupported):
            return ""
        if response.status == 201:
            return None
        location = response.getheader("Location")
        return urljoin(self._url("/v2/"), location) if location else ""

    def upload_probe(self, repository: str) -> None:
        """Open an upload session in ``repository`` and cancel it at once (registry_diagnose's push check).

        Proves the push permission without writing anything: the session holds no bytes and is
        deleted before this returns. Denied/Unauthorized when the account may not push.
        """
        ref = self._ref(repository)
        scopes = ["repository:%s:pull,push" % repository]
        response = self._request("POST", "/v2/%s/blobs/uploads/" % self._repo_path(repository),
                                 scopes=scopes, reference=ref, what="push", ok=(202,))
        location = response.getheader("Location")
        if location:
            self._request("DELETE", urljoin(self._url("/v2/"), location), scopes=scopes, reference=ref,
                          what="cancel an upload to", ok=(200, 202, 204), allow_missing=True)

    def blob_upload(self, repository: str, digest: str, stream: BinaryIO | None = None, size: int = 0, *,
                    open_stream: Callable[[], BinaryIO] | None = None, mount_from: str | None = None) -> str:
        """Upload a blob monolithically (POST a session, PUT the bytes with ``?digest=``);
        returns ``"mounted"`` or ``"uploaded"``.

        With ``mount_from`` (a repository of the same registry that may hold the blob) the
        session's POST asks for a cross-repository mount first: a 201 is the whole copy (the
        source is never opened), a 202 is the upload session to send the bytes to. One request
        instead of a HEAD, a mount and a POST.

        Give either ``stream`` (its current position must be the blob start; it is
        rewound for a retry when seekable) or ``open_stream``, a callable returning a
        fresh stream each time it is called (the copy engine passes one that re-opens
        the source blob, so a cut download or a dropped upload restarts cleanly). A
        retry re-sends the bytes from the start: to the same upload session after a 429
        or 503, to a new one after anything else. Memory use is bounded by the block size.
        Streams returned by ``open_stream`` are closed here; a given ``stream`` is not.
        """
        validate_digest(digest)
        ref = self._ref(repository, digest)
        if open_stream is None:
            if stream is None:
                raise InvalidInput("blob_upload of %s needs stream or open_stream" % ref)
            opener = self._rewinder(stream, ref)
        else:
            opener = open_stream
        scopes = ["repository:%s:pull,push" % repository]
        state: dict[str, str | None] = {"session": None}
        if mount_from and mount_from != repository:
            session = self._mount_first(repository, digest, mount_from, ref)
            if session is None:
                return "mounted"
            state["session"] = session or None

        def attempt() -> None:
            try:
                self._upload_once(repository, digest, opener, size, scopes, ref, state["session"])
            except _Retry as exc:
                state["session"] = exc.session
                raise

        self._retrying(attempt)
        return "uploaded"

    def _rewinder(self, stream: BinaryIO, ref: str | None) -> Callable[[], BinaryIO]:
        try:
            start = stream.tell() if stream.seekable() else None
        except (OSError, AttributeError):
            start = None
        state = {"used": False}

        class _NoClose(io.RawIOBase):
            def readable(self) -> bool:
                return True

            def read(self, amt: int = -1) -> bytes:
                return stream.read(amt)

        def opener() -> BinaryIO:
            if state["used"]:
                if start is None:
                    raise Unreachable("the upload of %s failed and its stream cannot be rewound to retry" % ref,
                                      registry=self.registry.display, reference=ref)
                stream.seek(start)
            state["used"] = True
            return _NoClose()  # type: ignore[return-value]

        return opener

    def _upload_once(self, repository: str, digest: str, opener: Callable[[], BinaryIO], size: int,
                     scopes: list[str], ref: str | None, session: str | None) -> None:
        """One attempt: (POST a session unless ``session`` is reused) then PUT the bytes.

        A 429 or 503 answer to the PUT (rate limiting, a busy proxy) leaves the session
        untouched, so the next attempt sends the bytes to the same session; any other
        failure (a dropped connection, a cut source, another 5xx) may have left part of
        the bytes in it, so the next attempt opens a new one.
        """
        # open the source first: when it cannot be (re)opened, no upload session is left behind
        source = opener()
        try:
            if session is None:
                # opening a session is safe to repeat in place, with the usual retries
                response = self._request("POST", "/v2/%s/blobs/uploads/" % self._repo_path(repository),
                                         scopes=scopes, reference=ref, what="push", ok=(202,))
                location = response.getheader("Location")
                if not location:
                    raise ServerError("%s started an upload for %s without a Location"
                                      % (self.registry.display, ref), registry=self.registry.display, reference=ref)
                session = urljoin(self._url("/v2/"), location)
                reused = False
            else:
                reused = True
            url = session + ("&" if "?" in session else "?") + urlencode({"digest": digest})
            try:
                self._request("PUT", url, scopes=scopes, reference=ref, what="push",
                              headers={"Content-Type": "application/octet-stream"}, body=lambda: source, size=size,
                              ok=(201, 204), retry=False)
            except _Retry as exc:
                exc.session = session if exc.error.status in (429, 503) else None
                raise
            except (NotFound, InvalidInput, DigestMismatch) as exc:
                if not reused:
                    raise
                # the reused session was not as clean as it looked: start over with a new one
                raise _Retry(exc, 0.0) from None
        finally:
            try:
                source.close()
            except Exception:  # closing a broken source stream must not hide the real error
                pass
