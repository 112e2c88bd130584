# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""Moving bytes: connections, TLS contexts, proxies, keep-alive pools, and the one reader
that verifies content against its digest while it streams.

Usable on its own (``registry_diagnose`` builds a TLS context and sends raw requests with
it); :mod:`_client` puts registry semantics (auth, retries, error mapping) on top.

Why not ``ansible.module_utils.urls``: it opens and closes a connection per request. A copy
engine makes many small requests (HEADs, mounts, upload sessions) from several threads;
paying a TCP (and TLS) handshake for each of them dominates a no-op sync (a blob HEAD over
TLS on loopback took 3.4-4.2 ms pooled, 9.9-13.5 ms with ``open_url``). ``http.client``
keeps persistent HTTP/1.1 connections in one pool per host shared by the threads (a thread
takes an idle connection, any thread's, and hands it back when the answer is read), with
nothing beyond the standard library on the managed node. Shared, not per thread: a new
connection costs a round trip (and a TLS handshake) more, which on a remote registry is as
much as the request itself, and planning threads come and go.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import socket
import ssl
import threading
from typing import BinaryIO, Callable, Sequence
from urllib.parse import unquote, urlsplit
from urllib.request import getproxies, proxy_bypass

from ansible_collections.dockyard.registry.plugins.module_utils._errors import (
    DigestMismatch,
    InvalidInput,
    RegistryError,
    Unreachable,
)
from ansible_collections.dockyard.registry.plugins.module_utils._io import require_regular_file

__all__ = [
    "ConnectionDropped",
    "HttpTransport",
    "Transport",
    "VerifyingReader",
    "readinto_from_read",
    "tls_context",
]

UPLOAD_BLOCK_SIZE = 256 * 1024


def readinto_from_read(stream, buffer) -> int:
    """``readinto`` for a stream class that implements ``read(n)`` (http.client and io call readinto)."""
    data = stream.read(len(buffer))
    buffer[:len(data)] = data
    return len(data)


# ---------------------------------------------------------------------------------------------
# TLS contexts
# ---------------------------------------------------------------------------------------------

def _regular_file(path: str, option: str, registry: str | None) -> None:
    """Refuse what is not a regular file before ssl opens it: ssl blocks forever on a FIFO."""
    try:
        require_regular_file(path, option)
    except RegistryError as exc:
        raise InvalidInput("cannot use %s%s: %s" % (option, " for %s" % registry if registry else "", exc),
                           registry=registry) from None


def tls_context(validate_certs: bool = True, ca_cert: str | Sequence[str] | None = None,
                client_cert: str | None = None, client_key: str | None = None, *, registry: str | None = None,
                prefix: str = "") -> ssl.SSLContext:
    """The TLS client context for one registry, from the connection options.

    ``ca_cert`` (a file, or several) is trusted in addition to the system CAs (docker's
    ``certs.d`` semantic); TLS 1.2 at least. Files are checked to be regular files first.
    InvalidInput names the option (with ``prefix``, e.g. ``source_``) and ``registry`` when a
    file cannot be used.
    """
    if validate_certs:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        for path in [ca_cert] if isinstance(ca_cert, str) else ca_cert or []:
            _regular_file(path, prefix + "ca_cert", registry)
            try:
                context.load_verify_locations(cafile=path)
            except (OSError, ssl.SSLError) as exc:
                raise InvalidInput("cannot use %sca_cert %r%s: %s"
                                   % (prefix, path, " for %s" % registry if registry else "",
                                      getattr(exc, "strerror", None) or exc), registry=registry) from None
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if client_cert or client_key:
        if not client_cert:
            raise InvalidInput("%sclient_key%s needs %sclient_cert too"
                               % (prefix, " for %s" % registry if registry else "", prefix), registry=registry)
        _regular_file(client_cert, prefix + "client_cert", registry)
        if client_key:
            _regular_file(client_key, prefix + "client_key", registry)
        try:
            context.load_cert_chain(client_cert, client_key)
        except (OSError, ssl.SSLError) as exc:
            raise InvalidInput("cannot use %sclient_cert %r / %sclient_key %r%s: %s"
                               % (prefix, client_cert, prefix, client_key,
                                  " for %s" % registry if registry else "",
                                  getattr(exc, "strerror", None) or exc), registry=registry) from None
    return context


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

    def request(self, method: str, url: str, headers: dict[str, str],
                body: None | bytes | BinaryIO, timeout: float):  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - interface
        pass


class _PooledResponse:
    """An ``http.client`` response that hands its connection back when its body is done."""

    def __init__(self, response: http.client.HTTPResponse, conn: http.client.HTTPConnection,
                 give_back: Callable[[http.client.HTTPConnection], None]) -> None:
        self._response = response
        self._conn = conn
        self._give_back = give_back
        self.status = response.status

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self._response.getheader(name, default)

    def read(self, amt: int | None = None) -> bytes:
        try:
            data = self._response.read(amt) if amt is not None else self._response.read()
        except BaseException:
            self._discard()
            raise
        if self._response.isclosed():
            self._release()
        return data

    readinto = readinto_from_read

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._give_back(conn)

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
    """Keep-alive HTTP/1.1 over ``http.client``: one pool of idle connections per host, shared
    by every thread (at most ``max_idle`` idle per host; more are closed when handed back).

    Proxies come from the environment (``https_proxy``, ``http_proxy``, ``no_proxy``):
    HTTPS goes through a ``CONNECT`` tunnel, plain HTTP is sent to the proxy with the
    absolute URL.
    """

    def __init__(self, ssl_context: None | ssl.SSLContext | Callable[[], ssl.SSLContext] = None, *,
                 max_idle: int = 64, block_size: int = UPLOAD_BLOCK_SIZE, use_proxies: bool = True) -> None:
        # an SSLContext, or a function that makes one on the first HTTPS connection
        self._ssl_context = ssl_context
        self._ssl_lock = threading.Lock()
        self._max_idle = max_idle
        self._block_size = block_size
        self._idle: dict[tuple[str, str], list[http.client.HTTPConnection]] = {}
        self._idle_lock = threading.Lock()
        self._proxies = {k.lower(): v for k, v in getproxies().items()} if use_proxies else {}

    def _take(self, key: tuple[str, str]) -> http.client.HTTPConnection | None:
        with self._idle_lock:
            idle = self._idle.get(key)
            return idle.pop() if idle else None

    def _giver(self, key: tuple[str, str]) -> Callable[[http.client.HTTPConnection], None]:
        def give_back(conn: http.client.HTTPConnection) -> None:
            with self._idle_lock:
                idle = self._idle.setdefault(key, [])
                if len(idle) < self._max_idle:
                    idle.append(conn)
                    return
            conn.close()
        return give_back

    def _proxy_for(self, scheme: str, host: str) -> tuple[str, int, dict[str, str]] | None:
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

    def _context(self) -> ssl.SSLContext | None:
        if callable(self._ssl_context):
            with self._ssl_lock:
                if callable(self._ssl_context):
                    self._ssl_context = self._ssl_context()
        return self._ssl_context

    def _connect(self, scheme: str, host: str, port: int | None, timeout: float):
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

    def request(self, method: str, url: str, headers: dict[str, str],
                body: None | bytes | BinaryIO, timeout: float) -> _PooledResponse:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        key = (scheme, parts.netloc.lower())
        conn = self._take(key)
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
        return _PooledResponse(response, conn, self._giver(key))

    def close(self) -> None:
        """Close the idle connections (one in use is closed when its answer is done with)."""
        with self._idle_lock:
            conns = [conn for idle in self._idle.values() for conn in idle]
            self._idle = {}
        for conn in conns:
            conn.close()


# ---------------------------------------------------------------------------------------------
# The verifying reader
# ---------------------------------------------------------------------------------------------

class VerifyingReader(io.RawIOBase):
    """A body being downloaded, checked against its digest (and size) as it streams.

    The one place content is verified: the client hands it out for blob downloads, the copy
    engine uploads straight from it. The block that completes the body is only returned once
    size and digest check out, so a body that does not match never completes an upload (the
    destination also checks ``?digest=`` on the closing PUT). A read that breaks off raises
    Unreachable (worth a retry from a fresh download); content that does not match raises
    DigestMismatch. ``close()`` it when done: the connection goes back to the pool only when the
    body was read to the end.
    """

    def __init__(self, response, digest: str, size: int | None, describe: Callable[[], dict]) -> None:
        super().__init__()
        self._response = response
        self._digest = digest
        self._algorithm = digest.split(":", 1)[0]
        self._hash = hashlib.new(self._algorithm) if self._algorithm in ("sha256", "sha384", "sha512") else None
        self.size = size if size is not None and size >= 0 else None
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

    readinto = readinto_from_read

    def _finish(self) -> None:
        self._done = True
        info = self._describe()
        if self.size is not None and self.bytes_read < self.size:
            # a body cut short (a proxy, a restart): a fresh download may succeed
            self.close()
            raise Unreachable("the download of %s from %s ended after %d of %d bytes"
                              % (info["reference"], info["registry"], self.bytes_read, self.size),
                              registry=info["registry"], reference=info["reference"])
        if self.size is not None and self.bytes_read > self.size:
            self.close()
            raise DigestMismatch("%s from %s: got %d bytes, expected %d"
                                 % (info["reference"], info["registry"], self.bytes_read, self.size),
                                 registry=info["registry"], reference=info["reference"])
        if self._hash is not None:
            actual = "%s:%s" % (self._algorithm, self._hash.hexdigest())
            if actual != self._digest:
                self.close()
                raise DigestMismatch("%s from %s has digest %s: the content does not match; nothing was written"
                                     % (info["reference"], info["registry"], actual),
                                     registry=info["registry"], reference=info["reference"])

    def close(self) -> None:
        if not self.closed:
            try:
                self._response.close()
            finally:
                super().close()
