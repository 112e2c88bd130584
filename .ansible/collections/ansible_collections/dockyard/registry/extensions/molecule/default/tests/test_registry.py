# Copyright: (c) 2026, dockyard.registry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verify the registry the role deployed, with independent judges: Python's ssl and
urllib for TLS and HTTP, the docker CLI for push and pull, the file system for modes.

The values below mirror molecule.yml (group_vars) and side_effect.yml.
"""
from __future__ import annotations

import base64
import json
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

NAME = "dockyard-mol-default"
PORT = 5110
REGISTRY = f"localhost:{PORT}"
BASE = Path("/tmp/dockyard-mol-default")
CA = BASE / "certs" / "ca.crt"
WORK = Path("/tmp/dockyard-mol-default-work")
STATE_FILE = WORK / "state.json"
# After side_effect.yml: bob was removed, carol added.
USERS = {"alice": "mol-alice-pw", "carol": "mol-carol-pw"}
REMOVED = {"bob": "mol-bob-pw"}


@pytest.fixture(scope="module")
def state() -> dict:
    return json.loads(STATE_FILE.read_text())


def _get(path: str, user: str | None = None, password: str | None = None) -> tuple[int, dict]:
    context = ssl.create_default_context(cafile=str(CA))
    request = urllib.request.Request(f"https://{REGISTRY}{path}")
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers)


def _handshake(context: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", PORT), timeout=30)
    return context.wrap_socket(raw, server_hostname="localhost")


def _docker(*args: str, config: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker", "--config", config, *args], input=stdin, capture_output=True, text=True, check=False
    )


# --- TLS ---------------------------------------------------------------------------

def test_tls_handshake_verifies_with_the_generated_ca():
    context = ssl.create_default_context(cafile=str(CA))
    with _handshake(context) as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        names = [value for kind, value in tls.getpeercert()["subjectAltName"]]
        assert "localhost" in names and "127.0.0.1" in names


def test_tls_handshake_fails_without_the_ca():
    context = ssl.create_default_context()  # the system store does not know our CA
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(context).close()


def test_tls_1_2_is_accepted():
    context = ssl.create_default_context(cafile=str(CA))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with _handshake(context) as tls:
        assert tls.version() == "TLSv1.2"


# --- auth --------------------------------------------------------------------------

def test_v2_without_credentials_is_a_basic_challenge():
    status, headers = _get("/v2/")
    assert status == 401
    assert headers.get("Www-Authenticate", "").startswith("Basic ")


def test_v2_with_a_wrong_password_is_401():
    assert _get("/v2/", "alice", "not-the-password")[0] == 401


@pytest.mark.parametrize("user", sorted(USERS))
def test_v2_with_the_right_password_is_200(user):
    assert _get("/v2/", user, USERS[user])[0] == 200


def test_a_removed_user_is_locked_out():
    for user, password in REMOVED.items():
        assert _get("/v2/", user, password)[0] == 401


def test_changing_users_did_not_restart_the_container(state):
    assert state["after_users"] == state["before"]


def test_htpasswd_holds_exactly_the_users_as_cost_5_bcrypt(host):
    content = host.file(str(BASE / "auth" / "htpasswd")).content_string
    entries = dict(line.split(":", 1) for line in content.splitlines() if line.strip())
    assert sorted(entries) == sorted(USERS)
    assert all(hashed.startswith(("$2y$05$", "$2b$05$", "$2a$05$")) for hashed in entries.values())


# --- docker CLI --------------------------------------------------------------------

@pytest.fixture()
def docker_config():
    with tempfile.TemporaryDirectory(prefix="dockyard-mol-docker-") as config:
        yield config


def test_docker_cli_logs_in_pushes_removes_and_pulls(docker_config, tmp_path):
    ref = f"{REGISTRY}/mol/verify:{time.time_ns()}"
    (tmp_path / "hello.txt").write_text(f"verify {time.time_ns()}\n")
    tar = subprocess.run(["tar", "-C", str(tmp_path), "-c", "hello.txt"], capture_output=True, check=True)
    subprocess.run(["docker", "import", "-", ref], input=tar.stdout, capture_output=True, check=True)
    try:
        image_id = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Id}}", ref], capture_output=True, text=True, check=True
        ).stdout.strip()
        push = _docker("push", ref, config=docker_config)
        assert push.returncode != 0, "push without login must be refused"

        login = _docker("login", REGISTRY, "-u", "alice", "--password-stdin", config=docker_config, stdin=USERS["alice"])
        assert login.returncode == 0, login.stderr
        assert "mol-alice-pw" not in login.stdout + login.stderr

        push = _docker("push", ref, config=docker_config)
        assert push.returncode == 0, push.stderr
        subprocess.run(["docker", "image", "rm", ref], capture_output=True, check=True)
        pull = _docker("pull", ref, config=docker_config)
        assert pull.returncode == 0, pull.stderr
        pulled = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Id}}", ref], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert pulled == image_id
    finally:
        subprocess.run(["docker", "image", "rm", "--force", ref], capture_output=True, check=False)


def test_the_image_pushed_before_the_recreation_survives(state, docker_config):
    assert state["after_recreate"]["id"] != state["after_users"]["id"], "the container was not recreated"
    login = _docker("login", REGISTRY, "-u", "carol", "--password-stdin", config=docker_config, stdin=USERS["carol"])
    assert login.returncode == 0, login.stderr
    pull = _docker("pull", state["survivor"], config=docker_config)
    try:
        assert pull.returncode == 0, pull.stderr
        pulled = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Id}}", state["survivor"]],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        assert pulled == state["survivor_id"]
    finally:
        subprocess.run(["docker", "image", "rm", "--force", state["survivor"]], capture_output=True, check=False)


def test_http_secret_is_kept_across_runs(state):
    assert state["secret_before"] == state["secret_after"]


# --- container and files -----------------------------------------------------------

def test_container_settings(host):
    inspect = json.loads(host.check_output(f"docker inspect {NAME}"))[0]
    assert inspect["State"]["Running"]
    assert inspect["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert inspect["Config"]["Labels"]["dockyard.test"] == "1"
    mounts = {m["Destination"]: m for m in inspect["Mounts"]}
    assert mounts["/var/lib/registry"]["Source"] == str(BASE / "data")
    # the directory, not the file: an atomically replaced htpasswd is seen without a restart
    assert mounts["/auth"]["Source"] == str(BASE / "auth")
    assert not mounts["/auth"]["RW"] and not mounts["/certs"]["RW"]


@pytest.mark.parametrize(
    ("path", "mode"),
    [
        ("certs/server.key", 0o600),
        ("private/ca.key", 0o600),
        ("private/http_secret", 0o600),
        ("auth/htpasswd", 0o600),
        ("config/config.yml", 0o600),
        ("private", 0o700),
        ("certs/ca.crt", 0o644),
        ("certs/server.crt", 0o644),
    ],
)
def test_file_modes(host, path, mode):
    f = host.file(str(BASE / path))
    assert f.exists
    assert f.mode == mode


def test_config_has_minimum_tls_delete_and_a_secret(host):
    config = host.file(str(BASE / "config" / "config.yml")).content_string
    assert "minimumtls: tls1.2" in config
    assert "enabled: true" in config.split("delete:", 1)[1].splitlines()[1]
    secret = host.file(str(BASE / "private" / "http_secret")).content_string
    assert len(secret) >= 32 and f'secret: "{secret}"' in config


def test_ca_key_is_not_mounted_into_the_container(host):
    inspect = json.loads(host.check_output(f"docker inspect {NAME}"))[0]
    assert all(not m["Source"].startswith(str(BASE / "private")) for m in inspect["Mounts"])
