# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import base64
import json
import os
import stat
import sys
import textwrap

import pytest

from ansible_collections.dockyard.registry.plugins.module_utils._auth import Credentials
from ansible_collections.dockyard.registry.plugins.module_utils._docker_config import (
    default_config_path,
    find_credentials,
    remove_credentials,
    store_credentials,
)
from ansible_collections.dockyard.registry.plugins.module_utils._errors import InvalidInput, RegistryError
from ansible_collections.dockyard.registry.plugins.module_utils._reference import parse_registry

HUB = parse_registry("docker.io")
LOCAL = parse_registry("localhost:5000")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write(path, data) -> None:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)


def creds(c):
    return None if c is None else (c.username, c.password, c.identity_token, c.registry_token)


# --- default path -------------------------------------------------------------------------------

def test_default_path_uses_docker_config(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "d"))
    assert default_config_path() == str(tmp_path / "d" / "config.json")


def test_default_path_home(monkeypatch, tmp_path):
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_config_path() == str(tmp_path / ".docker" / "config.json")


def test_default_path_is_used(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    write(tmp_path / "config.json", {"auths": {"localhost:5000": {"auth": b64("u:p")}}})
    assert creds(find_credentials(LOCAL)) == ("u", "p", None, None)


# --- lookup in auths -----------------------------------------------------------------------------

@pytest.mark.parametrize("key", [
    "localhost:5000",
    "https://localhost:5000",
    "http://localhost:5000",
    "https://localhost:5000/v1/",
    "https://localhost:5000/v2/",
])
def test_auths_keys_with_or_without_scheme(tmp_path, key):
    path = tmp_path / "config.json"
    write(path, {"auths": {"other:5000": {"auth": b64("x:y")}, key: {"auth": b64("user:pa:ss")}}})
    # A password may contain ":"; only the first one separates the user.
    assert creds(find_credentials(LOCAL, str(path))) == ("user", "pa:ss", None, None)


def test_exact_key_wins_over_scheme_variant(tmp_path):
    path = tmp_path / "config.json"
    write(path, {"auths": {"https://localhost:5000": {"auth": b64("old:1")}, "localhost:5000": {"auth": b64("new:2")}}})
    assert creds(find_credentials(LOCAL, str(path))) == ("new", "2", None, None)


@pytest.mark.parametrize("key", ["https://index.docker.io/v1/", "index.docker.io", "docker.io"])
def test_docker_hub_keys(tmp_path, key):
    path = tmp_path / "config.json"
    write(path, {"auths": {key: {"auth": b64("hubuser:tok")}}})
    for name in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        assert creds(find_credentials(parse_registry(name), str(path))) == ("hubuser", "tok", None, None)


def test_username_password_fields_and_identity_token(tmp_path):
    path = tmp_path / "config.json"
    write(path, {"auths": {
        "localhost:5000": {"username": "u", "password": "p"},
        "tok.example": {"identitytoken": "refresh-me"},
        "reg.example": {"registrytoken": "bearer-me"},
    }})
    assert creds(find_credentials(LOCAL, str(path))) == ("u", "p", None, None)
    assert creds(find_credentials(parse_registry("tok.example"), str(path))) == (None, None, "refresh-me", None)
    assert creds(find_credentials(parse_registry("reg.example"), str(path))) == (None, None, None, "bearer-me")


@pytest.mark.parametrize("content", [None, "", "{}", '{"auths": {}}', '{"auths": {"localhost:5000": {}}}',
                                     '{"auths": {"localhost:5001": {"auth": "dTpw"}}}'])
def test_nothing_found(tmp_path, content):
    path = tmp_path / "config.json"
    if content is not None:
        path.write_text(content)
    assert find_credentials(LOCAL, str(path)) is None


@pytest.mark.parametrize("content", ["{not json", "[]", '"text"'])
def test_corrupt_config_is_a_clear_error(tmp_path, content):
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(InvalidInput) as exc:
        find_credentials(LOCAL, str(path))
    assert str(path) in str(exc.value)
    with pytest.raises(InvalidInput):
        store_credentials(LOCAL, Credentials("u", "p"), str(path))
    with pytest.raises(InvalidInput):
        remove_credentials(LOCAL, str(path))
    assert path.read_text() == content
    assert os.listdir(str(tmp_path)) == ["config.json"]


def test_bad_base64_auth(tmp_path):
    path = tmp_path / "config.json"
    write(path, {"auths": {"localhost:5000": {"auth": b64("no-colon")}}})
    with pytest.raises(InvalidInput, match="user:password"):
        find_credentials(LOCAL, str(path))


# --- storing in the file -------------------------------------------------------------------------

def test_store_creates_directory_and_file_private(tmp_path):
    path = tmp_path / "new" / "config.json"
    assert store_credentials(LOCAL, Credentials("u", "secret"), str(path)) is True
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(str(tmp_path / "new")).st_mode) == 0o700
    data = json.loads(path.read_text())
    assert data == {"auths": {"localhost:5000": {"auth": b64("u:secret")}}}
    # The docker CLI indents with tabs.
    assert path.read_text().startswith('{\n\t"auths": {\n\t\t"localhost:5000"')
    assert os.listdir(str(tmp_path / "new")) == ["config.json"]


