# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""registry_client_config through its real main() (and its backend) on real temporary files.

The Docker and Podman file layouts under temporary directories; the runtimes are "found" through
commands that exist everywhere (``true``), reloads are off or aimed at units that do not exist, so
no test touches a running daemon. The runtimes themselves are the integration target
role_registry_client's. Replaced here: one write, to inject a failure the machine cannot produce
on demand, and the lock class, to learn when a run waits for it.
"""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.dockyard.registry.plugins.module_utils import _client_config, _io
from ansible_collections.dockyard.registry.plugins.module_utils._errors import RegistryError
from ansible_collections.dockyard.registry.plugins.modules import registry_client_config
from ansible_collections.dockyard.registry.tests.unit.plugins.modules.utils import run_module

CA = "-----BEGIN CERTIFICATE-----\nMIIBca\n-----END CERTIFICATE-----\n"
CERT = "-----BEGIN CERTIFICATE-----\nMIIBclient\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nTHE-SECRET-KEY-MATERIAL\n-----END PRIVATE KEY-----\n"
HOST = "reg.example.internal:5000"


def podman(tmp_path, **args) -> dict:
    """The containers/image layout under tmp_path; CRI-O's unit does not exist, so nothing is reloaded."""
    return dict(dict(runtimes=["podman"], containers_dir=str(tmp_path / "containers"), containers_commands=["true"],
                     crio_service="dockyard-unit-test-no-such-unit", system_trust_dir=str(tmp_path / "anchors")),
                **args)


def docker(tmp_path, **args) -> dict:
    """Docker's files under tmp_path; ``true`` stands for dockerd (no --validate), reloads are off."""
    return dict(dict(runtimes=["docker"], docker_command="true", docker_certs_dir=str(tmp_path / "certs.d"),
                     docker_daemon_json=str(tmp_path / "daemon.json"), docker_pidfile=str(tmp_path / "docker.pid"),
                     docker_reload="never", system_trust_dir=str(tmp_path / "anchors")), **args)


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(str(path)).st_mode)


def tree(root) -> list:
    return sorted(os.path.relpath(os.path.join(d, n), str(root)) for d, dirs, files in os.walk(str(root))
                  for n in dirs + files)


def test_podman_files_are_written_once_with_a_0600_key_and_removed_by_absent(capsys, tmp_path):
    entry = {"host": HOST, "ca_content": CA, "client_cert_content": CERT, "client_key_content": KEY}
    first = run_module(capsys, registry_client_config, diff=True, **podman(tmp_path, registries=[entry]))
    assert not first.failed, first.result
    assert first.result["changed"]
    host_dir = tmp_path / "containers" / "certs.d" / HOST
    assert (host_dir / "ca.crt").read_text() == CA
    assert mode_of(host_dir / "ca.crt") == 0o644
    assert (host_dir / "client.key").read_text() == KEY
    assert mode_of(host_dir / "client.key") == 0o600
    drop_in = tmp_path / "containers" / "registries.conf.d" / "50-dockyard-reg.example.internal_5000.conf"
    assert 'location = "%s"' % HOST in drop_in.read_text()
    assert sorted(f["action"] for f in first.result["files"]) == ["created"] * 4
    assert first.result["ca_files"] == {HOST: str(host_dir / "ca.crt")}
    # the key is in no result, diff or log line; no lock file is left behind
    assert "THE-SECRET-KEY-MATERIAL" not in first.stdout
    assert "(private key, %d bytes, not shown)\n" % len(KEY) in [d["after"] for d in first.result["diff"]]
    assert not [name for name in tree(tmp_path) if name.endswith(".lock")]

    again = run_module(capsys, registry_client_config, **podman(tmp_path, registries=[entry]))
    assert not again.failed and not again.result["changed"], again.result
    assert "diff" not in again.result

    gone = run_module(capsys, registry_client_config,
                      **podman(tmp_path, registries=[{"host": HOST, "state": "absent"}]))
    assert gone.result["changed"], gone.result
    assert tree(tmp_path / "containers") == ["certs.d", "registries.conf.d"]


def test_check_mode_writes_nothing_and_lists_what_is_pending(capsys, tmp_path):
    run = run_module(capsys, registry_client_config, check_mode=True,
                     **podman(tmp_path, registries=[{"host": HOST, "ca_content": CA}]))
    assert run.result["changed"] and not run.failed, run.result
    assert run.result["pending"] == [str(tmp_path / "containers" / "certs.d" / HOST / "ca.crt"),
                                     str(tmp_path / "containers" / "registries.conf.d" /
                                         "50-dockyard-reg.example.internal_5000.conf")]
    assert tree(tmp_path) == []


