# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A tiny HTTP server that speaks just enough of the registry API to serve one image, and
misbehaves on request: the answers a proxy, a login page or a broken registry give.

Used by the module unit tests that run a module's real ``main()`` against it; the
integration targets use the harness's fault proxy in front of a real registry instead.

Modes (``server.mode``): ``ok``; ``html`` (manifests: 200 with an HTML page);
``not_json`` (manifests: 200, a manifest Content-Type, a body that is not JSON, with its
own correct Docker-Content-Digest); ``content_type`` (manifests: the real body with
``Content-Type: text/html``); ``digest`` (manifest GETs: a Docker-Content-Digest that is
not the body's); ``redirect_loop`` (manifests and blobs: 307 to themselves); ``json_list``
(tags/list and the catalog answer a JSON list instead of an object). ``flaky`` (int): the
next N requests get 503 with ``Retry-After: 0``.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import re
import threading
import typing as t

__all__ = ["MisbehavingRegistry", "misbehaving_registry", "IMAGE"]


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _Image:
    def __init__(self) -> None:
        self.config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
                                  "config": {"Labels": {"a": "b"}},
                                  "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        self.layer = b"layer bytes " * 10
        self.blobs = {_digest(self.config): self.config, _digest(self.layer): self.layer}
        self.manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _digest(self.config),
                       "size": len(self.config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": _digest(self.layer),
                        "size": len(self.layer)}],
        }).encode()
        self.digest = _digest(self.manifest)


IMAGE = _Image()
_MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")
_BLOB = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>sha256:[0-9a-f]{64})$")
HTML = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Please sign in</body></html>"
NOT_JSON = b"\xff\xfenot json at all"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "MisbehavingRegistry"

    def log_message(self, *args: t.Any) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", headers: t.Optional[dict] = None) -> None:
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str) -> None:
        body = json.dumps({"errors": [{"code": code, "message": code.lower()}]}).encode()
        self._send(status, body, {"Content-Type": "application/json"})

    def _answer(self) -> None:
        server = self.server
        server.requests.append((self.command, self.path))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if server.flaky > 0:
            server.flaky -= 1
            self._send(503, b'{"errors":[{"code":"UNAVAILABLE","message":"try again"}]}',
                       {"Content-Type": "application/json", "Retry-After": "0"})
            return
        path = self.path.split("?", 1)[0]
        mode = server.mode
        if path == "/v2/":
            self._send(200, b"{}", {"Content-Type": "application/json",
                                    "Docker-Distribution-API-Version": "registry/2.0"})
            return
        if path in ("/v2/_catalog",) or path.endswith("/tags/list"):
            data = ["team/app"] if mode == "json_list" else (
                {"repositories": ["team/app"]} if path == "/v2/_catalog" else {"name": "team/app", "tags": ["1.0"]})
            self._send(200, json.dumps(data).encode(), {"Content-Type": "application/json"})
            return
        manifest = _MANIFEST.match(path)
        blob = _BLOB.match(path)
        if mode == "redirect_loop" and (manifest or blob):
            self._send(307, b"", {"Location": self.path})
            return
        if manifest:
            self._manifest(manifest.group("name"), manifest.group("ref"))
            return
        if blob:
            data = IMAGE.blobs.get(blob.group("digest"))
            if data is None:
                self._error(404, "BLOB_UNKNOWN")
            else:
                self._send(200, data, {"Content-Type": "application/octet-stream",
                                       "Docker-Content-Digest": blob.group("digest")})
            return
        self._error(404, "NAME_UNKNOWN")

    def _manifest(self, name: str, reference: str) -> None:
        mode = self.server.mode
        body, content_type, digest = IMAGE.manifest, "application/vnd.oci.image.manifest.v1+json", IMAGE.digest
        if mode == "html":
            body, content_type, digest = HTML, "text/html; charset=utf-8", None
        elif mode == "not_json":
            body, digest = NOT_JSON, _digest(NOT_JSON)
        elif mode == "content_type":
            content_type = "text/html; charset=utf-8"
        elif mode == "digest" and self.command == "GET":
            digest = _digest(b"something else")
        if name != "team/app" or reference not in ("1.0", IMAGE.digest, _digest(body)):
            self._error(404, "MANIFEST_UNKNOWN")
            return
        headers = {"Content-Type": content_type}
        if digest:
            headers["Docker-Content-Digest"] = digest
        self._send(200, body, headers)

    do_GET = _answer
    do_HEAD = _answer
    do_PUT = _answer
    do_POST = _answer
    do_DELETE = _answer


class MisbehavingRegistry(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = "ok"
        self.flaky = 0
        self.requests = []  # type: t.List[t.Tuple[str, str]]

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.server_address[1]


@contextlib.contextmanager
def misbehaving_registry() -> t.Iterator[MisbehavingRegistry]:
    server = MisbehavingRegistry()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