def test_store_keeps_other_keys_and_is_idempotent(tmp_path):
    path = tmp_path / "config.json"
    original = {
        "auths": {"other.example": {"auth": b64("a:b")}, "localhost:5000": {"auth": b64("u:old"), "email": "x@y"}},
        "proxies": {"default": {"httpProxy": "http://proxy:3128"}},
        "HttpHeaders": {"User-Agent": "me"},
        "currentContext": "ctx",
    }
    write(path, original)
    os.chmod(str(path), 0o644)
    assert store_credentials(LOCAL, Credentials("u", "new"), str(path)) is True
    data = json.loads(path.read_text())
    assert data["auths"]["localhost:5000"] == {"auth": b64("u:new"), "email": "x@y"}
    for key in ("proxies", "HttpHeaders", "currentContext"):
        assert data[key] == original[key]
    assert data["auths"]["other.example"] == original["auths"]["other.example"]
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o600
    before = path.read_text()
    inode = os.stat(str(path)).st_ino
    assert store_credentials(LOCAL, Credentials("u", "new"), str(path)) is False
    assert path.read_text() == before
    assert os.stat(str(path)).st_ino == inode


def test_store_updates_entry_under_its_own_key(tmp_path):
    path = tmp_path / "config.json"
    write(path, {"auths": {"https://localhost:5000": {"auth": b64("u:old")}}})
    assert store_credentials(LOCAL, Credentials("u", "new"), str(path)) is True
    assert json.loads(path.read_text()) == {"auths": {"https://localhost:5000": {"auth": b64("u:new")}}}


def test_store_hub_uses_docker_cli_key(tmp_path):
    path = tmp_path / "config.json"
    assert store_credentials(parse_registry("index.docker.io"), Credentials("hub", "t"), str(path))
    assert list(json.loads(path.read_text())["auths"]) == ["https://index.docker.io/v1/"]


def test_store_check_mode_writes_nothing(tmp_path):
    path = tmp_path / "config.json"
    assert store_credentials(LOCAL, Credentials("u", "p"), str(path), check_mode=True) is True
    assert not path.exists()
    write(path, {"auths": {"localhost:5000": {"auth": b64("u:p")}}})
    before = path.read_text()
    assert store_credentials(LOCAL, Credentials("u", "p"), str(path), check_mode=True) is False
    assert store_credentials(LOCAL, Credentials("u", "other"), str(path), check_mode=True) is True
    assert path.read_text() == before


def test_store_through_symlink_keeps_the_link(tmp_path):
    real = tmp_path / "dotfiles" / "docker.json"
    real.parent.mkdir()
    write(real, {"auths": {}})
    link = tmp_path / "config.json"
    link.symlink_to(real)
    assert store_credentials(LOCAL, Credentials("u", "p"), str(link))
    assert link.is_symlink()
    assert json.loads(real.read_text())["auths"]["localhost:5000"] == {"auth": b64("u:p")}


