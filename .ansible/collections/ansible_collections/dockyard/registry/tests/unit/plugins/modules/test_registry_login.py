# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""registry_login through its real main(), against a real registry process.

The registry is Debian's ``docker-registry`` (the registry:2 software) started as a plain
process on loopback with htpasswd auth; ECR tokens come from a real moto server. Nothing
is mocked: the module verifies credentials over HTTP and writes a real config.json.
"""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from ansible_collections.dockyard.registry.plugins.modules import registry_login
from ansible_collections.dockyard.registry.tests.unit.plugins.modules.utils import Run
from ansible_collections.dockyard.registry.tests.unit.plugins.modules.utils import run_module as run_main
from ansible_collections.dockyard.registry.tests.unit.plugins.registry_process import (
    free_port,
    htpasswd_auth,
    running_registry,
)

PASSWORD = "Login-Unit-S3cret"
ECR_ACCOUNT = "123456789012"
ECR_PASSWORD = "%s-auth-token" % ECR_ACCOUNT  # what moto's get_authorization_token hands out


# Function-scoped like every registry here (see registry_process).
@pytest.fixture
def registry(tmp_path_factory):
    """``http://127.0.0.1:<port>`` of a registry with htpasswd users ``alice`` and ``AWS``."""
    directory = tmp_path_factory.mktemp("registry")
    auth = htpasswd_auth(directory, {"alice": PASSWORD, "AWS": ECR_PASSWORD}, realm="unit")
    with running_registry(directory, auth=auth) as url:
        yield url


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "default-docker"))
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))


def run_module(capsys, check_mode: bool = False, diff: bool = False, **args) -> Run:
    return run_main(capsys, registry_login, check_mode=check_mode, diff=diff, **args)


def host_of(url: str) -> str:
    return url.split("://", 1)[1]


def stored(config) -> dict:
    return json.loads(config.read_text())["auths"]


def test_login_writes_verified_credentials_once(capsys, registry, tmp_path):
    config = tmp_path / "docker" / "config.json"
    run = run_module(capsys, registry=registry, username="alice", password=PASSWORD, config_path=str(config),
                     diff=True)
    assert run.rc == 0, run.result
    assert run.result["changed"] is True
    assert run.result["verified"] is True
    assert run.result["registry"] == host_of(registry)
    assert run.result["provider"] == "generic"
    assert run.result["username"] == "alice"
    assert run.result["credentials_store"] is None
    assert run.result["diff"]["before"]["logged_in"] is False
    assert run.result["diff"]["after"] == {"registry": host_of(registry), "logged_in": True, "username": "alice"}
    assert PASSWORD not in run.stdout
    assert stored(config) == {host_of(registry): {"auth": base64.b64encode(("alice:" + PASSWORD).encode()).decode()}}
    assert stat.S_IMODE(os.stat(str(config)).st_mode) == 0o600

    # The same login again changes nothing.
    before = config.read_bytes()
    again = run_module(capsys, registry=registry, username="alice", password=PASSWORD, config_path=str(config))
    assert (again.rc, again.result["changed"]) == (0, False)
    assert config.read_bytes() == before


def test_wrong_password_writes_nothing(capsys, registry, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {host_of(registry): {"auth": "a2VlcDptZQ=="}}, "psFormat": "x"}))
    before = config.read_bytes()
    run = run_module(capsys, registry=registry, username="alice", password="wrong-Passw0rd", config_path=str(config))
    assert run.rc == 1
    assert run.result["failed"] is True
    assert run.result["error_kind"] == "unauthorized"
    assert host_of(registry) in run.result["msg"]
    assert "wrong-Passw0rd" not in run.stdout
    assert config.read_bytes() == before


def test_check_mode_verifies_and_writes_nothing(capsys, registry, tmp_path):
    config = tmp_path / "config.json"
    run = run_module(capsys, check_mode=True, registry=registry, username="alice", password=PASSWORD,
                     config_path=str(config))
    assert (run.rc, run.result["changed"]) == (0, True)
    assert not config.exists()
    bad = run_module(capsys, check_mode=True, registry=registry, username="alice", password="nope-nope",
                     config_path=str(config))
    assert bad.result["error_kind"] == "unauthorized"
    assert not config.exists()


