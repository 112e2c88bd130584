# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The pure parts of registry_diagnose: near misses, certificate names, ECR token age, the
reference check, the summary and fail_on. The network checks run against real servers in the
integration target module_registry_diagnose."""

from __future__ import annotations

import base64
import json
import socket

import pytest

from ansible_collections.dockyard.registry.plugins.module_utils._diagnose import (
    Diagnosis,
    _redact_url,
    closest,
    ecr_token_expiry,
    failing,
    name_matches,
    summary_lines,
)


@pytest.mark.parametrize("word, candidates, expected", [
    ("v1.0", ["v1.0.0", "v2.0.0", "latest"], ["v1.0.0", "v2.0.0"]),  # the extension first
    ("v1.0.0", ["v1.0", "1.0.0"], ["v1.0", "1.0.0"]),
    ("team/ap", ["team/app", "other/thing"], ["team/app"]),
    ("alpine", ["library/alpine", "team/app"], ["library/alpine"]),
    ("nothing-like-it", ["abc"], []),
])
def test_closest(word, candidates, expected):
    assert closest(word, candidates) == expected


@pytest.mark.parametrize("host, names, expected", [
    ("localhost", ["localhost", "127.0.0.1"], True),
    ("127.0.0.1", ["localhost", "127.0.0.1"], True),
    ("registry.example.com", ["*.example.com"], True),
    ("a.b.example.com", ["*.example.com"], False),
    ("localhost", ["other.example.com"], False),
    ("[::1]", ["::1"], True),
])
def test_name_matches(host, names, expected):
    assert name_matches(host, names) is expected


def test_ecr_token_expiry():
    token = base64.b64encode(json.dumps({"payload": "x", "datakey": "y", "version": "2", "type": "DATA_KEY",
                                         "expiration": 1700000000}).encode()).decode().rstrip("=")
    assert ecr_token_expiry(token) == 1700000000
    assert ecr_token_expiry("not a token") is None
    assert ecr_token_expiry(None) is None


def test_redact_url_drops_user_info():
    assert _redact_url("http://user:s3cret@proxy.example:3128") == "http://***@proxy.example:3128"
    assert _redact_url("proxy.example:8080") == "http://proxy.example:8080"


def test_summary_and_fail_on():
    checks = [{"name": "resolve", "status": "ok", "detail": "fine", "fix": None},
              {"name": "clock", "status": "warn", "detail": "90s", "fix": "sync"},
              {"name": "tls", "status": "fail", "detail": "expired", "fix": "renew"}]
    lines = summary_lines(checks)
    assert lines[0].startswith("OK    resolve")
    assert lines[2].strip() == "fix: sync"
    assert lines[-1].strip() == "fix: renew"
    assert failing(checks, "never") == []
    assert [c["name"] for c in failing(checks, "fail")] == ["tls"]
    assert [c["name"] for c in failing(checks, "warn")] == ["clock", "tls"]


def _reference(params):
    diagnosis = Diagnosis(params)
    diagnosis.check_reference()
    return diagnosis, diagnosis.checks[0]


@pytest.mark.parametrize("params, status, image, words", [
    ({"image": "alpine"}, "ok", "docker.io/library/alpine:latest", ["no tag given"]),
    ({"image": "localhost:5000/team/app:1"}, "ok", "localhost:5000/team/app:1", ["as the docker CLI reads it"]),
    ({"image": "team/app:1", "registry": "localhost:5000"}, "warn", "localhost:5000/team/app:1",
     ["docker reads 'team/app:1' as docker.io/team/app:1"]),
    ({"image": "http://localhost:5000/team/app:1"}, "warn", "localhost:5000/team/app:1",
     ["does not take a scheme"]),
    ({"image": "Team/App:1"}, "fail", None, ["must be lower case"]),
    ({"image": "localhost:5000/app:1", "registry": "other:5000"}, "fail", None, ["names registry"]),
])
def test_reference(params, status, image, words):
    diagnosis, check = _reference(params)
    assert check.status == status
    for word in words:
        assert word in check.detail
    if image:
        assert str(diagnosis.image) == image
    if status != "ok":
        assert check.fix


def test_reference_fixes():
    assert _reference({"image": "Team/App:1"})[1].fix == "repository names are lower case: write team/app:1"
    assert "insecure" in _reference({"image": "http://localhost:5000/team/app:1"})[1].fix
    assert _reference({"image": "team/app:1", "registry": "localhost:5000"})[1].fix == \
        "write the registry into the name: localhost:5000/team/app:1"


def test_every_address_is_reported():
    def getaddrinfo(host, port, *args):
        return [(socket.AF_INET6, socket.SOCK_STREAM, 0, "", ("::1", port, 0, 0)),
                (socket.AF_INET, socket.SOCK_STREAM, 0, "", ("127.0.0.1", port))]
    diagnosis = Diagnosis({"registry": "localhost:5999"}, getaddrinfo=getaddrinfo, environ={})
    diagnosis.check_reference()
    assert diagnosis.check_resolve()
    assert diagnosis.checks[-1].detail == "localhost resolves to ::1, 127.0.0.1"


def test_proxy_in_effect_and_no_proxy():
    env = {"https_proxy": "http://u:pw@proxy.example:3128", "no_proxy": "internal.example"}
    diagnosis = Diagnosis({"registry": "registry.example:5000"}, environ=env)
    diagnosis.check_reference()
    assert diagnosis._proxy_for() == "http://u:pw@proxy.example:3128"
    diagnosis = Diagnosis({"registry": "reg.internal.example:5000"}, environ=env)
    diagnosis.check_reference()
    assert diagnosis._proxy_for() is None
