# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A fault-injecting HTTP proxy in front of a plain registry (``registry_faulty``).

``python faultproxy.py --port 5206 --upstream 127.0.0.1:5216``

Every request is forwarded to the upstream registry (bodies streamed both ways, chunked
or not, one upstream keep-alive connection per client connection, the ``Host`` header
kept so the registry's ``Location`` headers point back at the proxy). Faults are off
until a test turns them on through the admin API, which is never forwarded:

``POST /__faults__`` with a JSON object (replaces the whole fault configuration and
resets the counters and statistics; unknown keys are an error):

* ``"429_every": N`` -- answer every Nth matching request with 429 Too Many Requests
  and ``Retry-After: <retry_after>`` (``"retry_after"``, seconds, default 1);
* ``"503_every": N`` -- answer every Nth matching request with 503 (a request that is
  due for both gets the 429); ``"retry_after_503"`` adds a Retry-After to those too;
* ``"cut_blob_bodies": true`` -- on the first ``GET /v2/<name>/blobs/<digest>`` of each
  digest, send the full ``Content-Length`` but close the connection after half the body;
* ``"max_faults": N`` -- stop injecting after N faults in total (0 = no limit);
* ``"path_regex": "..."`` and ``"methods": ["GET", ...]`` -- which requests count as
  matching for 429/503 (default: every proxied request);
* ``"malformed": MODE`` -- answer every request whose path matches ``"malformed_path_regex"``
  (default ``/manifests/``) the way a proxy, a login page or a broken registry does:
  ``html`` (200, an HTML login page), ``not_json`` (200, a manifest Content-Type and a body
  that is not JSON, with its own correct Docker-Content-Digest), ``content_type`` (the real
  answer with ``Content-Type: text/html``), ``digest`` (the real answer to a GET with a
  Docker-Content-Digest that is not the body's), ``redirect_loop`` (307 to itself).

``DELETE /__faults__`` turns every fault off (and resets the statistics);
``GET /__faults__`` returns the configuration; ``GET /__faults__/stats`` returns
``{"requests", "matched", "429", "503", "cut", "cut_digests", "malformed", "faults": [last 200
{"kind", "method", "path"}]}``.

The count is over requests in arrival order, so a single client sees the same faults
on every run; with N == 1 every request fails, which a retrying client never survives.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import re
import socket
import sys
import threading
import typing as t
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["FaultState", "main"]

ADMIN = "/__faults__"
CHUNK = 64 * 1024
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "proxy-connection", "expect",
}
BLOB_GET = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>[a-z0-9]+:[a-f0-9]+)$")
DEFAULTS: dict[str, t.Any] = {
    "429_every": 0,
    "503_every": 0,
    "retry_after": 1,
    "retry_after_503": None,
    "cut_blob_bodies": False,
    "max_faults": 0,
    "path_regex": None,
    "methods": None,
    "malformed": None,
    "malformed_path_regex": None,
}
MALFORMED = ("html", "not_json", "content_type", "digest", "redirect_loop")
HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>Sign in - Corporate Proxy</title></head>"
             b"<body><form action=\"/login\">Please sign in to continue</form></body></html>\n")
NOT_JSON = b"\xff\xfe this is not a manifest"


