# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A small Docker token server (the ``auth.token`` realm of the token registry).

Run by ``registries.py up`` as a background process::

    python tokenserver.py --users users.json --port 5205 --cert server.crt --key server.key \
        --signer-cert token-signer.crt --signer-key token-signer.key --issuer I --service S

It implements the Docker token protocol:

* ``GET /token?service=S&scope=repository:name:pull,push&scope=...`` with optional Basic
  auth (and ``offline_token=true`` to also get a refresh token);
* ``POST /token`` (the OAuth2 form) with ``grant_type=password`` (``username``, ``password``)
  or ``grant_type=refresh_token`` (``refresh_token``), ``service``, ``scope`` (space separated).

Answers ``{"token", "access_token", "expires_in": 300, "issued_at"}``; the JWT is RS256 with
the signing certificate in the ``x5c`` header, which the registry checks against its
``rootcertbundle`` (the harness CA). Permissions, by user (see ``grant``):

* a user with ``"access": "all"`` gets every action asked for on every repository and
  ``registry:catalog:*``;
* a user with ``"access": "pull"`` gets only ``pull`` on repositories, and ``registry:catalog:*``;
* anonymous requests (no credentials) get only ``pull`` on repositories under ``public/``.

A wrong password (or unknown user, or bad refresh token) gets 401.

Azure Container Registry's Azure AD flow (``--aad-key``, ``--aad-tenant``, ``--aad-service``), as
``az acr login`` uses it:

* ``POST /oauth2/exchange`` with the form ``grant_type=access_token``, ``service`` (must be the
  ACR registry's service), ``tenant`` (must be the token's ``tid``) and ``access_token`` (an
  "Azure AD" token: an HS256 JWT signed with the key in ``--aad-key``, ``tid``, ``exp`` and
  ``upn`` = a user of ``--users``) answers ``{"refresh_token"}``; each field is checked and a
  wrong one gets 400 or 401 naming it.
