# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""RegistryClient against a scripted transport, HttpTransport against a local HTTP server,
and the whole client against a real distribution registry process (``docker-registry``).

Nothing sleeps for real: the client gets a fake ``sleep``/clock that records the waits.
"""

from __future__ import annotations

import base64
import http.client
import http.server
import io
import json
import os
import socket
import ssl
import threading
import time
from email.utils import formatdate
from urllib.parse import parse_qs, urlsplit

import pytest

from ansible_collections.dockyard.registry.plugins.module_utils._auth import Credentials
from ansible_collections.dockyard.registry.plugins.module_utils._client import (
    RegistryClient,
    RetryStats,
    parse_retry_after,
)
from ansible_collections.dockyard.registry.plugins.module_utils._manifest import (
    DOCKER_MANIFEST,
    MANIFEST_MEDIA_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    sha256_digest,
)
from ansible_collections.dockyard.registry.plugins.module_utils._transport import ConnectionDropped, HttpTransport
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
from ansible_collections.dockyard.registry.plugins.module_utils._pool import AdaptiveLimit
from ansible_collections.dockyard.registry.plugins.module_utils._reference import parse_registry
from ansible_collections.dockyard.registry.tests.unit.plugins.module_utils.fake_transport import (
    FakeClock,
    FakeResponse,
    FakeTransport,
    json_response,
    registry_error,
)
from ansible_collections.dockyard.registry.tests.unit.plugins.registry_process import (
    htpasswd_auth,
    running_registry,
)

BASE = "https://reg.example.com"
REALM = "https://auth.example.com/token"
PASSWORD = "pa55-SECRET-word"
TOKEN = "tok-SECRET-1"
BEARER = 'Bearer realm="%s",service="reg.example.com"' % REALM
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}).encode()
MANIFEST_DIGEST = sha256_digest(MANIFEST)
BLOB = b"layer bytes " * 1000
BLOB_DIGEST = sha256_digest(BLOB)


def make_client(transport, credentials=None, clock=None, **kwargs):
    clock = clock or FakeClock()
    kwargs.setdefault("backoff", 0.5)
    return RegistryClient(parse_registry("reg.example.com"), credentials, transport=transport,
                          sleep=clock.sleep, clock=clock, wall_clock=clock, **kwargs), clock


def ok(body=b"{}", headers=None, status=200):
    all_headers = {"Content-Length": str(len(body))}
    all_headers.update(headers or {})
    return FakeResponse(status, all_headers, body)


def manifest_ok(body=MANIFEST, media_type=OCI_MANIFEST, digest=MANIFEST_DIGEST):
    headers = {"Content-Type": media_type}
    if digest:
        headers["Docker-Content-Digest"] = digest
    return ok(body, headers)


def head_ok():
    return FakeResponse(200, {"Docker-Content-Digest": MANIFEST_DIGEST, "Content-Type": OCI_MANIFEST,
                              "Content-Length": str(len(MANIFEST))})


def token(value=TOKEN, **extra):
    return json_response(200, dict(token=value, **extra))


def challenge(header=BEARER):
    return registry_error(401, "UNAUTHORIZED", "authentication required", {"WWW-Authenticate": header})


def assert_no_secret(error):
    texts = [str(error), repr(error), json.dumps(error.to_result())]
    cause = error.__cause__ or error.__context__
    if cause is not None:
        texts.append(repr(cause))
    for text in texts:
        assert PASSWORD not in text and TOKEN not in text and "SECRET" not in text, text


# --- auth ----------------------------------------------------------------------------------------

def test_anonymous_requests_carry_no_authorization():
    t = FakeTransport().expect("GET", BASE + "/v2/", ok())
    client, _clock = make_client(t)
    client.ping()
    assert t.requests[0].header("Authorization") is None
    assert t.requests[0].header("User-Agent") == "dockyard.registry"


def test_basic_challenge_then_basic_sent_up_front():
    basic = "Basic " + base64.b64encode(("alice:" + PASSWORD).encode()).decode()
    t = (FakeTransport()
         .expect("GET", BASE + "/v2/", challenge('Basic realm="Registry Realm"'))
         .expect("GET", BASE + "/v2/", ok())
         .expect("GET", BASE + "/v2/app/tags/list?n=1000", json_response(200, {"name": "app", "tags": ["1"]})))
    client, _clock = make_client(t, Credentials("alice", PASSWORD))
    client.ping()
    assert client.tags("app") == ["1"]
    assert [r.header("Authorization") for r in t.requests] == [None, basic, basic]


def test_bearer_flow_reuses_the_token_for_the_same_scope():
    t = (FakeTransport()
         .expect("HEAD", BASE + "/v2/app/manifests/1", challenge(BEARER + ',scope="repository:app:pull"'))
         .expect("GET", REALM, token(expires_in=300))
         .expect("HEAD", BASE + "/v2/app/manifests/1", head_ok())
         .expect("HEAD", BASE + "/v2/app/manifests/2", head_ok()))
    client, _clock = make_client(t, Credentials("alice", PASSWORD))
    assert client.manifest_head("app", "1") == Descriptor(MANIFEST_DIGEST, OCI_MANIFEST, len(MANIFEST))
    assert client.manifest_head("app", "2").digest == MANIFEST_DIGEST
    token_query = parse_qs(urlsplit(t.requests[1].url).query)
    assert token_query["scope"] == ["repository:app:pull"]
    assert token_query["service"] == ["reg.example.com"]
    assert t.requests[2].header("Authorization") == "Bearer " + TOKEN
    assert t.requests[3].header("Authorization") == "Bearer " + TOKEN
    assert client.auth.token_requests == 1
    assert t.done()


def test_an_expired_token_is_renewed_before_the_request():
    t = (FakeTransport()
         .expect("HEAD", BASE + "/v2/app/manifests/1", challenge())
         .expect("GET", REALM, token("first"))
         .expect("HEAD", BASE + "/v2/app/manifests/1", head_ok())
         .expect("GET", REALM, token("second"))
         .expect("HEAD", BASE + "/v2/app/manifests/1", head_ok()))
    client, clock = make_client(t)
    client.manifest_head("app", "1")
    clock.advance(61)  # no expires_in: 60 s
    client.manifest_head("app", "1")
    assert t.requests[-1].header("Authorization") == "Bearer second"
    assert t.done()


def test_one_refresh_on_401_then_success():
    t = (FakeTransport()
         .expect("HEAD", BASE + "/v2/app/manifests/1", challenge())
         .expect("GET", REALM, token("first", expires_in=3600))
         .expect("HEAD", BASE + "/v2/app/manifests/1", head_ok())
         # the registry restarted with a new key: the cached token is refused once
         .expect("HEAD", BASE + "/v2/app/manifests/1", challenge())
         .expect("GET", REALM, token("second", expires_in=3600))
         .expect("HEAD", BASE + "/v2/app/manifests/1", head_ok()))
    client, _clock = make_client(t, Credentials("alice", PASSWORD))
    client.manifest_head("app", "1")
    client.manifest_head("app", "1")
    assert [r.header("Authorization") for r in t.requests if r.url.startswith(BASE)] == [
        None, "Bearer first", "Bearer first", "Bearer second"]
    assert t.done()


def test_only_one_refresh_then_unauthorized_without_secrets():
    t = (FakeTransport()
         .expect("GET", BASE + "/v2/app/manifests/1", challenge())
         .expect("GET", REALM, token())
         .expect("GET", BASE + "/v2/app/manifests/1", challenge()))
    client, _clock = make_client(t, Credentials("alice", PASSWORD))
    with pytest.raises(Unauthorized) as exc:
        client.manifest_get("app", "1")
    assert t.done()
    message = str(exc.value)
    assert "bad or missing credentials for reg.example.com" in message
    assert "reg.example.com/app:1" in message
    assert "dockyard.registry.registry_login" in message
    assert exc.value.to_result()["error_kind"] == "unauthorized"
    assert_no_secret(exc.value)
    assert PASSWORD not in repr(client) and PASSWORD not in repr(client.credentials)


def test_insufficient_scope_after_login_is_denied():
    t = (FakeTransport()
         .expect("PUT", BASE + "/v2/app/manifests/1", challenge(BEARER + ',scope="repository:app:pull,push"'))
         .expect("GET", REALM, token())
         .expect("PUT", BASE + "/v2/app/manifests/1",
                 challenge(BEARER + ',scope="repository:app:pull,push",error="insufficient_scope"')))
    client, _clock = make_client(t, Credentials("reader", PASSWORD))
    with pytest.raises(Denied) as exc:
        client.manifest_put("app", "1", MANIFEST, OCI_MANIFEST)
    assert "lacks permission" in str(exc.value) and "reg.example.com/app:1" in str(exc.value)
    assert_no_secret(exc.value)


def test_mount_asks_for_both_repositories_in_one_token_request():
    t = (FakeTransport()
         .expect("POST", BASE + "/v2/dst/blobs/uploads/?mount=", challenge())
         .expect("GET", REALM, token())
         .expect("POST", BASE + "/v2/dst/blobs/uploads/?mount=", ok(b"", {"Location": "/v2/dst/blobs/" + BLOB_DIGEST},
                                                                    status=201)))
    client, _clock = make_client(t, Credentials("alice", PASSWORD))
    assert client.blob_mount("dst", BLOB_DIGEST, "src") is True
    query = parse_qs(urlsplit(t.requests[1].url).query)
    assert query["scope"] == ["repository:dst:pull,push", "repository:src:pull"]
    mount = parse_qs(urlsplit(t.requests[2].url).query)
    assert mount == {"mount": [BLOB_DIGEST], "from": ["src"]}


def test_refused_mount_cancels_the_upload_session_it_opened():
    t = (FakeTransport()
         .expect("POST", BASE + "/v2/dst/blobs/uploads/?mount=",
                 ok(b"", {"Location": BASE + "/v2/dst/blobs/uploads/u1?_state=x"}, status=202))
         .expect("DELETE", BASE + "/v2/dst/blobs/uploads/u1?_state=x", ok(b"", status=204)))
    client, _clock = make_client(t)
    assert client.blob_mount("dst", BLOB_DIGEST, "src") is False
    assert t.done()


def test_mount_first_201_is_the_whole_copy_and_the_source_is_never_opened():
    t = (FakeTransport()
         .expect("POST", BASE + "/v2/dst/blobs/uploads/?mount=", ok(b"", {"Location": "/v2/dst/blobs/" + BLOB_DIGEST},
                                                                    status=201)))
    client, _clock = make_client(t)
    opened = []
    outcome = client.blob_upload("dst", BLOB_DIGEST, None, len(BLOB), mount_from="src",
                                 open_stream=lambda: opened.append(1) or io.BytesIO(BLOB))
    assert outcome == "mounted" and opened == [] and t.done()
    assert parse_qs(urlsplit(t.requests[0].url).query) == {"mount": [BLOB_DIGEST], "from": ["src"]}


def test_mount_first_202_uploads_into_the_session_the_registry_opened():
    # distribution answers a mount of a blob that is not in the "from" repository with 202 and a
    # new upload session: the bytes go there, without a second POST
    t = (FakeTransport()
         .expect("POST", BASE + "/v2/dst/blobs/uploads/?mount=",
                 ok(b"", {"Location": "/v2/dst/blobs/uploads/u7?_state=s7"}, status=202))
         .expect("PUT", BASE + "/v2/dst/blobs/uploads/u7", ok(b"", status=201)))
    client, _clock = make_client(t)
    outcome = client.blob_upload("dst", BLOB_DIGEST, None, len(BLOB), mount_from="src",
                                 open_stream=lambda: io.BytesIO(BLOB))
    assert outcome == "uploaded" and t.done()
    assert parse_qs(urlsplit(t.requests[1].url).query) == {"_state": ["s7"], "digest": [BLOB_DIGEST]}
    assert t.requests[1].body == BLOB


@pytest.mark.parametrize("answer", [registry_error(404, "NAME_UNKNOWN", "repository name not known"),
                                    registry_error(405, "UNSUPPORTED", "mount not supported")])
def test_mount_first_on_a_registry_without_mounts_starts_a_plain_upload(answer):
    t = (FakeTransport()
         .expect("POST", BASE + "/v2/dst/blobs/uploads/?mount=", answer)
         .expect("POST", BASE + "/v2/dst/blobs/uploads/", ok(b"", {"Location": "/v2/dst/blobs/uploads/u1"}, status=202))
         .expect("PUT", BASE + "/v2/dst/blobs/uploads/u1", ok(b"", status=201)))
    client, _clock = make_client(t)
    assert client.blob_upload("dst", BLOB_DIGEST, io.BytesIO(BLOB), len(BLOB), mount_from="src") == "uploaded"
    assert t.done() and t.requests[2].body == BLOB


def test_mount_first_session_that_turns_out_stale_is_replaced_by_a_new_one():
    t = (FakeTransport()
         .expect("POST", BASE + "/v2/dst/blobs/uploads/?mount=",
                 ok(b"", {"Location": "/v2/dst/blobs/uploads/u7"}, status=202))
         .expect("PUT", BASE + "/v2/dst/blobs/uploads/u7", registry_error(404, "BLOB_UPLOAD_UNKNOWN", "gone"))
         .expect("POST", BASE + "/v2/dst/blobs/uploads/", ok(b"", {"Location": "/v2/dst/blobs/uploads/u8"}, status=202))
         .expect("PUT", BASE + "/v2/dst/blobs/uploads/u8", ok(b"", status=201)))
    client, _clock = make_client(t)
    assert client.blob_upload("dst", BLOB_DIGEST, None, len(BLOB), mount_from="src",
                              open_stream=lambda: io.BytesIO(BLOB)) == "uploaded"
    assert t.done() and t.requests[3].body == BLOB


def test_a_limiter_sees_every_request_with_its_status():
    class Recorder:
        def __init__(self):
            self.seen = []
            self.held = 0

        def acquire(self):
            self.held += 1

        def release(self, latency, status=None):
            self.held -= 1
            self.seen.append(status)

    t = (FakeTransport()
         .expect("HEAD", BASE + "/v2/app/manifests/1", registry_error(503, "UNAVAILABLE", "busy"))
         .expect("HEAD", BASE + "/v2/app/manifests/1", ok(b"", status=404)))
    client, _clock = make_client(t)
    client.limiter = Recorder()
    assert client.manifest_head("app", "1") is None
    assert client.limiter.seen == [503, 404] and client.limiter.held == 0


def test_a_request_that_fails_on_the_network_gives_its_place_back():
    # a real AdaptiveLimit of one: a slot lost to an exception would block the next request for ever
    t = (FakeTransport()
         .expect("GET", BASE + "/v2/", ok())
         .expect("GET", BASE + "/v2/", ConnectionRefusedError(111, "Connection refused"))
         .expect("GET", BASE + "/v2/", ok()))
    client, clock = make_client(t)
    client.limiter = AdaptiveLimit(1)
    client.ping()
    client.ping()       # refused once (retried), then answered
    assert len(clock.sleeps) == 1 and not t.script
    assert client.limiter.in_flight == 0


# --- retries -------------------------------------------------------------------------------------

def test_503_is_retried_with_growing_jittered_backoff():
    t = (FakeTransport()
         .expect("GET", BASE + "/v2/", registry_error(503, "UNAVAILABLE", "try later"))
         .expect("GET", BASE + "/v2/", FakeResponse(502))
         .expect("GET", BASE + "/v2/", ok()))
    client, clock = make_client(t)
    client.ping()
    assert len(clock.sleeps) == 2
    assert 0.25 <= clock.sleeps[0] <= 0.5
    assert 0.5 <= clock.sleeps[1] <= 1.0


def test_429_honours_retry_after_seconds():
    t = (FakeTransport()
         .expect("GET", BASE + "/v2/app/tags/list", registry_error(429, "TOOMANYREQUESTS", "slow down",
                                                                   {"Retry-After": "7"}))
         .expect("GET", BASE + "/v2/app/tags/list", json_response(200, {"tags": ["a"]})))
    client, clock = make_client(t)
    assert client.tags("app") == ["a"]
    assert len(clock.sleeps) == 1 and 7.0 <= clock.sleeps[0] <= 7.5    # never earlier; jittered by <= the backoff


def test_429_honours_retry_after_http_date():
    now = 1_700_000_000.0
    t = (FakeTransport()
         .expect("GET", BASE + "/v2/", FakeResponse(429, {"Retry-After": formatdate(now + 30, usegmt=True)}))
         .expect("GET", BASE + "/v2/", ok()))
    client, clock = make_client(t, clock=FakeClock(now))
    client.ping()
    assert len(clock.sleeps) == 1 and 30.0 <= clock.sleeps[0] <= 30.5


def test_retry_after_is_spread_so_that_threads_do_not_come_back_together():
    # Eight requests told to wait 1 s: not all at the same instant (in the order they were
    # answered, which a counting rate limiter meets the same way every time), never sooner.
    waits = []
    for _i in range(8):
        t = (FakeTransport().expect("GET", BASE + "/v2/", FakeResponse(429, {"Retry-After": "1"}))
             .expect("GET", BASE + "/v2/", ok()))
        client, clock = make_client(t)
        client.ping()
        waits.extend(clock.sleeps)
    assert len(waits) == 8 and all(1.0 <= wait <= 1.25 for wait in waits)
    assert len(set(waits)) > 1


def test_parse_retry_after():
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after(formatdate(100.0, usegmt=True), lambda: 160.0) == 0.0


def test_retries_are_bounded_in_count():
    t = FakeTransport()
    for _i in range(3):
        t.expect("GET", BASE + "/v2/", registry_error(503, "UNAVAILABLE", "down"))
    client, clock = make_client(t, retries=2)
    with pytest.raises(ServerError) as exc:
        client.ping()
    assert len(clock.sleeps) == 2 and t.done()
    assert "HTTP 503" in str(exc.value) and "reg.example.com" in str(exc.value)
    assert "UNAVAILABLE: down" in str(exc.value)


def test_retries_are_bounded_in_total_wait():
    t = FakeTransport()
    for _i in range(4):
        t.expect("GET", BASE + "/v2/", FakeResponse(500))
    client, clock = make_client(t, retries=10, backoff=4, max_retry_wait=10)
    with pytest.raises(ServerError):
        client.ping()
    # the waits (2-4 s, 4-8 s, 8-16 s jittered) are cut at the 10 s budget, then it gives up
    assert sum(clock.sleeps) == pytest.approx(10)
    assert len(t.requests) == len(clock.sleeps) + 1 <= 4


def test_retry_after_beyond_the_budget_gives_up_at_once():
    t = FakeTransport().expect("GET", BASE + "/v2/", FakeResponse(429, {"Retry-After": "3600"}))
    client, clock = make_client(t, max_retry_wait=60)
    with pytest.raises(ServerError) as exc:
        client.ping()
    assert clock.sleeps == []
    assert "429" in str(exc.value)


def test_connection_refused_on_first_contact_fails_at_once():
    t = FakeTransport().expect("GET", BASE + "/v2/", ConnectionRefusedError(111, "Connection refused"))
    client, clock = make_client(t, retries=2)
    with pytest.raises(Unreachable) as exc:
        client.ping()
    assert clock.sleeps == []
    assert "connection refused: the registry is unreachable at https://reg.example.com" in str(exc.value)
    assert "is it running" in str(exc.value)


def test_connection_refused_after_an_answer_is_retried_then_unreachable():
    # The registry answered once, then restarts: refusals are retried within the budget.
    t = FakeTransport().expect("GET", BASE + "/v2/", FakeResponse(200))
    for _i in range(3):
        t.expect("GET", BASE + "/v2/", ConnectionRefusedError(111, "Connection refused"))
    client, clock = make_client(t, retries=2)
    client.ping()
    with pytest.raises(Unreachable) as exc:
        client.ping()
    assert len(clock.sleeps) == 2
    assert "connection refused: the registry is unreachable at https://reg.example.com" in str(exc.value)


def test_connection_refused_during_a_restart_recovers():
    t = (FakeTransport()
         .expect("GET", BASE + "/v2/", FakeResponse(200))
         .expect("GET", BASE + "/v2/", ConnectionRefusedError(111, "Connection refused"))
         .expect("GET", BASE + "/v2/", FakeResponse(200)))
    client, clock = make_client(t, retries=2)
    client.ping()
    client.ping()
    assert len(clock.sleeps) == 1


def test_timeouts_are_retried():
    t = (FakeTransport()
         .expect("GET", BASE + "/v2/", socket.timeout("timed out"))
         .expect("GET", BASE + "/v2/", ok()))
    client, clock = make_client(t)
    client.ping()
    assert len(clock.sleeps) == 1


def test_dns_failure_is_not_retried():
    t = FakeTransport().expect("GET", BASE + "/v2/", socket.gaierror(-2, "Name or service not known"))
    client, clock = make_client(t)
    with pytest.raises(Unreachable) as exc:
        client.ping()
    assert clock.sleeps == []
    assert "cannot resolve reg.example.com: the registry is unreachable at https://reg.example.com" in str(exc.value)


def test_untrusted_certificate_is_a_tls_error_with_the_fix():
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "self-signed certificate in certificate chain"
    t = FakeTransport().expect("GET", BASE + "/v2/", error)
    client, clock = make_client(t)
    with pytest.raises(TLSError) as exc:
        client.ping()
    assert clock.sleeps == []
    assert "self-signed certificate" in str(exc.value)
    assert "give ca_cert or trust the CA (or validate_certs=false)" in str(exc.value)


def test_https_to_a_plain_http_registry_says_to_write_http():
    error = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    error.reason = "WRONG_VERSION_NUMBER"
    t = FakeTransport().expect("GET", BASE + "/v2/", error)
    client, _clock = make_client(t)
    with pytest.raises(TLSError) as exc:
        client.ping()
    assert "write it as http://reg.example.com" in str(exc.value)


def test_a_dropped_keepalive_connection_is_retried_at_once():
    t = (FakeTransport()
         .expect("GET", BASE + "/v2/", ConnectionDropped("closed"))
         .expect("GET", BASE + "/v2/", ok()))
    client, clock = make_client(t)
    client.ping()
    assert clock.sleeps == []


# --- pagination ----------------------------------------------------------------------------------

def test_tags_follow_link_pages():
    t = (FakeTransport()
         .expect("GET", BASE + "/v2/team/app/tags/list?n=2",
                 json_response(200, {"tags": ["a", "b"]},
                               {"Link": '</v2/team/app/tags/list?last=b&n=2>; rel="next"'}))
         .expect("GET", BASE + "/v2/team/app/tags/list?last=b&n=2",
                 json_response(200, {"tags": ["c", "d"]},
                               {"Link": '<%s/v2/team/app/tags/list?last=d&n=2>; rel="next"' % BASE}))
         .expect("GET", BASE + "/v2/team/app/tags/list?last=d&n=2", json_response(200, {"tags": ["e"]})))
    client, _clock = make_client(t, page_size=2)
    assert client.tags("team/app") == ["a", "b", "c", "d", "e"]
    assert t.done()


def test_catalog_follows_link_pages_and_asks_for_the_catalog_scope():
    t = (FakeTransport()
         .expect("GET", BASE + "/v2/_catalog?n=1000", challenge())
         .expect("GET", REALM, token())
         .expect("GET", BASE + "/v2/_catalog?n=1000",
                 json_response(200, {"repositories": ["a"]}, {"Link": '</v2/_catalog?last=a&n=1000>; rel="next"'}))
         .expect("GET", BASE + "/v2/_catalog?last=a&n=1000", json_response(200, {"repositories": ["b"]})))
    client, _clock = make_client(t)
    assert client.catalog() == ["a", "b"]
    assert parse_qs(urlsplit(t.requests[1].url).query)["scope"] == ["registry:catalog:*"]


def test_empty_tag_list_is_an_empty_list():
    t = FakeTransport().expect("GET", BASE + "/v2/app/tags/list", json_response(200, {"name": "app", "tags": None}))
    client, _clock = make_client(t)
    assert client.tags("app") == []


# --- error mapping -------------------------------------------------------------------------------

ERROR_CASES = [
    ("manifest_get", ("app", "1"), "GET", registry_error(404, "MANIFEST_UNKNOWN", "manifest unknown"),
     NotFound, ["reg.example.com/app:1 not found on reg.example.com: check the name and tag",
                "MANIFEST_UNKNOWN: manifest unknown"]),
    ("tags", ("nope",), "GET", registry_error(404, "NAME_UNKNOWN", "repository name not known to registry"),
     NotFound, ["reg.example.com/nope not found", "check the name and tag"]),
    ("manifest_get", ("app", "1"), "GET", registry_error(403, "DENIED", "requested access to the resource is denied"),
     Denied, ["reg.example.com/app:1", "the account lacks permission"]),
    ("manifest_get", ("app", "1"), "GET", FakeResponse(403, {}, b"forbidden"), Denied, ["lacks permission"]),
    ("manifest_delete", ("app", MANIFEST_DIGEST), "DELETE",
     registry_error(405, "UNSUPPORTED", "The operation is unsupported."), Unsupported,
     ["deletion is disabled on reg.example.com: set storage.delete.enabled: true "
      "(REGISTRY_STORAGE_DELETE_ENABLED=true)", "reg.example.com/app@" + MANIFEST_DIGEST]),
    ("manifest_get", ("app", "1"), "GET", FakeResponse(401, {}, b""), Unauthorized,
     ["bad or missing credentials for reg.example.com", "reg.example.com/app:1"]),
    ("manifest_put", ("app", "1", MANIFEST, OCI_MANIFEST), "PUT",
     registry_error(400, "MANIFEST_BLOB_UNKNOWN", "blob unknown to registry"), InvalidInput,
     ["refused to push reg.example.com/app:1 (HTTP 400 to PUT /v2/app/manifests/1)", "MANIFEST_BLOB_UNKNOWN"]),
    ("manifest_get", ("app", "1"), "GET", FakeResponse(501, {}, b""), ServerError,
     ["reg.example.com failed to read reg.example.com/app:1 (HTTP 501 to GET /v2/app/manifests/1)"]),
]


@pytest.mark.parametrize("method,args,verb,response,error,texts", ERROR_CASES)
def test_error_mapping(method, args, verb, response, error, texts):
    t = FakeTransport().expect(verb, BASE + "/v2/", response)
    client, _clock = make_client(t, Credentials("alice", PASSWORD))
    with pytest.raises(error) as exc:
        getattr(client, method)(*args)
    for text in texts:
        assert text in str(exc.value)
    assert exc.value.registry == "reg.example.com"
    assert_no_secret(exc.value)


def test_http_to_an_https_server_is_explained():
    t = FakeTransport().expect("GET", "http://reg.example.com:5000/v2/",
                               FakeResponse(400, {}, b"Client sent an HTTP request to an HTTPS server.\n"))
    client = RegistryClient(parse_registry("http://reg.example.com:5000"), transport=t)
    with pytest.raises(InvalidInput) as exc:
        client.ping()
    assert "write the registry as reg.example.com:5000" in str(exc.value)


def test_secrets_never_reach_messages_even_from_the_token_server():
    t = (FakeTransport()
         .expect("GET", BASE + "/v2/", challenge())
         .expect("GET", REALM, json_response(401, {"details": "bad password " + PASSWORD})))
    client, _clock = make_client(t, Credentials("alice", PASSWORD))
    with pytest.raises(Unauthorized) as exc:
        client.ping()
    assert_no_secret(exc.value)


# --- manifests -----------------------------------------------------------------------------------

def test_manifest_head_without_digest_header_computes_it_from_a_get():
    t = (FakeTransport()
         .expect("HEAD", BASE + "/v2/app/manifests/1", FakeResponse(200, {"Content-Type": OCI_MANIFEST}))
         .expect("GET", BASE + "/v2/app/manifests/1", manifest_ok(digest=None)))
    client, _clock = make_client(t)
    assert client.manifest_head("app", "1") == Descriptor(MANIFEST_DIGEST, OCI_MANIFEST, len(MANIFEST))
    for request in t.requests:
        accept = request.header("Accept")
        assert all(media_type in accept for media_type in MANIFEST_MEDIA_TYPES)


def test_manifest_head_missing_is_none():
    t = FakeTransport().expect("HEAD", BASE + "/v2/app/manifests/1", FakeResponse(404))
    client, _clock = make_client(t)
    assert client.manifest_head("app", "1") is None


def test_manifest_get_by_digest_verifies_the_content():
    other = sha256_digest(b"something else")
    t = FakeTransport().expect("GET", BASE + "/v2/app/manifests/" + other, manifest_ok(digest=other))
    client, _clock = make_client(t)
    with pytest.raises(DigestMismatch) as exc:
        client.manifest_get("app", other)
    assert MANIFEST_DIGEST in str(exc.value)


def test_manifest_get_by_tag_checks_the_registry_digest():
    t = FakeTransport().expect("GET", BASE + "/v2/app/manifests/1", manifest_ok(digest=sha256_digest(b"x")))
    client, _clock = make_client(t)
    with pytest.raises(DigestMismatch):
        client.manifest_get("app", "1")


def test_manifest_get_media_type_from_the_body_when_the_header_is_generic():
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode()
    t = FakeTransport().expect("GET", BASE + "/v2/app/manifests/1",
                               ok(index, {"Content-Type": "application/json"}))
    client, _clock = make_client(t)
    manifest = client.manifest_get("app", "1")
    assert manifest.media_type == OCI_INDEX
    assert manifest.digest == sha256_digest(index)
    assert manifest.json()["manifests"] == []


def test_manifest_put_sends_bytes_and_returns_the_digest():
    t = FakeTransport().expect("PUT", BASE + "/v2/app/manifests/v1",
                               ok(b"", {"Docker-Content-Digest": MANIFEST_DIGEST}, status=201))
    client, _clock = make_client(t)
    assert client.manifest_put("app", "v1", MANIFEST, DOCKER_MANIFEST) == MANIFEST_DIGEST
    assert t.requests[0].body == MANIFEST
    assert t.requests[0].header("Content-Type") == DOCKER_MANIFEST


def test_manifest_put_under_a_wrong_digest_is_refused_locally():
    client, _clock = make_client(FakeTransport())
    with pytest.raises(DigestMismatch):
        client.manifest_put("app", sha256_digest(b"other"), MANIFEST, OCI_MANIFEST)


# --- retries are counted -------------------------------------------------------------------------

def test_retries_are_counted_with_their_statuses_and_waits():
    stats = RetryStats()
    t = (FakeTransport()
         .expect("GET", BASE + "/v2/", registry_error(503, "UNAVAILABLE", "busy"))
         .expect("GET", BASE + "/v2/", registry_error(429, "TOOMANYREQUESTS", "slow down", {"Retry-After": "2"}))
         .expect("GET", BASE + "/v2/", socket.timeout("timed out"))
         .expect("GET", BASE + "/v2/", ok()))
    client, clock = make_client(t, retry_stats=stats)
    client.ping()
    assert stats.as_dict() == {"count": 3, "statuses": {"429": 1, "503": 1}, "network_errors": 1,
                               "waited": round(sum(clock.sleeps), 3)}
    assert any(2.0 <= sleep <= 2.5 for sleep in clock.sleeps)
    warning = stats.warning()
    assert "3 request(s) to reg.example.com were retried" in warning
    assert "HTTP 429 x1, HTTP 503 x1, connection errors x1" in warning


def test_a_dropped_keepalive_connection_is_not_a_retry():
    stats = RetryStats()
    t = (FakeTransport()
         .expect("GET", BASE + "/v2/", ConnectionDropped("closed"))
         .expect("GET", BASE + "/v2/", ok()))
    client, _clock = make_client(t, retry_stats=stats)
    client.ping()
    assert stats.count == 0 and stats.warning() is None


def test_token_requests_are_retried_by_the_same_loop_and_counted():
    stats = RetryStats()
    t = (FakeTransport()
         .expect("GET", BASE + "/v2/", challenge())
         .expect("GET", REALM, registry_error(503, "UNAVAILABLE", "busy"))
         .expect("GET", REALM, token())
         .expect("GET", BASE + "/v2/", ok()))
    client, _clock = make_client(t, Credentials("alice", PASSWORD), retry_stats=stats)
    client.ping()
    assert stats.as_dict()["statuses"] == {"503": 1}


def test_a_token_server_that_stays_down_is_reported_after_the_retries():
    t = FakeTransport().expect("GET", BASE + "/v2/", challenge())
    for _attempt in range(3):
        t.expect("GET", REALM, registry_error(503, "UNAVAILABLE", "busy"))
    client, _clock = make_client(t, Credentials("alice", PASSWORD), retries=2)
    with pytest.raises(ServerError, match="answered HTTP 503 to a token request"):
        client.ping()
    assert client.retry_stats.count == 2


def test_clients_share_one_stats_object():
    stats = RetryStats()
    for host in ("a.example", "b.example"):
        t = (FakeTransport()
             .expect("GET", "https://%s/v2/" % host, registry_error(502, "UNAVAILABLE", "bad gateway"))
             .expect("GET", "https://%s/v2/" % host, ok()))
        clock = FakeClock()
        RegistryClient(parse_registry(host), transport=t, sleep=clock.sleep, clock=clock,
                       retry_stats=stats).ping()
    assert stats.count == 2 and stats.registries == ["a.example", "b.example"]


# --- answers that are not what a registry sends --------------------------------------------------

def test_a_blob_redirect_loop_is_named():
    t = FakeTransport()
    t.expect("GET", BASE + "/v2/app/blobs/", FakeResponse(307, {"Location": "/v2/app/blobs/x"}))
    t.expect("GET", BASE + "/v2/app/blobs/x", FakeResponse(307, {"Location": "/v2/app/blobs/" + BLOB_DIGEST}))
    client, _clock = make_client(t)
    with pytest.raises(ServerError) as info:
        client.blob_get("app", BLOB_DIGEST)
    assert "answered GET /v2/app/blobs/%s with a redirect loop" % BLOB_DIGEST in str(info.value)


def test_too_many_redirects_are_a_loop_too():
    t = FakeTransport()
    for number in range(6):
        t.expect("GET", BASE + "/v2/app/blobs/", FakeResponse(302, {"Location": "/v2/app/blobs/r%d?X-Sig=SECRET" % number}))
    client, _clock = make_client(t)
    with pytest.raises(ServerError, match="redirect loop \\(6 redirects, the last to https://reg.example.com/v2/app/blobs/r5\\)"):
        client.blob_get("app", BLOB_DIGEST)


def test_a_manifest_request_that_is_redirected_says_so():
    t = FakeTransport().expect("GET", BASE + "/v2/app/manifests/1",
                               FakeResponse(302, {"Location": "https://sso.example.com/login?next=x"}))
    client, _clock = make_client(t)
    with pytest.raises(ServerError) as info:
        client.manifest_get("app", "1")
    assert "answered GET /v2/app/manifests/1 with a redirect (HTTP 302 to https://sso.example.com/login)" \
        in str(info.value)
    assert "next=x" not in str(info.value)


def test_a_head_that_answers_html_falls_back_to_the_get_which_says_what_is_wrong():
    page = b"<html><body>Sign in</body></html>"
    t = (FakeTransport()
         .expect("HEAD", BASE + "/v2/app/manifests/1", FakeResponse(200, {"Content-Type": "text/html",
                                                                          "Content-Length": str(len(page))}))
         .expect("GET", BASE + "/v2/app/manifests/1", ok(page, {"Content-Type": "text/html"})))
    client, _clock = make_client(t)
    with pytest.raises(ServerError) as info:
        client.manifest_head("app", "1")
    assert "reg.example.com answered GET /v2/app/manifests/1 with an HTML page" in str(info.value)


def test_a_head_with_a_generic_type_takes_the_type_from_the_get():
    index = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    t = (FakeTransport()
         .expect("HEAD", BASE + "/v2/app/manifests/1", FakeResponse(200, {
             "Content-Type": "application/json", "Docker-Content-Digest": sha256_digest(index),
             "Content-Length": str(len(index))}))
         .expect("GET", BASE + "/v2/app/manifests/1", ok(index, {"Content-Type": "application/json"})))
    client, _clock = make_client(t)
    assert client.manifest_head("app", "1") == Descriptor(sha256_digest(index), OCI_INDEX, len(index))


def test_a_manifest_by_digest_with_another_docker_content_digest_is_refused():
    t = FakeTransport().expect("GET", BASE + "/v2/app/manifests/" + MANIFEST_DIGEST,
                               manifest_ok(digest=sha256_digest(b"other")))
    client, _clock = make_client(t)
    with pytest.raises(DigestMismatch, match="but its Docker-Content-Digest says"):
        client.manifest_get("app", MANIFEST_DIGEST)


def test_a_blob_whose_length_contradicts_the_manifest_is_refused():
    t = FakeTransport().expect("GET", BASE + "/v2/app/blobs/", ok(BLOB))
    client, _clock = make_client(t)
    with pytest.raises(DigestMismatch, match="with %d bytes, but the manifest says 10" % len(BLOB)):
        client.blob_open("app", BLOB_DIGEST, 10)
    assert t.responses[0].closed


@pytest.mark.parametrize("body, text", [
    (b"<html>Sign in</html>", "a body that is not JSON (Content-Type text/html): is a proxy"),
    (b'["a", "b"]', "JSON that is not an object (a list)"),
    (b'{"tags": "latest"}', "'tags' that is not a list of names"),
    (b'{"tags": [1, 2]}', "'tags' that is not a list of names"),
])
def test_a_tag_list_that_is_not_one_is_a_server_error(body, text):
    t = FakeTransport().expect("GET", BASE + "/v2/app/tags/list", ok(body, {"Content-Type": "text/html"}
                                                                     if body.startswith(b"<") else None))
    client, _clock = make_client(t)
    with pytest.raises(ServerError) as info:
        client.tags("app")
    assert "reg.example.com answered GET /v2/app/tags/list with " + text in str(info.value)


def test_a_null_tag_list_is_empty():
    t = FakeTransport().expect("GET", BASE + "/v2/app/tags/list", ok(b'{"name": "app", "tags": null}'))
    client, _clock = make_client(t)
    assert client.tags("app") == []


def test_an_html_error_page_is_called_one():
    t = FakeTransport().expect("GET", BASE + "/v2/app/manifests/1",
                               FakeResponse(502, {"Content-Type": "text/html"}, b"<html>Bad Gateway</html>"))
    client, _clock = make_client(t, retries=0)
    with pytest.raises(ServerError, match="the answer is an HTML page, not the registry's JSON"):
        client.manifest_get("app", "1")


# --- blobs ---------------------------------------------------------------------------------------

def test_blob_head():
    t = (FakeTransport()
         .expect("HEAD", BASE + "/v2/app/blobs/" + BLOB_DIGEST, FakeResponse(200, {"Content-Length": "12000"}))
         .expect("HEAD", BASE + "/v2/app/blobs/" + BLOB_DIGEST, FakeResponse(404)))
    client, _clock = make_client(t)
    assert client.blob_head("app", BLOB_DIGEST) == 12000
    assert client.blob_head("app", BLOB_DIGEST) is None


def test_blob_redirect_to_storage_drops_authorization():
    t = (FakeTransport()
         .expect("GET", BASE + "/v2/app/blobs/", challenge('Basic realm="r"'))
         .expect("GET", BASE + "/v2/app/blobs/", FakeResponse(307, {"Location": "/v2/app/blobs/local"}))
         .expect("GET", BASE + "/v2/app/blobs/local",
                 FakeResponse(302, {"Location": "https://storage.example.com/b?sig=1"}))
         .expect("GET", "https://storage.example.com/b?sig=1", ok(BLOB)))
    client, _clock = make_client(t, Credentials("alice", PASSWORD))
    assert client.blob_get("app", BLOB_DIGEST) == BLOB
    auth = [r.header("Authorization") for r in t.requests]
    assert auth[1] is not None and auth[2] == auth[1]  # same host: kept
    assert auth[3] is None  # another host: dropped


def test_blob_stream_verifies_digest_and_length():
    t = (FakeTransport()
         .expect("GET", BASE + "/v2/app/blobs/", ok(b"tampered"))
         .expect("GET", BASE + "/v2/app/blobs/",
                 FakeResponse(200, {"Content-Length": str(len(BLOB))}, BLOB, cut_after=100)))
    client, _clock = make_client(t)
    with pytest.raises(DigestMismatch) as exc:
        client.blob_get("app", BLOB_DIGEST)
    assert "reg.example.com/app@" + BLOB_DIGEST in str(exc.value)
    stream = client.blob_open("app", BLOB_DIGEST)
    assert stream.read(100) == BLOB[:100]
    with pytest.raises(Unreachable) as exc:
        stream.read(100)
    assert "broke off after 100 bytes" in str(exc.value)
    assert t.responses[-1].closed


def upload_script(t, location="/v2/app/blobs/uploads/u1?_state=abc", put=None):
    t.expect("POST", BASE + "/v2/app/blobs/uploads/", ok(b"", {"Location": location}, status=202))
    t.expect("PUT", BASE + "/v2/app/blobs/uploads/u1", put or ok(b"", status=201))
    return t


def test_blob_upload_streams_the_body_with_its_length():
    t = upload_script(FakeTransport())
    client, _clock = make_client(t)
    client.blob_upload("app", BLOB_DIGEST, io.BytesIO(BLOB), len(BLOB))
    put = t.requests[1]
    query = parse_qs(urlsplit(put.url).query)
    assert query == {"_state": ["abc"], "digest": [BLOB_DIGEST]}
    assert put.body == BLOB
    assert put.header("Content-Length") == str(len(BLOB))
    assert put.header("Content-Type") == "application/octet-stream"


def test_blob_upload_after_503_resends_to_the_same_session_from_a_reopened_source():
    t = FakeTransport()
    upload_script(t, put=registry_error(503, "UNAVAILABLE", "busy"))
    t.expect("PUT", BASE + "/v2/app/blobs/uploads/u1", ok(b"", status=201))
    opened = []

    def open_stream():
        opened.append(io.BytesIO(BLOB))
        return opened[-1]

    client, clock = make_client(t)
    client.blob_upload("app", BLOB_DIGEST, None, len(BLOB), open_stream=open_stream)
    assert len(opened) == 2 and all(s.closed for s in opened)
    assert [r.method for r in t.requests] == ["POST", "PUT", "PUT"]
    assert t.requests[1].url == t.requests[2].url
    assert t.requests[2].body == BLOB
    assert len(clock.sleeps) == 1


def test_blob_upload_after_a_500_starts_a_new_session():
    t = FakeTransport()
    upload_script(t, put=registry_error(500, "UNKNOWN", "storage write failed"))
    upload_script(t, location=BASE + "/v2/app/blobs/uploads/u1-second")
    client, clock = make_client(t)
    client.blob_upload("app", BLOB_DIGEST, None, len(BLOB), open_stream=lambda: io.BytesIO(BLOB))
    assert [r.method for r in t.requests] == ["POST", "PUT", "POST", "PUT"]
    assert "u1-second" in t.requests[3].url and t.requests[3].body == BLOB
    assert len(clock.sleeps) == 1


def test_a_reused_session_that_is_gone_is_replaced():
    t = FakeTransport()
    upload_script(t, put=FakeResponse(429, {"Retry-After": "2"}))
    t.expect("PUT", BASE + "/v2/app/blobs/uploads/u1",
             registry_error(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry"))
    upload_script(t)
    client, clock = make_client(t)
    client.blob_upload("app", BLOB_DIGEST, None, len(BLOB), open_stream=lambda: io.BytesIO(BLOB))
    assert [r.method for r in t.requests] == ["POST", "PUT", "PUT", "POST", "PUT"]
    assert 2.0 <= clock.sleeps[0] <= 2.5
    assert t.done()


def test_blob_upload_rewinds_a_seekable_stream():
    t = FakeTransport()
    upload_script(t, put=ConnectionResetError(104, "reset"))
    upload_script(t)
    source = io.BytesIO(b"junk" + BLOB)
    source.seek(4)
    client, _clock = make_client(t)
    client.blob_upload("app", BLOB_DIGEST, source, len(BLOB))
    assert t.requests[3].body == BLOB
    assert not source.closed  # a stream the caller gave is the caller's to close


class BrokenSource(io.RawIOBase):
    """A source whose download breaks off after ``good`` bytes."""

    def __init__(self, data, good):
        super().__init__()
        self.data = io.BytesIO(data)
        self.good = good

    def readable(self):
        return True

    def read(self, amt=-1):
        if self.data.tell() >= self.good:
            raise http.client.IncompleteRead(b"", 10)
        return self.data.read(min(amt, self.good - self.data.tell()))


def test_a_cut_source_restarts_the_upload_from_a_fresh_stream():
    t = FakeTransport()
    t.expect("POST", BASE + "/v2/app/blobs/uploads/", ok(b"", {"Location": "/v2/app/blobs/uploads/u1"}, status=202))
    t.expect("PUT", BASE + "/v2/app/blobs/uploads/u1", ok(b"", status=201))  # never answered: the body breaks
    upload_script(t)
    sources = [BrokenSource(BLOB, 500), io.BytesIO(BLOB)]
    client, _clock = make_client(t)
    client.blob_upload("app", BLOB_DIGEST, None, len(BLOB), open_stream=lambda: sources.pop(0))
    assert t.requests[-1].body == BLOB
    assert not sources


def test_a_failed_upload_from_a_pipe_cannot_be_retried():
    t = upload_script(FakeTransport(), put=FakeResponse(503))

    class Pipe(io.RawIOBase):
        def readable(self):
            return True

        def seekable(self):
            return False

        def read(self, amt=-1):
            return b"x" * 10 if amt else b""

    client, _clock = make_client(t)
    with pytest.raises(Unreachable) as exc:
        client.blob_upload("app", sha256_digest(b"x" * 10), Pipe(), 10)
    assert "cannot be rewound" in str(exc.value)


def test_a_short_source_is_an_error_not_a_hang():
    t = FakeTransport()
    for _i in range(2):
        t.expect("POST", BASE + "/v2/app/blobs/uploads/",
                 ok(b"", {"Location": "/v2/app/blobs/uploads/u1"}, status=202))
        t.expect("PUT", BASE + "/v2/app/blobs/uploads/u1", ok(b"", status=201))
    client, _clock = make_client(t, retries=1)
    with pytest.raises(Unreachable) as exc:
        client.blob_upload("app", BLOB_DIGEST, None, len(BLOB) + 5, open_stream=lambda: io.BytesIO(BLOB))
    assert "ended 5 bytes early" in str(exc.value)


def test_digest_invalid_on_upload_is_a_digest_mismatch():
    t = upload_script(FakeTransport(), put=registry_error(400, "DIGEST_INVALID", "provided digest did not match"))
    client, _clock = make_client(t)
    with pytest.raises(DigestMismatch) as exc:
        client.blob_upload("app", BLOB_DIGEST, io.BytesIO(BLOB), len(BLOB))
    assert "does not match its digest" in str(exc.value)


def _plain_client(url, **kwargs):
    clock = FakeClock()
    return RegistryClient(parse_registry(url), sleep=clock.sleep, clock=clock, **kwargs), clock


# --- a real distribution registry ----------------------------------------------------------------

# Function-scoped on purpose: see registry_process.

@pytest.fixture
def real_registry(tmp_path_factory):
    with running_registry(tmp_path_factory.mktemp("registry"), delete=True) as url:
        yield url


@pytest.fixture
def basic_registry(tmp_path_factory):
    directory = tmp_path_factory.mktemp("basic")
    with running_registry(directory, auth=htpasswd_auth(directory, {"alice": PASSWORD}), delete=True) as url:
        yield url


def _push_image(client, repository, tag, layer):
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [sha256_digest(layer)]}}).encode()
    for blob in (layer, config):
        if client.blob_head(repository, sha256_digest(blob)) is None:
            client.blob_upload(repository, sha256_digest(blob), io.BytesIO(blob), len(blob))
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256_digest(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256_digest(layer),
                    "size": len(layer)}]}, indent=1).encode()
    return manifest, client.manifest_put(repository, tag, manifest, OCI_MANIFEST)


class _CountingTransport(HttpTransport):
    def __init__(self):
        super().__init__(None)
        self.urls = []

    def request(self, method, url, headers, body, timeout):
        self.urls.append(url)
        return super().request(method, url, headers, body, timeout)


def test_real_registry_round_trip(real_registry):
    transport = _CountingTransport()
    client, _clock = _plain_client(real_registry, page_size=4, transport=transport)
    client.ping()
    layer = os.urandom(2 * 1024 * 1024 + 1)
    manifest, digest = _push_image(client, "team/app", "v1", layer)
    assert digest == sha256_digest(manifest)
    assert client.manifest_head("team/app", "v1") == Descriptor(digest, OCI_MANIFEST, len(manifest))
    fetched = client.manifest_get("team/app", digest)
    assert fetched.raw == manifest  # byte-exact, so the digest is preserved
    assert client.blob_head("team/app", sha256_digest(layer)) == len(layer)
    assert client.blob_get("team/app", sha256_digest(layer)) == layer
    # mount into another repository, then tag it there by digest
    assert client.blob_mount("team/copy", sha256_digest(layer), "team/app") is True
    assert client.blob_mount("team/copy", sha256_digest(b"never pushed"), "team/app") is False
    # mount-first: distribution mounts what "from" has (201) and opens a session for what it has not (202)
    other = os.urandom(4096)
    assert client.blob_upload("team/copy", sha256_digest(layer), None, len(layer), mount_from="team/app",
                              open_stream=lambda: pytest.fail("a mounted blob is not read")) == "mounted"
    assert client.blob_upload("team/copy", sha256_digest(other), io.BytesIO(other), len(other),
                              mount_from="team/app") == "uploaded"
    assert client.blob_get("team/copy", sha256_digest(other)) == other
    for i in range(15):
        client.manifest_put("team/app", "t%02d" % i, manifest, OCI_MANIFEST)
    # distribution 2.8 ignores n for tags (it pages only the catalog); the client follows Link either way
    assert sorted(client.tags("team/app")) == sorted(["v1"] + ["t%02d" % i for i in range(15)])
    for i in range(9):
        client.blob_mount("team/r%d" % i, sha256_digest(layer), "team/app")
        _push_image(client, "team/r%d" % i, "1", layer)
    catalog = client.catalog()
    assert sorted(catalog) == sorted(["team/app", "team/copy"] + ["team/r%d" % i for i in range(9)])
    assert len([url for url in transport.urls if "/_catalog" in url]) >= 3  # 11 repositories, 4 a page
    client.manifest_delete("team/app", digest)
    assert client.manifest_head("team/app", "v1") is None
    with pytest.raises(NotFound) as exc:
        client.manifest_get("team/app", "v1")
    assert "MANIFEST_UNKNOWN" in str(exc.value)
    with pytest.raises(NotFound):
        client.tags("nobody/here")


def test_real_registry_basic_auth(basic_registry):
    client, _clock = _plain_client(basic_registry, credentials=Credentials("alice", PASSWORD))
    client.ping()
    _manifest, digest = _push_image(client, "app", "1", b"small layer")
    assert client.manifest_head("app", "1").digest == digest
    wrong, _clock = _plain_client(basic_registry, credentials=Credentials("alice", "wrong-SECRET"))
    with pytest.raises(Unauthorized) as exc:
        wrong.ping()
    assert "SECRET" not in str(exc.value)
    anonymous, _clock = _plain_client(basic_registry)
    with pytest.raises(Unauthorized):
        anonymous.manifest_head("app", "1")


def test_registry_error_base_is_caught_by_modules():
    assert issubclass(Unreachable, RegistryError) and issubclass(TLSError, RegistryError)


def _make_pki(directory):
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    import datetime
    import ipaddress

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common_name):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def write(stem, key, cert):
        (directory / (stem + ".key")).write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        (directory / (stem + ".crt")).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return str(directory / (stem + ".crt")), str(directory / (stem + ".key"))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("dockyard test CA")).issuer_name(name("dockyard test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    paths = {"ca": write("ca", ca_key, ca)[0]}
    for stem, usage, sans in (("server", ExtendedKeyUsageOID.SERVER_AUTH,
                               [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                              ("client", ExtendedKeyUsageOID.CLIENT_AUTH, [x509.DNSName("client")])):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(stem)).issuer_name(ca.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
                .sign(ca_key, hashes.SHA256()))
        paths[stem] = write(stem, key, cert)
    return paths


@pytest.fixture
def tls_registry(tmp_path_factory):
    pki = _make_pki(tmp_path_factory.mktemp("pki"))
    tls = {"certificate": pki["server"][0], "key": pki["server"][1], "clientcas": [pki["ca"]]}
    with running_registry(tmp_path_factory.mktemp("tls"), tls=tls, delete=True) as url:
        yield url.replace("http://", ""), pki


def test_real_registry_tls_with_private_ca_and_client_certificate(tls_registry):
    address, pki = tls_registry
    registry = parse_registry(address)
    with pytest.raises(TLSError) as exc:
        RegistryClient(registry, retries=0).ping()
    assert "is not trusted" in str(exc.value) and "give ca_cert or trust the CA" in str(exc.value)
    # the CA is trusted, but the registry wants a client certificate
    with pytest.raises(TLSError) as exc:
        RegistryClient(registry, ca_cert=pki["ca"], retries=0).ping()
    assert "give client_cert and client_key" in str(exc.value)
    client = RegistryClient(registry, ca_cert=pki["ca"], client_cert=pki["client"][0],
                            client_key=pki["client"][1], retries=0)
    client.ping()
    _manifest, digest = _push_image(client, "tls/app", "1", b"over TLS")
    assert client.manifest_head("tls/app", "1").digest == digest
    insecure = RegistryClient(registry, validate_certs=False, client_cert=pki["client"][0],
                              client_key=pki["client"][1], retries=0)
    assert insecure.manifest_head("tls/app", "1").digest == digest
    # plain HTTP against the TLS port
    with pytest.raises(InvalidInput) as exc:
        RegistryClient(parse_registry("http://" + address), retries=0).ping()
    assert "write the registry as %s" % address in str(exc.value)


def test_real_https_against_a_plain_registry_says_to_write_http(real_registry):
    address = real_registry.replace("http://", "")
    with pytest.raises(TLSError) as exc:
        RegistryClient(parse_registry(address), retries=0).ping()
    assert "write it as http://%s" % address in str(exc.value)


class _ConnectProxy(threading.Thread):
    """A minimal HTTPS proxy: answers CONNECT and pipes bytes both ways; records the targets."""

    def __init__(self):
        super().__init__(daemon=True)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.targets = []

    def run(self):
        while True:
            try:
                client, _addr = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                client.close()
                return
            head += chunk
        method, target = head.split(b" ")[:2]
        self.targets.append((method.decode(), target.decode()))
        host, port = target.decode().rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

        def pipe(src, dst):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for sock in (src, dst):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)

    def stop(self):
        self.listener.close()


def test_https_goes_through_the_proxy_from_the_environment(tls_registry, monkeypatch):
    address, pki = tls_registry
    proxy = _ConnectProxy()
    proxy.start()
    try:
        for name in ("no_proxy", "NO_PROXY", "HTTPS_PROXY", "HTTP_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("https_proxy", "http://127.0.0.1:%d" % proxy.port)
        client = RegistryClient(parse_registry(address), ca_cert=pki["ca"], client_cert=pki["client"][0],
                                client_key=pki["client"][1], retries=0)
        client.ping()
        client.ping()
        # one tunnel, kept alive; TLS inside it still verifies the registry's name
        assert proxy.targets == [("CONNECT", address)]
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        direct = RegistryClient(parse_registry(address), ca_cert=pki["ca"], client_cert=pki["client"][0],
                                client_key=pki["client"][1], retries=0)
        direct.ping()
        assert len(proxy.targets) == 1
    finally:
        proxy.stop()


class _TokenHandler(http.server.BaseHTTPRequestHandler):
    """A docker token server: RS256 JWTs with the signing certificate in ``x5c``.

    alice may do everything, reader may only pull, anonymous callers get a token without access.
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    users = {"alice": ("pull", "push", "delete", "*"), "reader": ("pull",)}
    key = None
    cert_der = b""
    requests = []  # type: list

    def log_message(self, *args):
        pass

    def _send(self, status, data):
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        query = parse_qs(urlsplit(self.path).query)
        user = None
        header = self.headers.get("Authorization") or ""
        if header.startswith("Basic "):
            name, _sep, password = base64.b64decode(header[6:]).decode().partition(":")
            if name not in self.users or password != PASSWORD:
                self._send(401, {"details": "incorrect username or password"})
                return
            user = name
        scopes = query.get("scope", [])
        type(self).requests.append((user, scopes))
        allowed = self.users.get(user, ())
        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":")
            granted = [a for a in actions.split(",") if a in allowed]
            if granted:
                access.append({"type": kind, "name": name, "actions": granted})

        def b64(data):
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        now = int(time.time())
        head = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self.cert_der).decode()]}
        claims = {"iss": "dockyard-test", "sub": user or "", "aud": "test-registry", "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": os.urandom(8).hex(), "access": access}
        signing_input = "%s.%s" % (b64(json.dumps(head).encode()), b64(json.dumps(claims).encode()))
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        self._send(200, {"token": "%s.%s" % (signing_input, b64(signature)), "expires_in": 300})


