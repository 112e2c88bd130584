# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""A typed client for the OCI distribution (registry v2) HTTP API.

Why not ``ansible.module_utils.urls``: it opens and closes a connection per request.
A copy engine makes many small requests (HEADs, mounts, upload sessions) from several
threads; paying a TCP (and TLS) handshake for each of them dominates a no-op sync. This
client keeps persistent HTTP/1.1 connections with the standard library's ``http.client``,
one pool per thread and host, so it still needs nothing beyond the standard library on
the managed node.

Every request goes through :meth:`RegistryClient._request`: auth (one re-auth on 401),
retries with exponential backoff and jitter (connection errors, 5xx, 429 with
``Retry-After``; bounded in count and in total wait), redirects for blob downloads
(``Authorization`` dropped when the redirect leaves the registry's host), and mapping of
failures to the :mod:`_errors` kinds with messages that name the registry and the
reference but never a secret.
"""

from __future__ import annotations

import base64
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
from typing import BinaryIO, Callable, Dict, List, Optional, Sequence, Tuple, Union
from urllib.parse import quote, unquote, urlencode, urljoin, urlsplit
from urllib.request import getproxies, proxy_bypass

from ansible_collections.dockyard.registry.plugins.module_utils._auth import (
    Authenticator,
    Credentials,
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
from ansible_collections.dockyard.registry.plugins.module_utils._reference import (
    Registry,
    is_digest,
    validate_digest,
)

__all__ = [
    "MANIFEST_MEDIA_TYPES",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "DOCKER_MANIFEST",
    "ManifestDescriptor",
    "Manifest",
    "RegistryClient",
    "Transport",
    "HttpTransport",
    "ConnectionDropped",
    "BlobStream",
    "parse_retry_after",
    "sha256_digest",
]

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_MEDIA_TYPES = (OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST)

USER_AGENT = "dockyard.registry"
DEFAULT_PAGE_SIZE = 1000
MAX_REDIRECTS = 5
ERROR_BODY_LIMIT = 64 * 1024
SMALL_BODY_LIMIT = 32 * 1024 * 1024  # manifests and configs; the spec caps manifests at 4 MiB
UPLOAD_BLOCK_SIZE = 256 * 1024
RETRY_STATUSES = frozenset([429, 500, 502, 503, 504])
_REDIRECTS = frozenset([301, 302, 303, 307, 308])
_LINK_NEXT = re.compile(r'<([^>]*)>\s*;[^,]*?rel="?next"?', re.IGNORECASE)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class ManifestDescriptor:
    """What a HEAD tells about a manifest: enough to decide "same or not" without a GET."""

    __slots__ = ("digest", "media_type", "size")

    def __init__(self, digest: str, media_type: str, size: int) -> None:
        self.digest = digest
        self.media_type = media_type
        self.size = size

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ManifestDescriptor) and (self.digest, self.media_type, self.size) == (
            other.digest, other.media_type, other.size)

    def __repr__(self) -> str:
        return "ManifestDescriptor(digest=%r, media_type=%r, size=%r)" % (self.digest, self.media_type, self.size)


class Manifest:
    """A manifest as the registry stores it: ``raw`` bytes are what the digest is of."""

    __slots__ = ("digest", "media_type", "raw")

    def __init__(self, digest: str, media_type: str, raw: bytes) -> None:
        self.digest = digest
        self.media_type = media_type
        self.raw = raw

    @property
    def size(self) -> int:
        return len(self.raw)

    def json(self) -> dict:
        return json.loads(self.raw.decode("utf-8"))

    def descriptor(self) -> ManifestDescriptor:
        return ManifestDescriptor(self.digest, self.media_type, len(self.raw))

    def __repr__(self) -> str:
        return "Manifest(digest=%r, media_type=%r, size=%d)" % (self.digest, self.media_type, len(self.raw))


# ---------------------------------------------------------------------------------------------
# Transport: the seam between the client and the network. Unit tests inject a fake one.
# ---------------------------------------------------------------------------------------------

class ConnectionDropped(ConnectionError):
    """A kept-alive connection was closed by the server before it answered.

    Normal for idle keep-alive connections (servers close them after a while): the
    client reconnects once immediately, without counting it as a retry.
    """


class Transport:
    """Sends one HTTP request and returns the response with the body unread.

    ``request(method, url, headers, body, timeout)`` returns an object with ``status``
    (int), ``getheader(name, default=None)`` (case-insensitive), ``read(amt=None)`` and
    ``close()``. ``body`` is None, bytes, or a binary file-like object (then the caller
    sets ``Content-Length``). Raises OSError / ``http.client.HTTPException`` (or
    :class:`ConnectionDropped`) for network failures; never interprets statuses.
    """

    def request(self, method: str, url: str, headers: Dict[str, str],
                body: Union[None, bytes, BinaryIO], timeout: float):  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - interface
        pass


class _PooledResponse:
    """An ``http.client`` response that hands its connection back when its body is done."""

    def __init__(self, response: http.client.HTTPResponse, conn: http.client.HTTPConnection,
                 idle: List[http.client.HTTPConnection], max_idle: int) -> None:
        self._response = response
        self._conn = conn
        self._idle = idle
        self._max_idle = max_idle
        self.status = response.status

    def getheader(self, name: str, default: Optional[str] = None) -> Optional[str]:
        return self._response.getheader(name, default)

    def read(self, amt: Optional[int] = None) -> bytes:
        try:
            data = self._response.read(amt) if amt is not None else self._response.read()
        except BaseException:
            self._discard()
            raise
        if self._response.isclosed():
            self._release()
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            if len(self._idle) < self._max_idle:
                self._idle.append(conn)
            else:
                conn.close()

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        if self._conn is None:
            return
        if self._response.isclosed():
            self._release()
        else:
            # a half-read body leaves the connection in an unknown state: do not reuse it
            self._response.close()
            self._discard()


class _HTTPConnection(http.client.HTTPConnection):
    """Sets TCP_NODELAY: http.client writes headers and body separately, and Nagle plus
    delayed ACKs would otherwise add ~40 ms to every request with a body."""

    def connect(self) -> None:
        super().connect()
        _no_delay(self.sock)


class _HTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _no_delay(self.sock)


def _no_delay(sock) -> None:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass


class HttpTransport(Transport):
    """Keep-alive HTTP/1.1 over ``http.client``: a small pool per thread and host.

    Proxies come from the environment (``https_proxy``, ``http_proxy``, ``no_proxy``):
    HTTPS goes through a ``CONNECT`` tunnel, plain HTTP is sent to the proxy with the
    absolute URL.
    """

    def __init__(self, ssl_context: Union[None, ssl.SSLContext, Callable[[], ssl.SSLContext]] = None, *,
                 max_idle: int = 4, block_size: int = UPLOAD_BLOCK_SIZE) -> None:
        # an SSLContext, or a function that makes one on the first HTTPS connection
        self._ssl_context = ssl_context
        self._ssl_lock = threading.Lock()
        self._max_idle = max_idle
        self._block_size = block_size
        self._local = threading.local()
        self._proxies = {k.lower(): v for k, v in getproxies().items()}

    def _pool(self) -> Dict[Tuple[str, str], List[http.client.HTTPConnection]]:
        pool = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = {}
        return pool

    def _proxy_for(self, scheme: str, host: str) -> Optional[Tuple[str, int, Dict[str, str]]]:
        proxy = self._proxies.get(scheme)
        if not proxy or proxy_bypass(host):
            return None
        if "://" not in proxy:
            proxy = "http://" + proxy
        parts = urlsplit(proxy)
        headers = {}
        if parts.username is not None:
            raw = ("%s:%s" % (unquote(parts.username), unquote(parts.password or ""))).encode("utf-8")
            headers["Proxy-Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
        return parts.hostname or "", parts.port or 3128, headers

    def _context(self) -> Optional[ssl.SSLContext]:
        if callable(self._ssl_context):
            with self._ssl_lock:
                if callable(self._ssl_context):
                    self._ssl_context = self._ssl_context()
        return self._ssl_context

    def _connect(self, scheme: str, host: str, port: Optional[int], timeout: float):
        proxy = self._proxy_for(scheme, host)
        if scheme == "https":
            if proxy:
                conn = _HTTPSConnection(proxy[0], proxy[1], timeout=timeout, context=self._context(),
                                        blocksize=self._block_size)
                conn.set_tunnel(host, port or 443, headers=proxy[2])
            else:
                conn = _HTTPSConnection(host, port or 443, timeout=timeout, context=self._context(),
                                        blocksize=self._block_size)
            return conn, None
        if proxy:
            conn = _HTTPConnection(proxy[0], proxy[1], timeout=timeout, blocksize=self._block_size)
            return conn, proxy[2]
        return _HTTPConnection(host, port or 80, timeout=timeout, blocksize=self._block_size), None

    def request(self, method: str, url: str, headers: Dict[str, str],
                body: Union[None, bytes, BinaryIO], timeout: float) -> _PooledResponse:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        idle = self._pool().setdefault((scheme, parts.netloc.lower()), [])
        conn = idle.pop() if idle else None
        reused = conn is not None
        proxy_headers = None
        if conn is None:
            conn, proxy_headers = self._connect(scheme, host, parts.port, timeout)
            conn._dockyard_proxy_headers = proxy_headers  # type: ignore[attr-defined]
        else:
            proxy_headers = getattr(conn, "_dockyard_proxy_headers", None)
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
        if proxy_headers is not None:
            target = url  # plain HTTP through a proxy: absolute URI
            headers = dict(headers, **proxy_headers)
        else:
            target = parts.path or "/"
            if parts.query:
                target += "?" + parts.query
        try:
            conn.request(method, target, body=body, headers=headers)
            response = conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                ConnectionAbortedError, http.client.BadStatusLine) as exc:
            conn.close()
            if reused:
                raise ConnectionDropped("kept-alive connection to %s was closed: %s" % (parts.netloc, exc)) from None
            raise
        except BaseException:
            conn.close()
            raise
        return _PooledResponse(response, conn, idle, self._max_idle)

    def close(self) -> None:
        """Close this thread's idle connections (other threads' close when they end)."""
        pool = getattr(self._local, "pool", None) or {}
        for conns in pool.values():
            while conns:
                conns.pop().close()


# ---------------------------------------------------------------------------------------------
# Request bodies and response streams
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

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


class BlobStream(io.RawIOBase):
    """A blob body being downloaded. Verifies the digest (and size) when fully read.

    ``close()`` it when done; the connection goes back to the pool only when the body
    was read to the end.
    """

    def __init__(self, response, digest: str, size: Optional[int], describe: Callable[[], dict]) -> None:
        super().__init__()
        self._response = response
        self._digest = digest
        self._algorithm = digest.split(":", 1)[0]
        self._hash = hashlib.new(self._algorithm) if self._algorithm in ("sha256", "sha384", "sha512") else None
        self.size = size
        self.bytes_read = 0
        self._describe = describe
        self._done = False

    def readable(self) -> bool:
        return True

    def read(self, amt: int = -1) -> bytes:
        if self._done or amt == 0:
            return b""
        try:
            data = self._response.read(amt if amt is not None and amt >= 0 else None)
        except (http.client.IncompleteRead, OSError, http.client.HTTPException) as exc:
            info = self._describe()
            self.close()
            raise Unreachable("the download of %s from %s broke off after %d bytes (%s)"
                              % (info["reference"], info["registry"], self.bytes_read, type(exc).__name__),
                              registry=info["registry"], reference=info["reference"]) from None
        if data:
            self.bytes_read += len(data)
            if self._hash is not None:
                self._hash.update(data)
        if not data or amt is None or amt < 0 or (self.size is not None and self.bytes_read >= self.size):
            self._finish()
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def _finish(self) -> None:
        self._done = True
        info = self._describe()
        if self.size is not None and self.bytes_read != self.size:
            self.close()
            raise DigestMismatch("%s from %s: got %d bytes, expected %d"
                                 % (info["reference"], info["registry"], self.bytes_read, self.size),
                                 registry=info["registry"], reference=info["reference"])
        if self._hash is not None:
            actual = "%s:%s" % (self._algorithm, self._hash.hexdigest())
            if actual != self._digest:
                self.close()
                raise DigestMismatch("%s from %s has digest %s: the content does not match"
                                     % (info["reference"], info["registry"], actual),
                                     registry=info["registry"], reference=info["reference"])

    def close(self) -> None:
        if not self.closed:
            try:
                self._response.close()
            finally:
                super().close()


# ---------------------------------------------------------------------------------------------
# Retry policy
# ---------------------------------------------------------------------------------------------

class _RetryBudget:
    """Counts retries and the time spent waiting for them; decides the next wait."""

    def __init__(self, retries: int, max_wait: float, backoff: float, sleep: Callable[[float], None],
                 now: Callable[[], float]) -> None:
        self.retries = retries
        self.max_wait = max_wait
        self.backoff = backoff
        self._sleep = sleep
        self._now = now
        self.attempt = 0
        self.waited = 0.0

    def wait(self, retry_after: Optional[float] = None) -> bool:
        """Sleep before the next attempt; False when the budget is spent (give up)."""
        if self.attempt >= self.retries:
            return False
        remaining = self.max_wait - self.waited
        if retry_after is not None:
            delay = max(0.0, retry_after)
            if delay > remaining:
                return False
        else:
            ceiling = self.backoff * (2 ** self.attempt)
            delay = min(random.uniform(ceiling / 2, ceiling), remaining)
            if delay <= 0 and self.backoff > 0:
                return False
        self.attempt += 1
        self.waited += delay
        if delay > 0:
            self._sleep(delay)
        return True


def parse_retry_after(value: Optional[str], now: Callable[[], float] = time.time) -> Optional[float]:
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
    """Internal: this attempt failed in a way worth retrying."""

    def __init__(self, error: RegistryError, retry_after: Optional[float] = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after
        self.session = None  # type: Optional[str]  # an upload session the next attempt may reuse


# ---------------------------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------------------------

def _errors_of(body: bytes) -> List[dict]:
    try:
        data = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return []
    errors = data.get("errors") if isinstance(data, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _registry_says(errors: List[dict]) -> str:
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
    ``sleep``/``clock``/``wall_clock`` (injected by unit tests so nothing really sleeps),
    ``user_agent``.
    """

    def __init__(self, registry: Registry, credentials: Optional[Credentials] = None, *,
                 validate_certs: bool = True, ca_cert: Optional[str] = None,
                 client_cert: Optional[str] = None, client_key: Optional[str] = None,
                 timeout: float = 60, retries: int = 5, max_retry_wait: float = 60,
                 transport: Optional[Transport] = None, backoff: float = 0.5,
                 page_size: int = DEFAULT_PAGE_SIZE,
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
            if registry.scheme == "https" or ca_cert or client_cert or client_key:
                context = self._ssl_context(validate_certs, ca_cert, client_cert, client_key)
            else:
                context = functools.partial(self._ssl_context, validate_certs, None, None, None)
            transport = HttpTransport(context)
        self.transport = transport
        self.auth = Authenticator(registry, self.credentials, self._token_fetch, clock=clock)

    def __repr__(self) -> str:
        return "RegistryClient(%r)" % self.registry.base_url

    # -- set-up ---------------------------------------------------------------------------

    def _ssl_context(self, validate_certs: bool, ca_cert: Optional[str], client_cert: Optional[str],
                     client_key: Optional[str]) -> ssl.SSLContext:
        if validate_certs:
            # docker's certs.d semantic: the CA file is trusted in addition to the system CAs
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
            if ca_cert:
                try:
                    context.load_verify_locations(cafile=ca_cert)
                except (OSError, ssl.SSLError) as exc:
                    raise InvalidInput("cannot use ca_cert %r for %s: %s"
                                       % (ca_cert, self.registry.display, getattr(exc, "strerror", None) or exc),
                                       registry=self.registry.display) from None
        else:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if client_cert or client_key:
            if not client_cert:
                raise InvalidInput("client_key for %s needs client_cert too" % self.registry.display,
                                   registry=self.registry.display)
            try:
                context.load_cert_chain(client_cert, client_key)
            except (OSError, ssl.SSLError) as exc:
                raise InvalidInput("cannot use client_cert %r / client_key %r for %s: %s"
                                   % (client_cert, client_key, self.registry.display,
                                      getattr(exc, "strerror", None) or exc),
                                   registry=self.registry.display) from None
        return context

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> "RegistryClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- helpers --------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return self.registry.base_url + path

    def _ref(self, repository: Optional[str] = None, reference: Optional[str] = None) -> Optional[str]:
        if repository is None:
            return None
        if reference is None:
            return "%s/%s" % (self.registry.display, repository)
        sep = "@" if is_digest(reference) else ":"
        return "%s/%s%s%s" % (self.registry.display, repository, sep, reference)

    @staticmethod
    def _repo_path(repository: str) -> str:
        return quote(repository, safe="/")

    def _network_error(self, exc: BaseException, url: str, reference: Optional[str]) -> Tuple[RegistryError, bool]:
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

    def _status_error(self, method: str, status: int, body: bytes, reference: Optional[str],
                      what: str) -> RegistryError:
        errors = _errors_of(body)
        codes = {str(e.get("code") or "").upper() for e in errors}
        says = _registry_says(errors)
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
            return ServerError("%s kept rate-limiting %s %s (HTTP 429) beyond the retry budget%s"
                               % (registry, what, subject, says), **kw)
        if status >= 500:
            return ServerError("%s failed to %s %s (HTTP %d)%s" % (registry, what, subject, status, says), **kw)
        if 400 <= status < 500:
            return InvalidInput("%s refused to %s %s (HTTP %d)%s" % (registry, what, subject, status, says), **kw)
        return ServerError("%s answered HTTP %d to %s %s%s" % (registry, status, what, subject, says), **kw)

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

    def _token_fetch(self, method: str, url: str, headers: Dict[str, str], body: Optional[bytes]) -> Tuple[int, bytes]:
        """The Authenticator's window to the network: retries, TLS settings, no auth of ours."""
        budget = self._budget()
        headers = dict(headers)
        headers.setdefault("User-Agent", self._user_agent)
        dropped_once = False
        while True:
            try:
                response = self.transport.request(method, url, headers, body, self.timeout)
            except ConnectionDropped:
                if not dropped_once:
                    dropped_once = True
                    continue
                error, _retry = self._network_error(ConnectionResetError(), url, None)
                if budget.wait():
                    continue
                raise error from None
            except (OSError, http.client.HTTPException) as exc:
                error, retry = self._network_error(exc, url, None)
                if retry and budget.wait():
                    continue
                raise error from None
            data = self._read_body(response, SMALL_BODY_LIMIT)
            self._answered = True
            if response.status in RETRY_STATUSES and budget.wait(
                    parse_retry_after(response.getheader("Retry-After"), self._wall_clock)):
                continue
            return response.status, data

    def _budget(self) -> _RetryBudget:
        return _RetryBudget(self.retries, self.max_retry_wait, self.backoff, self._sleep, self._clock)

    # -- the one request path -------------------------------------------------------------

    def _request(self, method: str, path_or_url: str, *, scopes: Sequence[str] = (), reference: Optional[str] = None,
                 what: str = "access", headers: Optional[Dict[str, str]] = None,
                 body: Union[None, bytes, Callable[[], BinaryIO]] = None, size: Optional[int] = None,
                 ok: Sequence[int] = (200,), allow_missing: bool = False, follow_redirects: bool = False,
                 stream: bool = False, retry: bool = True):
        """Send a request; return the response (body unread when ``stream``, else read into ``.body``).

        ``body`` is bytes or a callable returning a fresh stream (called again for each
        attempt). ``allow_missing`` returns None for 404 instead of raising NotFound.
        With ``retry=False`` a retryable failure raises :class:`_Retry` for the caller's
        own retry loop (uploads restart from the upload session).
        """
        url = path_or_url if "://" in path_or_url else self._url(path_or_url)
        base_headers = {"User-Agent": self._user_agent}
        base_headers.update(headers or {})
        scopes = list(scopes)
        budget = self._budget()
        reauthed = False
        dropped_once = False
        auth_value = self.auth.authorization(scopes, reference)
        redirects = 0
        origin = urlsplit(url)
        while True:
            send_headers = dict(base_headers)
            same_host = urlsplit(url)[:2] == origin[:2]
            if auth_value and same_host:
                send_headers["Authorization"] = auth_value
            payload = None  # type: Union[None, bytes, BinaryIO]
            if callable(body):
                payload = _UploadBody(body(), size or 0)
                send_headers["Content-Length"] = str(size or 0)
            elif body is not None:
                payload = body
                send_headers["Content-Length"] = str(len(body))
            elif method in ("POST", "PUT"):
                send_headers["Content-Length"] = "0"
            try:
                response = self.transport.request(method, url, send_headers, payload, self.timeout)
            except ConnectionDropped:
                error, retryable = self._network_error(ConnectionResetError(), url, reference)
                if not retry:
                    # an upload restarts from a new session rather than resend into this one
                    raise _Retry(error, 0.0) from None
                if not dropped_once:
                    dropped_once = True
                    continue
                if budget.wait():
                    continue
                raise error from None
            except _SourceReadError as exc:
                source = exc.cause
                if not retry:
                    raise _Retry(source if isinstance(source, RegistryError) else Unreachable(
                        "reading the data to upload to %s failed: %s" % (reference, source),
                        registry=self.registry.display, reference=reference)) from None
                if isinstance(source, RegistryError):
                    raise source from None
                raise Unreachable("reading the data to upload to %s failed: %s" % (reference, source),
                                  registry=self.registry.display, reference=reference) from None
            except (OSError, http.client.HTTPException) as exc:
                error, retryable = self._network_error(exc, url, reference)
                if retryable and not retry:
                    raise _Retry(error) from None
                if retryable and budget.wait():
                    continue
                raise error from None

            status = response.status
            self._answered = True
            if status in ok:
                if stream:
                    return response
                response.body = self._read_body(response, SMALL_BODY_LIMIT)  # type: ignore[attr-defined]
                return response
            if follow_redirects and status in _REDIRECTS and redirects < MAX_REDIRECTS:
                location = response.getheader("Location")
                self._read_body(response)
                if location:
                    redirects += 1
                    url = urljoin(url, location)
                    continue
            if status == 401 and not reauthed and same_host:
                challenge = response.getheader("WWW-Authenticate") or ""
                self._read_body(response)
                if challenge:
                    reauthed = True
                    auth_value = self.auth.handle_challenge(challenge, scopes, reference)
                    continue
                raise Unauthorized(unauthorized_message(self.registry, reference),
                                   registry=self.registry.display, reference=reference, status=401)
            if status == 404 and allow_missing:
                self._read_body(response)
                return None
            data = self._read_body(response)
            if status == 401 and reauthed and not self.credentials.is_anonymous:
                challenge = response.getheader("WWW-Authenticate") or ""
                if "insufficient_scope" in challenge:
                    raise Denied("%s %s on %s was denied: the account lacks permission (%s)"
                                 % (what, reference or "", self.registry.display, " ".join(scopes)),
                                 registry=self.registry.display, reference=reference, status=401)
            error = self._status_error(method, status, data, reference, what)
            if status in RETRY_STATUSES:
                retry_after = parse_retry_after(response.getheader("Retry-After"), self._wall_clock)
                if not retry:
                    raise _Retry(error, retry_after)
                if budget.wait(retry_after):
                    continue
            raise error

    # -- API ------------------------------------------------------------------------------

    def ping(self) -> None:
        """``GET /v2/`` with credentials: proves reachability, TLS and (when asked for) the login."""
        self._request("GET", "/v2/", what="log in to")

    def _paginate(self, path: str, key: str, scopes: Sequence[str], reference: Optional[str], what: str) -> List[str]:
        items = []  # type: List[str]
        url = "%s?%s" % (path, urlencode({"n": self.page_size})) if self.page_size else path
        seen = set()
        while url and url not in seen:
            seen.add(url)
            response = self._request("GET", url, scopes=scopes, reference=reference, what=what)
            try:
                data = json.loads(response.body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                raise ServerError("%s answered %s with something that is not JSON"
                                  % (self.registry.display, what), registry=self.registry.display,
                                  reference=reference) from None
            items.extend((data or {}).get(key) or [])
            match = _LINK_NEXT.search(response.getheader("Link") or "")
            url = urljoin(self._url(path), match.group(1)) if match else None
        return items

    def catalog(self) -> List[str]:
        """Every repository name (``/v2/_catalog``, following ``Link`` pages)."""
        return self._paginate("/v2/_catalog", "repositories", ["registry:catalog:*"], None, "list the catalog of")

    def tags(self, repository: str) -> List[str]:
        """Every tag of ``repository``; NotFound when the repository does not exist."""
        return self._paginate("/v2/%s/tags/list" % self._repo_path(repository), "tags",
                              ["repository:%s:pull" % repository], self._ref(repository), "list the tags of")

    def manifest_head(self, repository: str, reference: str) -> Optional[ManifestDescriptor]:
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
        if not digest or not length or not length.isdigit() or not media_type:
            # some registries leave headers out of HEAD: the GET is the authority
            try:
                manifest = self.manifest_get(repository, reference)
            except NotFound:
                return None
            return manifest.descriptor()
        return ManifestDescriptor(digest, media_type, int(length))

    def manifest_get(self, repository: str, reference: str) -> Manifest:
        """The manifest bytes as stored; verified against ``reference`` when it is a digest."""
        ref = self._ref(repository, reference)
        response = self._request("GET", "/v2/%s/manifests/%s" % (self._repo_path(repository), reference),
                                 scopes=["repository:%s:pull" % repository], reference=ref, what="read",
                                 headers={"Accept": ", ".join(MANIFEST_MEDIA_TYPES)})
        raw = response.body
        computed = sha256_digest(raw)
        header = response.getheader("Docker-Content-Digest")
        if is_digest(reference):
            algorithm = reference.split(":", 1)[0]
            actual = "%s:%s" % (algorithm, hashlib.new(algorithm, raw).hexdigest())
            if actual != reference:
                raise DigestMismatch("manifest %s from %s hashes to %s: the content does not match"
                                     % (ref, self.registry.display, actual),
                                     registry=self.registry.display, reference=ref)
            digest = reference
        elif header and header.startswith("sha256:") and header != computed:
            raise DigestMismatch("manifest %s from %s hashes to %s, but the registry says %s"
                                 % (ref, self.registry.display, computed, header),
                                 registry=self.registry.display, reference=ref)
        else:
            digest = computed
        media_type = (response.getheader("Content-Type") or "").split(";")[0].strip()
        if media_type not in MANIFEST_MEDIA_TYPES:
            try:
                media_type = json.loads(raw.decode("utf-8")).get("mediaType") or media_type
            except (ValueError, UnicodeDecodeError, AttributeError):
                pass
        return Manifest(digest, media_type, raw)

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

    def blob_head(self, repository: str, digest: str) -> Optional[int]:
        """Size of a blob, None when the repository does not have it."""
        ref = self._ref(repository, digest)
        response = self._request("HEAD", "/v2/%s/blobs/%s" % (self._repo_path(repository), digest),
                                 scopes=["repository:%s:pull" % repository], reference=ref, what="read",
                                 allow_missing=True, follow_redirects=True)
        if response is None:
            return None
        length = response.getheader("Content-Length")
        return int(length) if length and length.isdigit() else -1

    def blob_open(self, repository: str, digest: str) -> BlobStream:
        """A stream over the blob (redirects followed). Verifies size and digest at EOF; close() it."""
        ref = self._ref(repository, digest)
        response = self._request("GET", "/v2/%s/blobs/%s" % (self._repo_path(repository), digest),
                                 scopes=["repository:%s:pull" % repository], reference=ref, what="read",
                                 follow_redirects=True, stream=True)
        length = response.getheader("Content-Length")
        size = int(length) if length and length.isdigit() else None
        registry = self.registry.display
        return BlobStream(response, digest, size, lambda: {"registry": registry, "reference": ref})

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

    def blob_upload(self, repository: str, digest: str, stream: Optional[BinaryIO] = None, size: int = 0, *,
                    open_stream: Optional[Callable[[], BinaryIO]] = None) -> None:
        """Upload a blob monolithically (POST a session, PUT the bytes with ``?digest=``).

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
        budget = self._budget()
        session = None  # type: Optional[str]
        while True:
            try:
                self._upload_once(repository, digest, opener, size, scopes, ref, session)
                return
            except _Retry as exc:
                if not budget.wait(exc.retry_after):
                    raise exc.error from None
                session = exc.session

    def _rewinder(self, stream: BinaryIO, ref: Optional[str]) -> Callable[[], BinaryIO]:
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
                     scopes: List[str], ref: Optional[str], session: Optional[str]) -> None:
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
