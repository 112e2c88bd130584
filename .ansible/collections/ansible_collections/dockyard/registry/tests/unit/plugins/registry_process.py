# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A real distribution registry (Debian's ``docker-registry``, the registry:2 software) as a
plain process on loopback, for the unit tests that want a real server to talk to.

Use it from function-scoped fixtures only: ``ansible-test units`` runs every test in a forked
child that leaves with ``os._exit()``, so module-scoped fixtures are set up again in every
child and never torn down. The process also gets SIGTERM when the process that started it
dies (PR_SET_PDEATHSIG), so not even a crashed test leaves a registry running.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import typing as t

import pytest

__all__ = ["REGISTRY_BIN", "free_port", "htpasswd_auth", "running_registry"]

REGISTRY_BIN = shutil.which("docker-registry") or shutil.which("registry")


def free_port() -> int:
    """A loopback TCP port nobody listens on (at the moment of asking)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def htpasswd_auth(directory, users: t.Dict[str, str], realm: str = "test") -> dict:
    """Writes ``directory/htpasswd`` with bcrypt hashes of ``users`` (name: password) and
    returns the registry's ``auth`` section that uses it."""
    bcrypt = pytest.importorskip("bcrypt")
    path = directory / "htpasswd"
    lines = [b"%s:%s\n" % (user.encode(), bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)))
             for user, password in users.items()]
    path.write_bytes(b"".join(lines))
    return {"htpasswd": {"realm": realm, "path": str(path)}}


def _die_with_parent() -> None:
    """Best effort (Linux): the registry gets SIGTERM when the test process ends, even
    when it ends without running fixture teardown."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _wait_until_listening(port: int, process: subprocess.Popen) -> None:
    for _attempt in range(200):
        if process.poll() is not None:
            pytest.fail("docker-registry exited with %s" % process.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail("docker-registry did not listen on 127.0.0.1:%d" % port)


@contextlib.contextmanager
def running_registry(directory, auth: t.Optional[dict] = None, tls: t.Optional[dict] = None,
                     delete: bool = False) -> t.Iterator[str]:
    """Runs a registry that keeps its config and data in ``directory`` (a ``pathlib.Path``,
    created if missing), yields its ``http://127.0.0.1:<port>`` URL and stops it on exit.

    ``auth`` is the config's ``auth`` section (see :func:`htpasswd_auth`), ``tls`` its
    ``http.tls`` section (the URL still says ``http://``; callers change the scheme),
    ``delete`` enables manifest and blob deletion. Skips the test when the binary is
    missing."""
    if not REGISTRY_BIN:
        pytest.skip("the docker-registry binary (Debian package docker-registry) is not installed")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    storage: dict = {"filesystem": {"rootdirectory": str(directory / "data")}}
    if delete:
        storage["delete"] = {"enabled": True}
    config = {"version": 0.1, "log": {"level": "error"}, "storage": storage,
              "http": {"addr": "127.0.0.1:%d" % port}}
    if tls:
        config["http"]["tls"] = tls
    if auth:
        config["auth"] = auth
    config_path = directory / "config.yml"
    config_path.write_text(json.dumps(config))  # JSON is YAML
    process = subprocess.Popen([REGISTRY_BIN, "serve", str(config_path)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    try:
        _wait_until_listening(port, process)
        yield "http://127.0.0.1:%d" % port
    finally:
        process.terminate()
        process.wait(10)
