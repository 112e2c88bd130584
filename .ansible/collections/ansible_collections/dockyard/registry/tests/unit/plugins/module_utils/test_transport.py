# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The transport on its own: TLS contexts from the connection options (files checked first),
keep-alive connections against a real local HTTP server, proxies, and the verifying reader."""

from __future__ import annotations

import base64
import errno
import hashlib
import http.client
import http.server
import io
import os
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from ansible_collections.dockyard.registry.plugins.module_utils._client import RegistryClient
from ansible_collections.dockyard.registry.plugins.module_utils._errors import (
    DigestMismatch,
    InvalidInput,
    Unreachable,
)
from ansible_collections.dockyard.registry.plugins.module_utils._manifest import sha256_digest
from ansible_collections.dockyard.registry.plugins.module_utils._reference import parse_registry
from ansible_collections.dockyard.registry.plugins.module_utils._transport import (
    HttpTransport,
    VerifyingReader,
    tls_context,
)
from ansible_collections.dockyard.registry.tests.unit.plugins.module_utils.fake_transport import (
    FakeClock,
    FakeResponse,
)
from ansible_collections.dockyard.registry.tests.unit.plugins.registry_process import free_port


# --- TLS settings --------------------------------------------------------------------------------

def test_unreadable_ca_cert_is_invalid_input(tmp_path):
    with pytest.raises(InvalidInput) as exc:
        RegistryClient(parse_registry("reg.example.com"), ca_cert=str(tmp_path / "missing.crt"))
    assert "missing.crt" in str(exc.value)
    bogus = tmp_path / "bogus.crt"
    bogus.write_text("not a certificate")
    with pytest.raises(InvalidInput):
        RegistryClient(parse_registry("reg.example.com"), ca_cert=str(bogus))
    with pytest.raises(InvalidInput):
        RegistryClient(parse_registry("reg.example.com"), client_key=str(bogus))


# --- HttpTransport against a real local HTTP server ----------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    connections = []  # type: list
    drop_after_response = False

    def setup(self):
        super().setup()
        type(self).connections.append(self.client_address)

    def log_message(self, *args):
        pass

    def _answer(self, body):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        self.wfile.write(body)
        if type(self).drop_after_response:
            # close without "Connection: close", as a server does with an idle keep-alive connection
            self.close_connection = True

    def do_GET(self):
        size = int(parse_qs(urlsplit(self.path).query).get("size", ["2"])[0])
        self._answer(b"x" * size)

    def do_PUT(self):
        length = int(self.headers["Content-Length"])
        digest = hashlib.sha256()
        while length:
            chunk = self.rfile.read(min(length, 65536))
            digest.update(chunk)
            length -= len(chunk)
        self._answer(digest.hexdigest().encode())


@pytest.fixture
def http_server():
    _Handler.connections = []
    _Handler.drop_after_response = False
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    server.server_close()


def _plain_client(url, **kwargs):
    clock = FakeClock()
    return RegistryClient(parse_registry(url), sleep=clock.sleep, clock=clock, **kwargs), clock


def test_http_transport_shares_idle_connections_between_threads(http_server):
    client, _clock = _plain_client(http_server)
    for _i in range(20):
        client.ping()
    assert len(_Handler.connections) == 1

    def worker():
        for _i in range(5):
            client.ping()

    # one thread after the other: each takes the connection the one before handed back
    for _i in range(3):
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
    assert len(_Handler.connections) == 1


def test_http_transport_opens_a_connection_per_request_in_flight(http_server):
    transport = HttpTransport()
    first = transport.request("GET", http_server + "/x?size=10", {}, None, 10)
    second = transport.request("GET", http_server + "/x?size=10", {}, None, 10)   # the first is not read yet
    assert first.read() == second.read() == b"x" * 10
    first.close()
    second.close()
    third = transport.request("GET", http_server + "/x?size=10", {}, None, 10)
    third.read()
    third.close()
    assert len(_Handler.connections) == 2
    transport.close()


def test_http_transport_keeps_at_most_max_idle_connections_per_host(http_server):
    transport = HttpTransport(max_idle=2)
    answers = [transport.request("GET", http_server + "/x?size=3", {}, None, 10) for _i in range(4)]
    for answer in answers:      # four in flight at once: four connections, two kept when done
        assert answer.read() == b"xxx"
        answer.close()
    for _i in range(4):         # one at a time: the two kept ones serve, no new connection
        answer = transport.request("GET", http_server + "/x?size=3", {}, None, 10)
        answer.read()
        answer.close()
    assert len(_Handler.connections) == 4
    transport.close()


def test_http_transport_reconnects_when_the_server_dropped_the_connection(http_server):
    _Handler.drop_after_response = True
    client, clock = _plain_client(http_server)
    for _i in range(5):
        client.ping()
    assert clock.sleeps == []
    assert len(_Handler.connections) == 5


def test_http_transport_discards_a_half_read_connection_and_reuses_a_drained_one(http_server):
    transport = HttpTransport()
    response = transport.request("GET", http_server + "/x?size=100000", {}, None, 10)
    assert len(response.read(10)) == 10
    response.close()
    response = transport.request("GET", http_server + "/x?size=10", {}, None, 10)
    assert response.read() == b"x" * 10
    response.close()
    response = transport.request("GET", http_server + "/x?size=10", {}, None, 10)
    response.read()
    response.close()
    assert len(_Handler.connections) == 2
    transport.close()


def test_http_transport_streams_an_upload_body(http_server):
    data = os.urandom(3 * 1024 * 1024 + 3)
    transport = HttpTransport()
    response = transport.request("PUT", http_server + "/up", {"Content-Length": str(len(data))},
                                 io.BytesIO(data), 10)
    assert response.read().decode() == hashlib.sha256(data).hexdigest()
    response.close()


def test_connection_refused_for_real():
    port = free_port()
    client, clock = _plain_client("http://127.0.0.1:%d" % port, retries=2)
    with pytest.raises(Unreachable) as exc:
        client.ping()
    assert "the registry is unreachable at http://127.0.0.1:%d" % port in str(exc.value)
    assert clock.sleeps == []  # nothing ever answered there: no point in waiting


class _FifoWriter(threading.Thread):
    """Opens the write end of a FIFO as soon as anyone opens its read end, then closes it: code
    that opens the FIFO gets EOF instead of blocking forever (so a regression fails, not hangs)."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.stop = threading.Event()
        self.opened = False

    def run(self):
        while not self.stop.is_set():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
                time.sleep(0.02)
                continue
            self.opened = True
            os.close(fd)
            return