def test_daemon_json_keeps_its_other_keys_mode_and_owner(capsys, tmp_path):
    daemon = tmp_path / "daemon.json"
    daemon.write_text('{"log-level": "warn", "insecure-registries": ["old.example:1"]}\n')
    os.chmod(str(daemon), 0o640)
    run = run_module(capsys, registry_client_config,
                     **docker(tmp_path, registries=[{"host": HOST, "insecure": True}]))
    assert not run.failed, run.result
    assert json.loads(daemon.read_text()) == {"log-level": "warn", "insecure-registries": ["old.example:1", HOST]}
    assert mode_of(daemon) == 0o640
    assert run.result["reloads"] == [{"runtime": "docker", "action": "reload", "done": False,
                                      "how": "docker_reload=never"}]
    # the backend's warnings reach the user through module.warn()
    assert any("reload dockerd" in warning for warning in run.warnings), run.warnings


@pytest.mark.parametrize("which", ["daemon.json", "drop-in", "ca.crt"])
def test_a_fifo_is_refused_and_nothing_is_written(capsys, tmp_path, which):
    if which == "daemon.json":
        fifo = tmp_path / "daemon.json"
        args = docker(tmp_path, registries=[{"host": HOST, "ca_content": CA, "insecure": True}])
        what = "Docker daemon configuration"
    elif which == "drop-in":
        (tmp_path / "containers" / "registries.conf.d").mkdir(parents=True)
        fifo = tmp_path / "containers" / "registries.conf.d" / "50-dockyard-reg.example.internal_5000.conf"
        args = podman(tmp_path, registries=[{"host": HOST, "ca_content": CA}])
        what = "containers registries configuration"  # the syntax check of every drop-in reads it first
    else:
        (tmp_path / "containers" / "certs.d" / HOST).mkdir(parents=True)
        fifo = tmp_path / "containers" / "certs.d" / HOST / "ca.crt"
        args = podman(tmp_path, registries=[{"host": HOST, "ca_content": CA}])
        what = "CA certificate"
    os.mkfifo(str(fifo))
    before = tree(tmp_path)
    run = run_module(capsys, registry_client_config, **args)
    assert run.failed and run.result["error_kind"] == "invalid_input", run.result
    assert run.result["msg"].startswith("%s %s is a FIFO (named pipe), not a regular file" % (what, fifo))
    assert run.result["msg"].endswith("Nothing was changed.")
    assert tree(tmp_path) == before


def test_a_failed_write_puts_back_the_files_already_written(capsys, tmp_path, monkeypatch):
    host_dir = tmp_path / "containers" / "certs.d" / HOST
    host_dir.mkdir(parents=True)
    (host_dir / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nOLD\n-----END CERTIFICATE-----\n")
    old = (host_dir / "ca.crt").read_bytes()
    real_write = _io.atomic_write

    def refuse_drop_ins(path, content, **kwargs):
        if path.endswith(".conf"):
            raise RegistryError("Cannot write %s: No space left on device" % path)
        return real_write(path, content, **kwargs)

    monkeypatch.setattr(_client_config._io, "atomic_write", refuse_drop_ins)
    entry = {"host": HOST, "ca_content": CA, "client_cert_content": CERT, "client_key_content": KEY}
    run = run_module(capsys, registry_client_config, **podman(tmp_path, registries=[entry]))
    assert run.failed and "No space left on device" in run.result["msg"], run.result
    assert (host_dir / "ca.crt").read_bytes() == old
    assert tree(host_dir) == ["ca.crt"]


def test_a_run_waits_for_the_lock_and_keeps_what_another_run_wrote(tmp_path, monkeypatch):
    daemon = tmp_path / "daemon.json"
    daemon.write_text('{"log-level": "warn"}\n')
    real_lock = _io.FileLock
    waiting = threading.Event()

    class SignallingLock(real_lock):
        def acquire(self) -> None:
            waiting.set()  # the run has read daemon.json and now waits for its lock
            super().acquire()

    monkeypatch.setattr(_client_config._io, "FileLock", SignallingLock)
    args = docker(tmp_path, registries=[{"host": "a.example:5000", "insecure": True}])
    params = ArgumentSpecValidator(registry_client_config.argument_spec()).validate(args).validated_parameters
    outcome = {}

    def run() -> None:
        try:
            outcome["result"] = _client_config.registry_client_config(params)
        except Exception as exc:  # pylint: disable=broad-except
            outcome["error"] = exc

    other = real_lock(str(daemon), what="Docker daemon configuration")
    other.acquire()
    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert waiting.wait(30)
        # what another run writes while it holds the lock
        daemon.write_text('{"log-level": "warn", "insecure-registries": ["b.example:5000"]}\n')
    finally:
        other.release()
        thread.join(60)
    assert "error" not in outcome, outcome
    wanted = {"log-level": "warn", "insecure-registries": ["b.example:5000", "a.example:5000"]}
    assert json.loads(daemon.read_text()) == wanted
    assert outcome["result"]["files"] == [{"path": str(daemon), "runtime": "docker", "action": "updated"}]
    assert not os.path.exists(str(daemon) + ".lock")
