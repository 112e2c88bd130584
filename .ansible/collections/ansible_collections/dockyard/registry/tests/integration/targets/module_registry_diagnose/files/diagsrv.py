# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Broken registries for registry_diagnose's tests, independent of the collection's code.

``certs`` issues with ``cryptography``: a certificate that expired (signed by the harness CA),
one for another name (harness CA), and one from a CA nobody trusts. ``serve`` answers
``GET /v2/`` like a registry (200, ``Docker-Distribution-API-Version``) on several ports at
once, each TLS with one of those certificates, TLS 1.1 only, or plain HTTP with a ``Date``
header off by N seconds; it daemonizes and writes its pid, so the test's ``always`` can kill it.
"""

from __future__ import annotations

import argparse
import datetime
import email.utils
import http.server
import ipaddress
import os
import socketserver
import ssl
import sys
import threading
import time
import warnings

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def _write(path, data, mode=0o644):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _leaf(out, name, issuer_cert, issuer_key, dns, start, end):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))] * ("localhost" in dns)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns[0])]))
            .issuer_name(issuer_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(issuer_key, hashes.SHA256()))
    _write(os.path.join(out, name + ".crt"), cert.public_bytes(serialization.Encoding.PEM))
    _write(os.path.join(out, name + ".key"), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()), 0o600)


def certs(args):
    os.makedirs(args.out, exist_ok=True)
    with open(args.ca_cert, "rb") as handle:
        ca_cert = x509.load_pem_x509_certificate(handle.read())
    with open(args.ca_key, "rb") as handle:
        ca_key = serialization.load_pem_private_key(handle.read(), password=None)
    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)
    _leaf(args.out, "expired", ca_cert, ca_key, ["localhost"], now - 60 * day, now - day)
    _leaf(args.out, "othername", ca_cert, ca_key, ["other.dockyard-it.invalid"], now - day, now + 30 * day)
    _leaf(args.out, "valid", ca_cert, ca_key, ["localhost"], now - day, now + 300 * day)
    rogue_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rogue_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a CA nobody trusts")])
    rogue = (x509.CertificateBuilder().subject_name(rogue_name).issuer_name(rogue_name)
             .public_key(rogue_key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - day).not_valid_after(now + 30 * day)
             .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
             .sign(rogue_key, hashes.SHA256()))
    _leaf(args.out, "untrusted", rogue, rogue_key, ["localhost"], now - day, now + 30 * day)


class _Handler(http.server.BaseHTTPRequestHandler):
    skew = 0

    def date_time_string(self, timestamp=None):
        return email.utils.formatdate(time.time() + self.skew, usegmt=True)

    def do_GET(self):  # noqa: N802 - http.server's naming
        body = b"{}" if self.path.startswith("/v2/") else b'{"errors":[{"code":"NOT_FOUND"}]}'
        self.send_response(200 if self.path.startswith("/v2/") else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.server.server_address[1], fmt % args))


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _start(port, handler, context=None):
    server = _Server(("127.0.0.1", port), handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def serve(args):
    servers = []
    for port, cert in args.tls or []:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, cert[:-4] + ".key")
        servers.append((int(port), _Handler, context))
    for port, cert in args.tls11 or []:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, cert[:-4] + ".key")
        # OpenSSL 3 (Debian 12) allows TLS 1.0/1.1 only at security level 0
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1_1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
        servers.append((int(port), _Handler, context))
    for port, seconds in args.skew or []:
        handler = type("Skewed", (_Handler,), {"skew": int(seconds)})
        servers.append((int(port), handler, None))
    if os.fork():
        return
    os.setsid()
    if os.fork():
        os._exit(0)
    log = os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    for port, handler, context in servers:
        _start(port, handler, context)
    _write(args.pidfile, str(os.getpid()).encode())
    while True:
        time.sleep(3600)


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("certs")
    c.add_argument("--ca-cert", required=True)
    c.add_argument("--ca-key", required=True)
    c.add_argument("--out", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--tls", nargs=2, action="append", metavar=("PORT", "CERT"))
    s.add_argument("--tls11", nargs=2, action="append", metavar=("PORT", "CERT"))
    s.add_argument("--skew", nargs=2, action="append", metavar=("PORT", "SECONDS"))
    s.add_argument("--pidfile", required=True)
    s.add_argument("--log", required=True)
    args = parser.parse_args()
    (certs if args.command == "certs" else serve)(args)


if __name__ == "__main__":
    main()