@pytest.mark.parametrize("option", ["ca_cert", "client_cert", "client_key"])
@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_certificate_options_must_be_regular_files(tmp_path, option, kind):
    path = tmp_path / "special"
    if kind == "fifo":
        os.mkfifo(str(path))
    else:
        path.mkdir()
    writer = _FifoWriter(str(path))
    if kind == "fifo":
        writer.start()
    try:
        args = {"ca_cert": None, "client_cert": None, "client_key": None}
        args[option] = str(path)
        if option == "client_key":
            args["client_cert"] = str(tmp_path / "cert.pem")
            (tmp_path / "cert.pem").write_text("not used: the key is checked first")
        with pytest.raises(InvalidInput) as info:
            tls_context(True, registry="reg.example:5000", prefix="source_", **args)
    finally:
        writer.stop.set()
    message = str(info.value)
    assert "source_%s" % option in message and str(path) in message and "reg.example:5000" in message
    assert ("a FIFO" if kind == "fifo" else "a directory") in message
    assert not writer.opened, "the FIFO was opened"


def test_a_symlink_to_a_regular_file_is_fine(tmp_path):
    target = tmp_path / "missing-ca.crt"
    link = tmp_path / "ca.crt"
    link.symlink_to(target)
    with pytest.raises(InvalidInput, match="No such file"):
        tls_context(True, str(link))
    target.write_text("not a certificate")
    with pytest.raises(InvalidInput, match="cannot use ca_cert"):
        tls_context(True, str(link))


def test_a_client_key_alone_is_refused():
    with pytest.raises(InvalidInput, match="client_key for reg.example:5000 needs client_cert too"):
        tls_context(True, client_key="/etc/hostname", registry="reg.example:5000")


def test_a_context_without_verification_checks_nothing():
    import ssl

    context = tls_context(False)
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_plain_http_is_sent_to_the_proxy_with_the_absolute_url(http_server, monkeypatch):
    for name in ("no_proxy", "NO_PROXY", "HTTPS_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", "http://user:proxy-SECRET@" + http_server.replace("http://", ""))
    paths = []
    original = _Handler.do_GET

    def recording_get(handler):
        paths.append((handler.path, handler.headers.get("Proxy-Authorization")))
        original(handler)

    monkeypatch.setattr(_Handler, "do_GET", recording_get)
    client, _clock = _plain_client("http://registry.invalid:5000")
    client.ping()
    assert paths[0][0] == "http://registry.invalid:5000/v2/"
    assert paths[0][1] == "Basic " + base64.b64encode(b"user:proxy-SECRET").decode()


# --- the verifying reader ------------------------------------------------------------------------

DATA = b"blob bytes " * 1000
DIGEST = sha256_digest(DATA)


def reader(body, size, cut_after=None):
    response = FakeResponse(200, {}, body, cut_after=cut_after)
    return VerifyingReader(response, DIGEST, size, lambda: {"registry": "reg", "reference": "reg/app@" + DIGEST}), \
        response


def read_all(stream):
    chunks = []
    while True:
        chunk = stream.read(4096)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


@pytest.mark.parametrize("size", [len(DATA), None, -1])
def test_the_reader_passes_a_body_that_matches(size):
    stream, response = reader(DATA, size)
    assert read_all(stream) == DATA
    stream.close()
    assert response.closed


def test_the_block_that_completes_a_wrong_body_is_never_returned():
    wrong = b"x" * len(DATA)
    stream, _response = reader(wrong, len(DATA))
    returned = []
    with pytest.raises(DigestMismatch, match="the content does not match"):
        while True:
            chunk = stream.read(4096)
            if not chunk:
                break
            returned.append(chunk)
    assert len(b"".join(returned)) < len(DATA)


def test_a_body_that_ends_early_is_worth_a_retry_and_a_longer_one_is_not():
    stream, _response = reader(DATA[:100], len(DATA))
    with pytest.raises(Unreachable, match="ended after 100 of %d bytes" % len(DATA)):
        read_all(stream)
    stream, _response = reader(DATA, len(DATA) - 1)
    with pytest.raises(DigestMismatch):
        stream.read()
    stream, _response = reader(DATA, len(DATA), cut_after=100)
    with pytest.raises(Unreachable, match="broke off after 100 bytes"):
        read_all(stream)