def test_remove(tmp_path):
    path = tmp_path / "config.json"
    write(path, {"auths": {"localhost:5000": {"auth": b64("u:p")}, "https://localhost:5000": {"auth": b64("u:q")},
                           "keep.example": {"auth": b64("k:k")}}, "credHelpers": {}})
    assert remove_credentials(LOCAL, str(path), check_mode=True) is True
    assert "localhost:5000" in json.loads(path.read_text())["auths"]
    assert remove_credentials(LOCAL, str(path)) is True
    assert json.loads(path.read_text()) == {"auths": {"keep.example": {"auth": b64("k:k")}}, "credHelpers": {}}
    assert remove_credentials(LOCAL, str(path)) is False
    assert remove_credentials(LOCAL, str(tmp_path / "missing.json")) is False
    assert not (tmp_path / "missing.json").exists()


# --- credential helpers, with a real helper program on PATH ---------------------------------------

HELPER = """\
#!{python}
# A docker-credential-helpers compatible store backed by a JSON file (for tests).
import json, os, sys
db = os.environ["FAKE_HELPER_DB"]
log = os.environ["FAKE_HELPER_LOG"]
action = sys.argv[1]
data = sys.stdin.read()
with open(log, "a") as handle:
    handle.write(action + "\\n")
store = json.load(open(db)) if os.path.exists(db) else {{}}
if action == "get":
    if data not in store:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps(store[data]))
elif action == "store":
    item = json.loads(data)
    store[item["ServerURL"]] = item
    json.dump(store, open(db, "w"))
elif action == "erase":
    if data not in store:
        print("credentials not found in native keychain")
        sys.exit(1)
    del store[data]
    json.dump(store, open(db, "w"))
else:
    sys.exit(2)
"""