@pytest.fixture
def token_registry(tmp_path_factory):
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    import datetime

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockyard token signer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    bundle = tmp_path_factory.mktemp("token") / "signer.crt"
    bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _TokenHandler.key = key
    _TokenHandler.cert_der = cert.public_bytes(serialization.Encoding.DER)
    _TokenHandler.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TokenHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    realm = "http://127.0.0.1:%d/token" % server.server_address[1]
    auth = {"token": {"realm": realm, "service": "test-registry", "issuer": "dockyard-test",
                      "rootcertbundle": str(bundle)}}
    try:
        with running_registry(tmp_path_factory.mktemp("registry"), auth=auth, delete=True) as url:
            yield url
    finally:
        server.shutdown()
        server.server_close()


def test_real_registry_bearer_tokens(token_registry):
    alice, _clock = _plain_client(token_registry, credentials=Credentials("alice", PASSWORD))
    alice.ping()
    _manifest, digest = _push_image(alice, "team/app", "1", b"token layer")
    # a cross-repository mount asks for both repositories in one token
    assert alice.blob_mount("team/copy", sha256_digest(b"token layer"), "team/app") is True
    assert (["repository:team/copy:pull,push", "repository:team/app:pull"]
            in [scopes for _user, scopes in _TokenHandler.requests])
    assert "team/app" in alice.catalog()
    fetched_before = alice.auth.token_requests
    for _i in range(5):
        # covered by the mount's token (it holds repository:team/app:pull): nothing fetched
        assert alice.manifest_head("team/app", "1").digest == digest
        # a scope no token covers yet: fetched once, then reused
        assert alice.manifest_head("team/copy", "1") is None
    assert alice.auth.token_requests == fetched_before + 1

    reader, _clock = _plain_client(token_registry, credentials=Credentials("reader", PASSWORD))
    assert reader.manifest_head("team/app", "1").digest == digest
    with pytest.raises(Denied) as exc:
        reader.manifest_put("team/app", "2", _manifest, OCI_MANIFEST)
    assert "lacks permission" in str(exc.value)

    anonymous, _clock = _plain_client(token_registry)
    with pytest.raises(Unauthorized) as exc:
        anonymous.manifest_head("team/app", "1")
    assert "bad or missing credentials" in str(exc.value)

    wrong, _clock = _plain_client(token_registry, credentials=Credentials("alice", "wrong-SECRET"))
    with pytest.raises(Unauthorized) as exc:
        wrong.ping()
    assert "SECRET" not in str(exc.value)

    # deletion asks for the "delete" action, which distribution checks for DELETE requests
    alice.manifest_delete("team/app", digest)
    assert alice.manifest_head("team/app", "1") is None


def test_one_client_shared_by_worker_threads(token_registry):
    client, _clock = _plain_client(token_registry, credentials=Credentials("alice", PASSWORD))
    errors = []
    blobs = {"workers/r%d" % i: [os.urandom(300_000 + j) for j in range(3)] for i in range(4)}

    def worker(repository):
        try:
            for blob in blobs[repository]:
                client.blob_upload(repository, sha256_digest(blob), open_stream=lambda b=blob: io.BytesIO(b),
                                   size=len(blob))
                assert client.blob_head(repository, sha256_digest(blob)) == len(blob)
        except Exception as exc:  # collected and reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(repository,)) for repository in blobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for repository, contents in blobs.items():
        for blob in contents:
            assert client.blob_get(repository, sha256_digest(blob)) == blob
