# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Challenges, Basic and the Bearer token flow, against a scripted token endpoint."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import pytest

from ansible_collections.dockyard.registry.plugins.module_utils._auth import (
    Authenticator,
    Credentials,
    parse_challenge,
)
from ansible_collections.dockyard.registry.plugins.module_utils._errors import (
    Denied,
    ServerError,
    Unauthorized,
    Unsupported,
)
from ansible_collections.dockyard.registry.plugins.module_utils._reference import parse_registry

from ansible_collections.dockyard.registry.tests.unit.plugins.module_utils.fake_transport import FakeClock

PASSWORD = "pa55-SECRET-word"
REGISTRY = parse_registry("reg.example.com")
CHALLENGE = 'Bearer realm="https://auth.example.com/token",service="reg.example.com"'


class TokenServer:
    """Records token requests; answers with scripted (status, body) pairs."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def __call__(self, method, url, headers, body):
        self.calls.append((method, url, dict(headers), body))
        status, data = self.answers.pop(0)
        return status, (json.dumps(data).encode() if not isinstance(data, bytes) else data)

    def query(self, index=-1):
        return parse_qs(urlsplit(self.calls[index][1]).query)


@pytest.mark.parametrize("header,scheme,params", [
    ('Bearer realm="https://a/token",service="reg",scope="repository:x:pull"', "bearer",
     {"realm": "https://a/token", "service": "reg", "scope": "repository:x:pull"}),
    ('Basic realm="Registry Realm"', "basic", {"realm": "Registry Realm"}),
    ('bearer Realm=https://a/t , Service="r"', "bearer", {"realm": "https://a/t", "service": "r"}),
    ('Bearer realm="a\\"b",error="insufficient_scope"', "bearer", {"realm": 'a"b', "error": "insufficient_scope"}),
    ('Bearer realm="https://a/t", Basic realm="x"', "bearer", {"realm": "https://a/t"}),
    ("Basic", "basic", {}),
    ("", "", {}),
    ("realm=x", "", {}),
])
def test_parse_challenge(header, scheme, params):
    assert parse_challenge(header) == (scheme, params)


def test_credentials_repr_hides_secrets():
    creds = Credentials("alice", PASSWORD, identity_token="id-SECRET", registry_token="reg-SECRET")
    for text in (repr(creds), str(creds), "%s" % [creds]):
        assert "alice" in text
        assert "SECRET" not in text
    assert "password=None" in repr(Credentials("bob"))
    assert Credentials().is_anonymous
    assert not Credentials("a", "b").is_anonymous
    assert not Credentials("a").has_basic


def test_anonymous_until_a_challenge():
    auth = Authenticator(REGISTRY, None, TokenServer())
    assert auth.authorization(["repository:a:pull"]) is None
    assert auth.scheme is None


def test_basic_challenge_with_and_without_credentials():
    auth = Authenticator(REGISTRY, Credentials("alice", PASSWORD), TokenServer())
    value = auth.handle_challenge('Basic realm="Registry"', [])
    assert value == "Basic " + base64.b64encode(("alice:" + PASSWORD).encode()).decode()
    # from now on Basic goes out without waiting for another challenge
    assert auth.authorization(["repository:a:pull"]) == value

    anonymous = Authenticator(REGISTRY, None, TokenServer())
    with pytest.raises(Unauthorized) as exc:
        anonymous.handle_challenge('Basic realm="Registry"', [], "reg.example.com/a:1")
    message = str(exc.value)
    assert "reg.example.com" in message and "reg.example.com/a:1" in message
    assert "dockyard.registry.registry_login" in message


def test_bearer_token_request_carries_service_scopes_and_basic_credentials():
    server = TokenServer((200, {"token": "tok-1", "expires_in": 300}))
    auth = Authenticator(REGISTRY, Credentials("alice", PASSWORD), server)
    scopes = ["repository:dst:pull,push", "repository:src:pull"]
    assert auth.handle_challenge(CHALLENGE + ',scope="repository:dst:pull,push"', scopes) == "Bearer tok-1"
    method, url, headers, body = server.calls[0]
    assert method == "GET" and url.startswith("https://auth.example.com/token?")
    query = server.query()
    assert query["service"] == ["reg.example.com"]
    # several scopes in one token request, the challenge's own scope not repeated
    assert query["scope"] == scopes
    assert query["account"] == ["alice"]
    assert headers["Authorization"] == "Basic " + base64.b64encode(("alice:" + PASSWORD).encode()).decode()
    assert body is None


def test_realm_with_query_and_anonymous_token():
    server = TokenServer((200, {"access_token": "anon"}))
    auth = Authenticator(REGISTRY, None, server)
    value = auth.handle_challenge('Bearer realm="https://a/token?x=1",service="s"', ["repository:a:pull"])
    assert value == "Bearer anon"
    assert server.calls[0][1].startswith("https://a/token?x=1&")
    assert "Authorization" not in server.calls[0][2]
    assert "account" not in server.query()


def test_tokens_are_reused_until_they_expire():
    clock = FakeClock()
    server = TokenServer((200, {"token": "t1", "expires_in": 100}), (200, {"token": "t2"}),
                         (200, {"token": "t3"}))
    auth = Authenticator(REGISTRY, Credentials("alice", PASSWORD), server, clock=clock)
    auth.handle_challenge(CHALLENGE, ["repository:a:pull"])
    clock.advance(80)
    assert auth.authorization(["repository:a:pull"]) == "Bearer t1"
    assert len(server.calls) == 1
    # renewed a little before expires_in (10 % margin, at most 10 s)
    clock.advance(11)
    assert auth.authorization(["repository:a:pull"]) == "Bearer t2"
    assert len(server.calls) == 2
    # no expires_in: the spec's default of 60 s
    clock.advance(53)
    assert auth.authorization(["repository:a:pull"]) == "Bearer t2"
    clock.advance(2)
    assert auth.authorization(["repository:a:pull"]) == "Bearer t3"
    assert auth.token_requests == 3


def test_a_token_covering_more_scopes_is_reused_and_new_scopes_fetch_a_token():
    server = TokenServer((200, {"token": "both"}), (200, {"token": "other"}))
    auth = Authenticator(REGISTRY, None, server)
    auth.handle_challenge(CHALLENGE, ["repository:a:pull", "repository:b:pull"])
    assert auth.authorization(["repository:b:pull"]) == "Bearer both"
    assert auth.authorization(["repository:c:pull"]) == "Bearer other"
    assert server.query()["scope"] == ["repository:c:pull"]


def test_a_second_challenge_fetches_a_fresh_token():
    server = TokenServer((200, {"token": "old", "expires_in": 3600}), (200, {"token": "new", "expires_in": 3600}))
    auth = Authenticator(REGISTRY, None, server)
    auth.handle_challenge(CHALLENGE, ["repository:a:pull"])
    assert auth.handle_challenge(CHALLENGE, ["repository:a:pull"]) == "Bearer new"
    assert auth.authorization(["repository:a:pull"]) == "Bearer new"


def test_identity_token_uses_the_oauth_refresh_grant():
    server = TokenServer((200, {"access_token": "acc", "expires_in": 60}))
    auth = Authenticator(REGISTRY, Credentials(identity_token="refresh-SECRET"), server)
    assert auth.handle_challenge(CHALLENGE, ["repository:a:pull", "repository:b:push"]) == "Bearer acc"
    method, url, headers, body = server.calls[0]
    assert method == "POST" and url == "https://auth.example.com/token"
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = parse_qs(body.decode())
    assert form["grant_type"] == ["refresh_token"]
    assert form["refresh_token"] == ["refresh-SECRET"]
    assert form["service"] == ["reg.example.com"]
    assert form["scope"] == ["repository:a:pull repository:b:push"]


def test_registry_token_is_sent_as_is_and_a_refusal_is_unauthorized():
    auth = Authenticator(REGISTRY, Credentials(registry_token="ready-SECRET"), TokenServer())
    assert auth.authorization([]) == "Bearer ready-SECRET"
    with pytest.raises(Unauthorized) as exc:
        auth.handle_challenge(CHALLENGE, [])
    assert "SECRET" not in str(exc.value)


@pytest.mark.parametrize("status,body,error,text", [
    (401, {"details": "incorrect username or password"}, Unauthorized, "bad or missing credentials"),
    (403, {}, Denied, "lacks permission"),
    (500, {}, ServerError, "HTTP 500"),
    (200, {"nothing": "here"}, ServerError, "without a token"),
    (200, b"<html>", ServerError, "without a token"),
])
def test_token_server_failures(status, body, error, text):
    auth = Authenticator(REGISTRY, Credentials("alice", PASSWORD), TokenServer((status, body)))
    with pytest.raises(error) as exc:
        auth.handle_challenge(CHALLENGE, ["repository:a:pull"], "reg.example.com/a:1")
    assert text in str(exc.value)
    assert PASSWORD not in str(exc.value) and PASSWORD not in repr(exc.value)
    assert exc.value.registry == "reg.example.com"


def test_unknown_scheme_and_bearer_without_realm():
    auth = Authenticator(REGISTRY, None, TokenServer())
    with pytest.raises(Unsupported) as exc:
        auth.handle_challenge('Negotiate abc', [])
    assert "negotiate" in str(exc.value)
    with pytest.raises(ServerError):
        auth.handle_challenge('Bearer service="x"', [])
