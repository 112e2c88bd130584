# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pure parts of _backends: SigV4 signing, the S3 URL, RESP parsing, challenges.

The checks themselves run against real moto, Redis and registries in the
role_registry_cluster integration target.
"""

from __future__ import annotations

import datetime
import io

import pytest

from ansible_collections.dockyard.registry.plugins.module_utils import _backends
from ansible_collections.dockyard.registry.plugins.module_utils._auth import parse_challenge
from ansible_collections.dockyard.registry.plugins.module_utils._errors import RegistryError

WHEN = datetime.datetime(2013, 5, 24, 0, 0, 0)
EXAMPLE = _backends.S3Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "", "test")


def test_sign_v4_matches_the_published_s3_example():
    # AWS S3 API reference, "Signature Calculations for the Authorization Header", example
    # "GET Bucket (List Objects)": GET /?max-keys=2&prefix=J on examplebucket, 20130524.
    headers = _backends.sign_v4("GET", "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J",
                                "us-east-1", "s3", EXAMPLE, WHEN)
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
        "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    assert headers["x-amz-date"] == "20130524T000000Z"
    assert headers["x-amz-content-sha256"] == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert "host" not in headers


def test_sign_v4_agrees_with_botocore_on_the_url_the_check_sends(monkeypatch):
    botocore_auth = pytest.importorskip("botocore.auth")
    credentials_mod = pytest.importorskip("botocore.credentials")
    awsrequest = pytest.importorskip("botocore.awsrequest")
    url = _backends.s3_request_url("my-bucket", "eu-central-1", "http://172.17.0.1:5990", False, "dir with space/")
    creds = _backends.S3Credentials("AKIDEXAMPLE", "secret/key+x", "session-token", "test")
    when = datetime.datetime(2024, 2, 29, 12, 34, 56)
    ours = _backends.sign_v4("GET", url, "eu-central-1", "s3", creds, when)

    request = awsrequest.AWSRequest(method="GET", url=url, headers={"x-amz-date": "20240229T123456Z"})
    signer = botocore_auth.S3SigV4Auth(credentials_mod.Credentials("AKIDEXAMPLE", "secret/key+x", "session-token"),
                                       "s3", "eu-central-1")
    monkeypatch.setattr(botocore_auth, "get_current_datetime", lambda: when)
    signer.add_auth(request)
    theirs = request.headers["Authorization"]
    assert ours["authorization"] == theirs
    assert ours["x-amz-security-token"] == "session-token"


def test_s3_request_url_styles():
    assert _backends.s3_request_url("b", "us-east-1", "http://h:1", False, "cluster/") == \
        "http://h:1/b/?list-type=2&max-keys=1&prefix=cluster%2F"
    assert _backends.s3_request_url("b", "eu-west-1", "", True, "") == \
        "https://b.s3.eu-west-1.amazonaws.com/?list-type=2&max-keys=1&prefix="
    assert _backends.s3_request_url("a.b", "eu-west-1", "", True, "") == \
        "https://s3.eu-west-1.amazonaws.com/a.b/?list-type=2&max-keys=1&prefix="


@pytest.mark.parametrize("data, expected", [
    (b"+OK\r\n", "OK"),
    (b"-WRONGPASS invalid username-password pair\r\n", ("-", "WRONGPASS invalid username-password pair")),
    (b":42\r\n", 42),
    (b"$5\r\nhello\r\n", b"hello"),
    (b"$-1\r\n", None),
    (b"*2\r\n+a\r\n:1\r\n", ["a", 1]),
])
def test_resp_replies(data, expected):
    assert _backends._resp_read(io.BytesIO(data)) == expected  # pylint: disable=protected-access


def test_resp_refuses_what_is_not_redis():
    with pytest.raises(RegistryError, match="does not speak the Redis protocol"):
        _backends._resp_read(io.BytesIO(b"HTTP/1.1 400 Bad Request\r\n"))  # pylint: disable=protected-access
    with pytest.raises(RegistryError, match="closed the connection"):
        _backends._resp_read(io.BytesIO(b"+OK"))  # pylint: disable=protected-access


def test_resp_command_encoding():
    assert _backends._resp_command("AUTH", "pä") == b"*2\r\n$4\r\nAUTH\r\n$3\r\np\xc3\xa4\r\n"  # pylint: disable=protected-access


def test_the_upstream_challenge_is_read_by_auth():
    # one challenge parser in the collection: _auth's, which the client uses too
    assert _backends.parse_challenge is parse_challenge


def test_a_basic_upstream_is_refused_naming_the_limitation(monkeypatch):
    def answer(url, method="GET", headers=None, context=None, timeout=10, what="", use_proxies=True):
        assert url == "https://up.example:5000/v2/"
        return 401, {"www-authenticate": 'Basic realm="x"'}.get, b""
    monkeypatch.setattr(_backends, "_request", answer)
    with pytest.raises(RegistryError, match="Basic .* 2.8.2 .*Bearer"):
        _backends.check_upstream("https://up.example:5000/")