@pytest.fixture
def helper(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("fake", "other"):
        program = bindir / ("docker-credential-%s" % name)
        program.write_text(HELPER.format(python=sys.executable))
        program.chmod(0o755)
    monkeypatch.setenv("PATH", "%s%s%s" % (bindir, os.pathsep, os.environ.get("PATH", "")))
    db = tmp_path / "helper.json"
    log = tmp_path / "helper.log"
    monkeypatch.setenv("FAKE_HELPER_DB", str(db))
    monkeypatch.setenv("FAKE_HELPER_LOG", str(log))

    class Helper:
        def store(self):
            return json.loads(db.read_text()) if db.exists() else {}

        def calls(self):
            return log.read_text().split() if log.exists() else []

    return Helper()


def test_creds_store_holds_the_secret(tmp_path, helper):
    path = tmp_path / "config.json"
    write(path, {"credsStore": "fake", "auths": {}})
    assert store_credentials(LOCAL, Credentials("u", "s3cret"), str(path)) is True
    assert helper.store() == {"localhost:5000": {"ServerURL": "localhost:5000", "Username": "u", "Secret": "s3cret"}}
    text = path.read_text()
    assert "s3cret" not in text and b64("u:s3cret") not in text
    assert json.loads(text) == {"credsStore": "fake", "auths": {"localhost:5000": {}}}
    assert creds(find_credentials(LOCAL, str(path))) == ("u", "s3cret", None, None)
    # Unchanged: only a "get", no second "store", no rewrite.
    calls = len(helper.calls())
    assert store_credentials(LOCAL, Credentials("u", "s3cret"), str(path)) is False
    assert helper.calls()[calls:] == ["get"]
    assert store_credentials(LOCAL, Credentials("u", "new"), str(path), check_mode=True) is True
    assert helper.store()["localhost:5000"]["Secret"] == "s3cret"
    assert store_credentials(LOCAL, Credentials("u", "new"), str(path)) is True
    assert helper.store()["localhost:5000"]["Secret"] == "new"


def test_creds_store_moves_plain_secret_out_of_the_file(tmp_path, helper):
    path = tmp_path / "config.json"
    write(path, {"credsStore": "fake", "auths": {"localhost:5000": {"auth": b64("u:p")}}})
    # With a helper configured the docker CLI looks only in the helper.
    assert find_credentials(LOCAL, str(path)) is None
    assert store_credentials(LOCAL, Credentials("u", "p"), str(path)) is True
    assert json.loads(path.read_text())["auths"] == {"localhost:5000": {}}
    assert helper.store()["localhost:5000"]["Secret"] == "p"


def test_cred_helpers_entry_wins_over_creds_store(tmp_path, helper):
    path = tmp_path / "config.json"
    write(path, {"credsStore": "missing-helper", "credHelpers": {"localhost:5000": "other"}})
    assert store_credentials(LOCAL, Credentials("u", "p"), str(path)) is True
    assert helper.store()["localhost:5000"]["Username"] == "u"
    # Any other registry goes to credsStore, whose program does not exist: a clear error.
    with pytest.raises(InvalidInput, match="docker-credential-missing-helper"):
        find_credentials(parse_registry("elsewhere.example"), str(path))


def test_helper_identity_token(tmp_path, helper):
    path = tmp_path / "config.json"
    write(path, {"credsStore": "fake"})
    assert store_credentials(HUB, Credentials(identity_token="refresh"), str(path))
    assert helper.store()["https://index.docker.io/v1/"]["Username"] == "<token>"
    assert creds(find_credentials(HUB, str(path))) == (None, None, "refresh", None)


def test_helper_logout(tmp_path, helper):
    path = tmp_path / "config.json"
    write(path, {"credsStore": "fake"})
    store_credentials(LOCAL, Credentials("u", "p"), str(path))
    assert remove_credentials(LOCAL, str(path), check_mode=True) is True
    assert "localhost:5000" in helper.store()
    assert remove_credentials(LOCAL, str(path)) is True
    assert helper.store() == {}
    assert json.loads(path.read_text()) == {"credsStore": "fake", "auths": {}}
    assert remove_credentials(LOCAL, str(path)) is False


def test_helper_failure_is_reported_without_secret(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    program = bindir / "docker-credential-broken"
    program.write_text(textwrap.dedent("""\
        #!/bin/sh
        echo "keychain is locked" >&2
        exit 3
        """))
    program.chmod(0o755)
    monkeypatch.setenv("PATH", "%s%s%s" % (bindir, os.pathsep, os.environ.get("PATH", "")))
    path = tmp_path / "config.json"
    write(path, {"credsStore": "broken"})
    with pytest.raises(RegistryError) as exc:
        store_credentials(LOCAL, Credentials("u", "topsecret"), str(path))
    assert "keychain is locked" in str(exc.value)
    assert "topsecret" not in str(exc.value)
    assert json.loads(path.read_text()) == {"credsStore": "broken"}


# --- files that are not regular, concurrent writers -------------------------------------------------

def _store_in_process(path: str, number: int, barrier) -> None:
    barrier.wait(60)
    store_credentials(parse_registry("registry%d.example:5000" % number), Credentials("u%d" % number, "p"), path)


def test_concurrent_logins_keep_every_entry(tmp_path):
    # Eight processes log in to eight registries in one config.json at once. Without the
    # lock each read-modify-rename works from a stale copy and entries get lost.
    import multiprocessing
    path = str(tmp_path / "docker" / "config.json")
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(8)
    workers = [context.Process(target=_store_in_process, args=(path, number, barrier)) for number in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    auths = json.loads(open(path).read())["auths"]
    assert sorted(auths) == sorted("registry%d.example:5000" % number for number in range(8))
    assert os.listdir(str(tmp_path / "docker")) == ["config.json"]  # no lock or temporary file left


def test_config_that_is_a_fifo_is_refused_at_once(tmp_path):
    import threading
    path = tmp_path / "config.json"
    os.mkfifo(str(path))
    outcome = {}

    def attempt():
        try:
            store_credentials(LOCAL, Credentials("u", "secret"), str(path))
        except RegistryError as exc:
            outcome["error"] = exc
    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(10)
    try:
        assert not thread.is_alive(), "store_credentials blocked on a FIFO"
    finally:
        try:
            os.close(os.open(str(path), os.O_WRONLY | os.O_NONBLOCK))  # frees a reader stuck in open()
        except OSError:
            pass
    assert isinstance(outcome["error"], InvalidInput)
    assert "docker config %s is a FIFO (named pipe), not a regular file" % path in str(outcome["error"])
    assert stat.S_ISFIFO(os.stat(str(path)).st_mode)
    with pytest.raises(InvalidInput, match="FIFO"):
        find_credentials(LOCAL, str(path))


def test_logout_without_a_config_directory_creates_nothing(tmp_path):
    assert remove_credentials(LOCAL, str(tmp_path / "none" / "config.json")) is False
    assert list(tmp_path.iterdir()) == []


def test_hung_helper_is_stopped_and_named(tmp_path, monkeypatch):
    from ansible_collections.dockyard.registry.plugins.module_utils import _docker_config

    bindir = tmp_path / "bin"
    bindir.mkdir()
    program = bindir / "docker-credential-stuck"
    program.write_text("#!%s\nimport time\ntime.sleep(60)\n" % sys.executable)
    program.chmod(0o755)
    monkeypatch.setenv("PATH", "%s%s%s" % (bindir, os.pathsep, os.environ.get("PATH", "")))
    monkeypatch.setattr(_docker_config, "_HELPER_TIMEOUT", 0.5)
    path = tmp_path / "config.json"
    write(path, {"credsStore": "stuck"})
    with pytest.raises(RegistryError, match="credential helper docker-credential-stuck get failed: .*did not finish"):
        find_credentials(LOCAL, str(path))


# --- credHelpers entries (gcloud auth configure-docker, ecr-login) -----------------------------------

def test_set_credential_helper_keeps_everything_else(tmp_path):
    from ansible_collections.dockyard.registry.plugins.module_utils._docker_config import set_credential_helper
    path = tmp_path / "config.json"
    start = {"auths": {"example.com": {"auth": "eDp5"}}, "psFormat": "table", "credHelpers": {"quay.io": "other"}}
    path.write_text(json.dumps(start))
    os.chmod(path, 0o644)
    gcr = parse_registry("gcr.io")
    assert set_credential_helper(gcr, "gcloud", str(path), check_mode=True) == (True, None)
    assert json.loads(path.read_text()) == start  # check mode wrote nothing
    assert set_credential_helper(gcr, "gcloud", str(path)) == (True, None)
    assert set_credential_helper(parse_registry("europe-west1-docker.pkg.dev"), "gcloud", str(path)) == (True, None)
    assert set_credential_helper(gcr, "gcloud", str(path)) == (False, "gcloud")
    data = json.loads(path.read_text())
    assert data["credHelpers"] == {"quay.io": "other", "gcr.io": "gcloud", "europe-west1-docker.pkg.dev": "gcloud"}
    assert list(data["credHelpers"]) == ["quay.io", "gcr.io", "europe-west1-docker.pkg.dev"]  # gcloud's order
    assert data["auths"] == start["auths"] and data["psFormat"] == "table"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # removal takes only that entry; the last one removes the key
    assert set_credential_helper(gcr, None, str(path)) == (True, "gcloud")
    assert set_credential_helper(gcr, None, str(path)) == (False, None)
    set_credential_helper(parse_registry("europe-west1-docker.pkg.dev"), None, str(path))
    set_credential_helper(parse_registry("quay.io"), None, str(path))
    assert "credHelpers" not in json.loads(path.read_text())


def test_set_credential_helper_new_file_and_bad_file(tmp_path):
    from ansible_collections.dockyard.registry.plugins.module_utils._docker_config import set_credential_helper
    path = tmp_path / "new" / "config.json"
    ecr = parse_registry("123456789012.dkr.ecr.eu-west-1.amazonaws.com")
    assert set_credential_helper(ecr, None, str(path)) == (False, None)
    assert not path.exists()
    assert set_credential_helper(ecr, "ecr-login", str(path)) == (True, None)
    assert json.loads(path.read_text()) == {"credHelpers": {ecr.host: "ecr-login"}}
    path.write_text('{"credHelpers": ["gcr.io"]}')
    with pytest.raises(InvalidInput, match="credHelpers.*is not an object"):
        set_credential_helper(ecr, "ecr-login", str(path))