class FaultState:
    """The fault configuration and what was injected, shared by all connections."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.config: dict[str, t.Any] = dict(DEFAULTS)
        self._regex: re.Pattern[str] | None = None
        self._malformed_regex = re.compile("/manifests/")
        self.reset()

    def reset(self) -> None:
        self.stats: dict[str, t.Any] = {
            "requests": 0, "matched": 0, "429": 0, "503": 0, "cut": 0, "cut_digests": [], "malformed": 0,
            "faults": [],
        }

    def configure(self, new: dict[str, t.Any]) -> dict[str, t.Any]:
        unknown = sorted(set(new) - set(DEFAULTS))
        if unknown:
            raise ValueError("unknown fault settings: %s (known: %s)" % (", ".join(unknown), ", ".join(DEFAULTS)))
        config = dict(DEFAULTS)
        config.update(new)
        for key in ("429_every", "503_every", "max_faults"):
            if not isinstance(config[key], int) or config[key] < 0:
                raise ValueError("%s must be an integer >= 0" % key)
        if config["malformed"] is not None and config["malformed"] not in MALFORMED:
            raise ValueError("malformed must be one of %s" % ", ".join(MALFORMED))
        regex = re.compile(config["path_regex"]) if config["path_regex"] else None
        malformed_regex = re.compile(config["malformed_path_regex"] or "/manifests/")
        with self.lock:
            self.config = config
            self._regex = regex
            self._malformed_regex = malformed_regex
            self.reset()
        return config

    def _budget_left(self) -> bool:
        limit = self.config["max_faults"]
        return not limit or (self.stats["429"] + self.stats["503"] + self.stats["cut"]) < limit

    def _record(self, kind: str, method: str, path: str) -> None:
        self.stats[kind] += 1
        self.stats["faults"].append({"kind": kind, "method": method, "path": path})
        del self.stats["faults"][:-200]

    def status_fault(self, method: str, path: str) -> int | None:
        """429, 503 or None for this request; counts it."""
        with self.lock:
            self.stats["requests"] += 1
            config = self.config
            if config["methods"] and method not in config["methods"]:
                return None
            if self._regex is not None and not self._regex.search(path):
                return None
            self.stats["matched"] += 1
            count = self.stats["matched"]
            if not self._budget_left():
                return None
            for status in (429, 503):
                every = config["%d_every" % status]
                if every and count % every == 0:
                    self._record(str(status), method, path)
                    return status
        return None

    def malformed(self, method: str, path: str) -> str | None:
        """The malformed-answer mode for this request, or None; counts it."""
        with self.lock:
            mode = self.config["malformed"]
            if not mode or not self._malformed_regex.search(path.split("?", 1)[0]):
                return None
            if mode == "digest" and method != "GET":
                return None
            self._record("malformed", method, path)
            return mode

    def cut_blob(self, method: str, path: str) -> bool:
        """Whether to cut this blob body short (first GET of each digest only)."""
        match = BLOB_GET.match(path.split("?", 1)[0])
        if method != "GET" or match is None:
            return False
        with self.lock:
            digest = match.group("digest")
            if not self.config["cut_blob_bodies"] or digest in self.stats["cut_digests"] or not self._budget_left():
                return False
            self.stats["cut_digests"].append(digest)
            self._record("cut", method, path)
            return True

    def snapshot(self) -> dict[str, t.Any]:
        with self.lock:
            return json.loads(json.dumps(self.stats))


class ProxyHandler(BaseHTTPRequestHandler):
    """Forwards to the upstream registry, injecting faults."""

    protocol_version = "HTTP/1.1"
    server_version = "dockyard-it-faultproxy/1"
    timeout = 300
    upstream: tuple[str, int] = ("127.0.0.1", 5216)
    faults = FaultState()

    def setup(self) -> None:
        super().setup()
        self._conn: http.client.HTTPConnection | None = None

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._drop_upstream()

    def log_message(self, format: str, *args: t.Any) -> None:  # pylint: disable=redefined-builtin
        sys.stderr.write("%s %s\n" % (self.log_date_time_string(), format % args))

    # -- plumbing ----------------------------------------------------------------------------

    def _drop_upstream(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _body_chunks(self) -> t.Iterator[bytes]:
        """The request body as it arrives (de-chunked), never all in memory."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                yield from self._read_exactly(size)
                self.rfile.readline(1024)
        else:
            yield from self._read_exactly(int(self.headers.get("Content-Length") or 0))

    def _read_exactly(self, size: int) -> t.Iterator[bytes]:
        """``size`` bytes of the request body in blocks of at most CHUNK."""
        remaining = size
        while remaining:
            data = self.rfile.read(min(CHUNK, remaining))
            if not data:
                raise ConnectionError("client closed the connection mid-body")
            remaining -= len(data)
            yield data

    def _send_json(self, status: int, body: t.Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body, indent=2).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    # -- admin API ---------------------------------------------------------------------------

    def _admin(self) -> None:
        body = b"".join(self._body_chunks())
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == ADMIN + "/stats" and self.command == "GET":
            self._send_json(200, self.faults.snapshot())
        elif path == ADMIN and self.command == "GET":
            self._send_json(200, self.faults.config)
        elif path == ADMIN and self.command == "DELETE":
            self._send_json(200, self.faults.configure({}))
        elif path == ADMIN and self.command in ("POST", "PUT"):
            try:
                new = json.loads(body or b"{}")
                if not isinstance(new, dict):
                    raise ValueError("the fault configuration must be a JSON object")
                config = self.faults.configure(new)
            except (ValueError, re.error) as exc:
                self._send_json(400, {"error": str(exc)})
                return
            self.log_message("faults configured: %s", json.dumps(config))
            self._send_json(200, config)
        else:
            self._send_json(404, {"error": "unknown admin endpoint %s %s" % (self.command, path)})

    # -- proxying ----------------------------------------------------------------------------

    def _proxy(self) -> None:
        if self.path.startswith(ADMIN):
            self._admin()
            return
        status = self.faults.status_fault(self.command, self.path)
        if status is not None:
            for _data in self._body_chunks():
                pass
            config = self.faults.config
            headers = {}
            if status == 429:
                headers["Retry-After"] = str(config["retry_after"])
                code = "TOOMANYREQUESTS"
            else:
                code = "UNAVAILABLE"
                if config["retry_after_503"] is not None:
                    headers["Retry-After"] = str(config["retry_after_503"])
            self._send_json(status, {"errors": [{"code": code, "message": "injected by the dockyard-it fault proxy"}]},
                            headers)
            return
        mode = self.faults.malformed(self.command, self.path)
        if mode in ("html", "not_json", "redirect_loop"):
            for _data in self._body_chunks():
                pass
            self._send_malformed(mode)
            return
        try:
            response = self._forward()
        except (OSError, http.client.HTTPException) as exc:
            self._drop_upstream()
            self.close_connection = True
            self._send_json(502, {"errors": [{"code": "UNAVAILABLE", "message": "upstream: %s" % exc}]})
            return
        try:
            self._relay(response, mode)
        finally:
            if self._conn is not None and not response.isclosed():
                self._drop_upstream()

    def _forward(self) -> http.client.HTTPResponse:
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        has_body = chunked or int(self.headers.get("Content-Length") or 0) > 0
        attempts = 1 if has_body else 2
        for attempt in range(attempts):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(*self.upstream, timeout=self.timeout)
            try:
                self._conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in HOP_BY_HOP:
                        self._conn.putheader(name, value)
                if chunked:
                    self._conn.putheader("Transfer-Encoding", "chunked")
                self._conn.endheaders()
                if has_body:
                    for data in self._body_chunks():
                        if chunked:
                            self._conn.send(b"%x\r\n%s\r\n" % (len(data), data))
                        else:
                            self._conn.send(data)
                    if chunked:
                        self._conn.send(b"0\r\n\r\n")
                return self._conn.getresponse()
            except (ConnectionError, http.client.RemoteDisconnected, BrokenPipeError):
                # A keep-alive connection the registry closed meanwhile: one fresh try.
                self._drop_upstream()
                if attempt + 1 == attempts:
                    raise
        raise ConnectionError("unreachable")

    def _send_malformed(self, mode: str) -> None:
        """The whole answer of a proxy, a login page or a broken registry (see ``malformed``)."""
        if mode == "redirect_loop":
            self.send_response(307)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if mode == "html":
            body, headers = HTML_PAGE, {"Content-Type": "text/html; charset=utf-8"}
        else:
            body = NOT_JSON
            headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json",
                       "Docker-Content-Digest": "sha256:" + hashlib.sha256(body).hexdigest()}
        self.send_response(200)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _relay(self, response: http.client.HTTPResponse, mode: str | None = None) -> None:
        cut = response.status == 200 and self.faults.cut_blob(self.command, self.path)
        length = response.getheader("Content-Length")
        bodiless = self.command == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
        rewrite: dict[str, str] = {}
        if mode == "content_type":
            rewrite["content-type"] = "text/html; charset=utf-8"
        elif mode == "digest":
            rewrite["docker-content-digest"] = "sha256:" + hashlib.sha256(b"not this body").hexdigest()
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, rewrite.get(name.lower(), value))
        chunked_out = not bodiless and length is None
        if chunked_out:
            self.send_header("Transfer-Encoding", "chunked")
        if response.will_close:
            self.close_connection = True
        self.end_headers()
        if bodiless:
            response.read()
            return
        if cut and length is not None:
            limit = int(length) // 2
            sent = 0
            while sent < limit:
                data = response.read(min(CHUNK, limit - sent))
                if not data:
                    break
                self.wfile.write(data)
                sent += len(data)
            self.wfile.flush()
            self.log_message("cut %s after %d of %s bytes", self.path, sent, length)
            self.close_connection = True
            self._drop_upstream()
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        while True:
            data = response.read(CHUNK)
            if not data:
                break
            if chunked_out:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                self.wfile.write(data)
        if chunked_out:
            self.wfile.write(b"0\r\n\r\n")

    do_GET = _proxy
    do_HEAD = _proxy
    do_PUT = _proxy
    do_POST = _proxy
    do_PATCH = _proxy
    do_DELETE = _proxy
    do_OPTIONS = _proxy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="fault-injecting registry proxy")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5206)
    parser.add_argument("--upstream", default="127.0.0.1:5216", help="host:port of the plain registry behind")
    args = parser.parse_args(argv)
    host, _sep, port = args.upstream.rpartition(":")
    ProxyHandler.upstream = (host, int(port))
    server = ThreadingHTTPServer((args.host, args.port), ProxyHandler)
    server.daemon_threads = True
    sys.stderr.write("fault proxy on http://%s:%d -> http://%s\n" % (args.host, args.port, args.upstream))
    sys.stderr.flush()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