* ``/oauth2/token`` is ``/token`` (the ACR registry's realm), so the refresh token is traded for
  registry tokens with ``grant_type=refresh_token``.

``python tokenserver.py aad-token --aad-key K --tenant T --user U [--expires-in S]`` prints such a
token (for tests).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime
import hashlib
import hmac
import json
import os
import secrets
import ssl
import sys
import time
import typing as t
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

__all__ = ["TokenIssuer", "grant", "main"]

EXPIRES_IN = 300
AAD_AUDIENCE = "https://containerregistry.azure.net"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def parse_scope(scope: str) -> tuple[str, str, list[str]] | None:
    """``repository:a/b:pull,push`` -> ("repository", "a/b", ["pull", "push"])."""
    parts = scope.split(":")
    if len(parts) < 3:
        return None
    actions = [a for a in parts[-1].split(",") if a]
    return parts[0], ":".join(parts[1:-1]), actions


def grant(user: dict | None, scopes: list[str]) -> list[dict]:
    """The access list the token carries for ``user`` (None = anonymous)."""
    access: list[dict] = []
    for scope in scopes:
        parsed = parse_scope(scope)
        if parsed is None:
            continue
        rtype, name, actions = parsed
        level = user.get("access") if user else "anonymous"
        allowed: list[str] = []
        if rtype == "registry" and name == "catalog":
            if level in ("all", "pull"):
                allowed = ["*"]
        elif rtype.startswith("repository"):
            if level == "all":
                allowed = list(actions)
            elif level == "pull" or (level == "anonymous" and name.startswith("public/")):
                allowed = [a for a in actions if a == "pull"]
        if allowed:
            access.append({"type": rtype, "name": name, "actions": allowed})
    return access


def aad_token(key: bytes, tenant: str, user: str, expires_in: int = 3600, now: int | None = None) -> str:
    """A stand-in Azure AD access token: an HS256 JWT with ``tid``, ``upn``, ``aud``, ``exp``."""
    now = int(time.time()) if now is None else now
    header = {"typ": "JWT", "alg": "HS256"}
    claims = {"aud": AAD_AUDIENCE, "iss": "https://sts.windows.net/%s/" % tenant, "tid": tenant, "upn": user,
              "iat": now, "nbf": now - 30, "exp": now + expires_in}
    signing_input = "%s.%s" % (_b64url(json.dumps(header, separators=(",", ":")).encode()),
                               _b64url(json.dumps(claims, separators=(",", ":")).encode()))
    signature = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return "%s.%s" % (signing_input, _b64url(signature))


def check_aad_token(key: bytes, token: str, tenant: str) -> tuple[str | None, str]:
    """``(user, "")`` for a valid token of ``tenant``, else ``(None, why)``."""
    try:
        head, body, signature = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, binascii.Error):
        return None, "access_token is not a JWT"
    expected = _b64url(hmac.new(key, ("%s.%s" % (head, body)).encode("ascii"), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, signature):
        return None, "access_token signature is invalid"
    if claims.get("aud") != AAD_AUDIENCE:
        return None, "access_token audience is not %s" % AAD_AUDIENCE
    if claims.get("tid") != tenant:
        return None, "access_token was issued for tenant %s, not the requested tenant %s" % (claims.get("tid"), tenant)
    if int(claims.get("exp", 0)) <= time.time():
        return None, "access_token has expired"
    return claims.get("upn"), ""


class TokenIssuer:
    """Signs registry tokens and refresh tokens."""

    def __init__(self, signer_cert: str, signer_key: str, issuer: str, users: dict) -> None:
        with open(signer_key, "rb") as handle:
            self.key = serialization.load_pem_private_key(handle.read(), password=None)
        with open(signer_cert, "rb") as handle:
            cert = x509.load_pem_x509_certificate(handle.read())
        self.x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")]
        self.issuer = issuer
        self.users = users
        # Refresh tokens are HMACs of the user name: stateless, invalid after a restart.
        self.refresh_secret = secrets.token_bytes(32)

    def authenticate(self, username: str, password: str) -> dict | None:
        user = self.users.get(username)
        if user is None or not hmac.compare_digest(user["password"].encode(), password.encode()):
            return None
        return dict(user, name=username)

    def refresh_token(self, username: str) -> str:
        mac = hmac.new(self.refresh_secret, username.encode(), hashlib.sha256).hexdigest()
        return "%s.%s" % (_b64url(username.encode()), mac)

    def user_from_refresh_token(self, token: str) -> dict | None:
        try:
            encoded, mac = token.split(".", 1)
            username = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        if not hmac.compare_digest(self.refresh_token(username).split(".", 1)[1], mac):
            return None
        user = self.users.get(username)
        return dict(user, name=username) if user else None

    def token(self, user: dict | None, service: str, scopes: list[str]) -> dict:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": self.x5c}
        claims = {
            "iss": self.issuer,
            "sub": user["name"] if user else "",
            "aud": service,
            "exp": now + EXPIRES_IN,
            "nbf": now - 30,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": grant(user, scopes),
        }
        signing_input = "%s.%s" % (
            _b64url(json.dumps(header, separators=(",", ":")).encode()),
            _b64url(json.dumps(claims, separators=(",", ":")).encode()),
        )
        signature = self.key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        jwt = "%s.%s" % (signing_input, _b64url(signature))
        issued = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
        return {
            "token": jwt,
            "access_token": jwt,
            "expires_in": EXPIRES_IN,
            "issued_at": issued.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


class TokenHandler(BaseHTTPRequestHandler):
    """GET and POST /token."""

    protocol_version = "HTTP/1.1"
    server_version = "dockyard-it-token/1"
    timeout = 60
    issuer: TokenIssuer
    aad_key: bytes | None = None
    aad_service = ""

    def setup(self) -> None:
        # The TLS handshake runs here, in the connection's thread, so that one slow or
        # broken client cannot hold up the accept loop.
        super().setup()
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()

    def log_message(self, format: str, *args: t.Any) -> None:  # pylint: disable=redefined-builtin
        sys.stderr.write("%s %s\n" % (self.log_date_time_string(), format % args))

    def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _unauthorized(self, detail: str) -> None:
        self._send(
            401,
            {"errors": [{"code": "UNAUTHORIZED", "message": detail}]},
            {"WWW-Authenticate": 'Basic realm="dockyard-it-token"'},
        )

    def _basic_credentials(self) -> tuple[str, str] | None:
        header = self.headers.get("Authorization", "")
        if not header.lower().startswith("basic "):
            return None
        try:
            decoded = base64.b64decode(header[6:].strip()).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return ("", "")
        username, _sep, password = decoded.partition(":")
        return username, password

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        url = urlparse(self.path)
        if url.path not in ("/token", "/oauth2/token"):
            self._send(404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
            return
        query = parse_qs(url.query)
        user = None
        creds = self._basic_credentials()
        if creds is not None:
            user = self.issuer.authenticate(*creds)
            if user is None:
                self._unauthorized("invalid username or password")
                return
        body = self.issuer.token(user, query.get("service", [""])[0], query.get("scope", []))
        if user and query.get("offline_token", [""])[0].lower() == "true":
            body["refresh_token"] = self.issuer.refresh_token(user["name"])
        self._send(200, body)

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode("utf-8")) if length else {}
        if url.path == "/oauth2/exchange" and self.aad_key is not None:
            self._exchange(form)
            return
        if url.path not in ("/token", "/oauth2/token"):
            self._send(404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
            return
        grant_type = form.get("grant_type", [""])[0]
        if grant_type == "password":
            user = self.issuer.authenticate(form.get("username", [""])[0], form.get("password", [""])[0])
        elif grant_type == "refresh_token":
            user = self.issuer.user_from_refresh_token(form.get("refresh_token", [""])[0])
        else:
            self._send(400, {"error": "unsupported_grant_type"})
            return
        if user is None:
            self._unauthorized("invalid credentials")
            return
        scopes: list[str] = []
        for value in form.get("scope", []):
            scopes.extend(value.split())
        body = self.issuer.token(user, form.get("service", [""])[0], scopes)
        if grant_type == "password" and form.get("access_type", [""])[0] == "offline":
            body["refresh_token"] = self.issuer.refresh_token(user["name"])
        elif grant_type == "refresh_token":
            body["refresh_token"] = form["refresh_token"][0]
        self._send(200, body)

    def _exchange(self, form: dict) -> None:
        """ACR's /oauth2/exchange: an Azure AD access token for a refresh token."""
        field = dict((key, values[0]) for key, values in form.items())
        if field.get("grant_type") != "access_token":
            self._send(400, {"errors": [{"code": "UNSUPPORTED", "message": "grant_type must be access_token, got %r"
                                         % field.get("grant_type")}]})
            return
        missing = [name for name in ("service", "tenant", "access_token") if not field.get(name)]
        if missing:
            self._send(400, {"errors": [{"code": "BAD_REQUEST", "message": "missing form fields: %s"
                                         % ", ".join(missing)}]})
            return
        if field["service"] != self.aad_service:
            self._send(400, {"errors": [{"code": "BAD_REQUEST", "message": "service %r is not this registry (%s)"
                                         % (field["service"], self.aad_service)}]})
            return
        assert self.aad_key is not None
        user, why = check_aad_token(self.aad_key, field["access_token"], field["tenant"])
        if user is None or user not in self.issuer.users:
            self._send(401, {"errors": [{"code": "UNAUTHORIZED", "message": why or "unknown principal"}]})
            return
        self._send(200, {"refresh_token": self.issuer.refresh_token(user)})


def mint_aad_token(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tokenserver.py aad-token")
    parser.add_argument("--aad-key", required=True)
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--expires-in", type=int, default=3600)
    args = parser.parse_args(argv)
    with open(args.aad_key, "rb") as handle:
        key = handle.read().strip()
    sys.stdout.write(aad_token(key, args.tenant, args.user, args.expires_in) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["aad-token"]:
        return mint_aad_token(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--users", required=True, help="JSON file {name: {password, access}}")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5205)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--signer-cert", required=True)
    parser.add_argument("--signer-key", required=True)
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--aad-key", help="file with the key that signs stand-in Azure AD tokens")
    parser.add_argument("--aad-service", default="", help="the ACR registry's token service")
    args = parser.parse_args(argv)
    with open(args.users, encoding="utf-8") as handle:
        users = json.load(handle)
    TokenHandler.issuer = TokenIssuer(args.signer_cert, args.signer_key, args.issuer, users)
    if args.aad_key:
        with open(args.aad_key, "rb") as handle:
            TokenHandler.aad_key = handle.read().strip()
        TokenHandler.aad_service = args.aad_service
    server = ThreadingHTTPServer((args.host, args.port), TokenHandler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(args.cert, args.key)
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    sys.stderr.write("token server listening on https://%s:%d/token (pid %d)\n" % (args.host, args.port, os.getpid()))
    sys.stderr.flush()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