def test_unreachable_registry(capsys, tmp_path):
    port = free_port()
    run = run_module(capsys, registry="http://127.0.0.1:%d" % port, username="alice", password=PASSWORD,
                     config_path=str(tmp_path / "config.json"))
    assert run.result["error_kind"] == "unreachable"
    assert "127.0.0.1:%d" % port in run.result["msg"]
    assert not (tmp_path / "config.json").exists()


def test_logout_keeps_everything_else(capsys, registry, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {"other.example": {"auth": "eDp5"}}, "detachKeys": "ctrl-x"}))
    assert run_module(capsys, registry=registry, username="alice", password=PASSWORD,
                      config_path=str(config)).result["changed"] is True
    check = run_module(capsys, check_mode=True, registry=registry, state="absent", config_path=str(config))
    assert check.result["changed"] is True
    assert host_of(registry) in stored(config)
    out = run_module(capsys, registry=registry, state="absent", config_path=str(config), diff=True)
    assert out.result["changed"] is True
    assert out.result["diff"]["after"]["logged_in"] is False
    assert json.loads(config.read_text()) == {"auths": {"other.example": {"auth": "eDp5"}}, "detachKeys": "ctrl-x"}
    assert run_module(capsys, registry=registry, state="absent", config_path=str(config)).result["changed"] is False


def test_default_config_path_follows_docker_config(capsys, registry, tmp_path):
    run = run_module(capsys, registry=registry, username="alice", password=PASSWORD)
    assert run.result["config_path"] == str(tmp_path / "default-docker" / "config.json")
    assert host_of(registry) in stored(tmp_path / "default-docker" / "config.json")


def ecr_args(registry, moto_endpoint, config, **extra):
    args = dict(provider="ecr", registry=registry, endpoint_url=moto_endpoint, region="eu-west-1",
                registry_id=ECR_ACCOUNT, aws_access_key_id="testing", aws_secret_access_key="testing",
                config_path=str(config))
    args.update(extra)
    return args


def test_ecr_login_verified_against_the_registry(capsys, registry, moto_endpoint, tmp_path):
    pytest.importorskip("boto3")
    config = tmp_path / "config.json"
    run = run_module(capsys, **ecr_args(registry, moto_endpoint, config))
    assert run.rc == 0, run.result
    assert (run.result["changed"], run.result["provider"], run.result["username"]) == (True, "ecr", "AWS")
    assert ECR_PASSWORD not in run.stdout
    assert stored(config)[host_of(registry)] == {"auth": base64.b64encode(("AWS:" + ECR_PASSWORD).encode()).decode()}
    again = run_module(capsys, **ecr_args(registry, moto_endpoint, config))
    assert again.result["changed"] is False


def test_ecr_keeps_a_working_token_unless_reauthorize(capsys, registry, moto_endpoint, tmp_path):
    pytest.importorskip("boto3")
    config = tmp_path / "config.json"
    # The stored token works; the one AWS would hand out now (another account's) would not.
    run_module(capsys, **ecr_args(registry, moto_endpoint, config))
    before = config.read_bytes()
    kept = run_module(capsys, **ecr_args(registry, moto_endpoint, config, registry_id="999999999999"))
    assert (kept.rc, kept.result["changed"]) == (0, False)
    assert config.read_bytes() == before
    fresh = run_module(capsys, **ecr_args(registry, moto_endpoint, config, registry_id="999999999999",
                                          reauthorize=True))
    assert fresh.result["error_kind"] == "unauthorized"
    assert config.read_bytes() == before


def test_ecr_replaces_a_rejected_token(capsys, registry, moto_endpoint, tmp_path):
    pytest.importorskip("boto3")
    config = tmp_path / "config.json"
    expired = base64.b64encode(b"AWS:expired-token").decode()
    config.write_text(json.dumps({"auths": {host_of(registry): {"auth": expired}}}))
    run = run_module(capsys, **ecr_args(registry, moto_endpoint, config))
    assert (run.rc, run.result["changed"]) == (0, True)
    assert stored(config)[host_of(registry)]["auth"] != expired


def test_provider_options_are_checked_before_any_request(capsys, tmp_path):
    run = run_module(capsys, provider="acr", username="app", password="x", config_path=str(tmp_path / "c.json"))
    assert run.result["error_kind"] == "invalid_input"
    assert "needs registry" in run.result["msg"]
    bad_key = run_module(capsys, provider="gcr", service_account_key='{"type": "user", "private_key": "PK"}',
                         config_path=str(tmp_path / "c.json"))
    assert bad_key.result["error_kind"] == "invalid_input"
    assert "PK" not in bad_key.stdout
