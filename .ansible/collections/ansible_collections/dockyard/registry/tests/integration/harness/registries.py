# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Start and stop the registries the integration targets run against.

``python registries.py up --config tests/integration/integration_config.yml [--workdir DIR]``
generates a private CA and certificates, an htpasswd file and registry configurations,
starts ``registry:2`` containers (names ``dockyard-it-*``, label ``dockyard.test=1``),
the token server, the fault-injecting proxy and a moto server, waits until each one
answers, installs the CA for the docker CLI under ``/etc/docker/certs.d/<host:port>/``
and writes the variables every target gets (the contract is at the end of
docs/internals.md). ``up`` first removes whatever an earlier run left behind.

``python registries.py down [--config ...] [--workdir DIR]`` removes all of it again.

Only one harness can run on a machine at a time (the ports are fixed): hack/integration.sh
holds ``flock /tmp/dockyard-it.lock`` around up, the tests and down, and tells this script
so with ``DOCKYARD_IT_LOCK_HELD=1``. Run by hand, ``up`` and ``down`` refuse to touch a
harness while someone else holds that lock; to keep it for a session of your own::

    flock /tmp/dockyard-it.lock env DOCKYARD_IT_LOCK_HELD=1 sh -c 'python registries.py up ...; ...; python registries.py down'
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import typing as t
import urllib.error
import urllib.request

import bcrypt
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pki import make_pki  # noqa: E402 pylint: disable=wrong-import-position

__all__ = ["up", "down", "main"]

HARNESS_DIR = os.path.dirname(os.path.abspath(__file__))
IMAGE = os.environ.get("DOCKYARD_IT_IMAGE", "registry:2")
PREFIX = "dockyard-it-"
LABEL = "dockyard.test=1"
CERTS_D = os.environ.get("DOCKYARD_IT_CERTS_D", "/etc/docker/certs.d")

TOKEN_SERVICE = "dockyard-it-registry"
TOKEN_ISSUER = "dockyard-it-token-issuer"
PORT_TOKEN_SERVER = 5205
PORT_FAULTY = 5206
PORT_FAULTY_BACKEND = 5216
PORT_MOTO = 5290
PORT_ACR = 5208
# Azure Container Registry's Azure AD flow: the "acr" registry's realm is the token server's
# /oauth2/token and its service is its own address, as on ACR; /oauth2/exchange takes stand-in
# Azure AD tokens of this tenant (tokenserver.py aad-token mints them).
ACR_SERVICE = "localhost:%d" % PORT_ACR
ACR_TENANT = "7c1d2f3e-4b5a-4c6d-8e7f-90a1b2c3d4e5"

# name, host port, TLS, auth (None | "htpasswd" | "token"), deletion enabled
REGISTRIES = [
    ("plain", 5201, False, None, True),
    ("tls-noauth", 5202, True, None, True),
    ("basic", 5203, True, "htpasswd", True),
    ("token", 5204, True, "token", True),
    ("faulty-backend", PORT_FAULTY_BACKEND, False, None, True),
    ("nodelete", 5207, False, None, False),
    ("acr", PORT_ACR, True, "acr", True),
]


def log(message: str) -> None:
    sys.stderr.write("[harness] %s\n" % message)
    sys.stderr.flush()


def docker(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError("docker %s failed: %s" % (" ".join(args), proc.stderr.strip()))
    return proc.stdout


def write_file(path: str, data: str, mode: int = 0o644) -> None:
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def service_account_key() -> str:
    """A Google service account key file's JSON, with a freshly generated RSA key."""
    from cryptography.hazmat.primitives import serialization  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives.asymmetric import rsa  # pylint: disable=import-outside-toplevel
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode("ascii")
    return json.dumps({
        "type": "service_account", "project_id": "dockyard-it", "private_key_id": secrets.token_hex(20),
        "private_key": pem, "client_email": "pusher@dockyard-it.iam.gserviceaccount.com",
        "client_id": str(secrets.randbelow(10 ** 20)), "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
    }, indent=2) + "\n"


def registry_config(name: str, tls: bool, auth: str | None, delete: bool) -> dict:
    config: dict = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text", "fields": {"service": PREFIX + name}},
        "storage": {
            "filesystem": {"rootdirectory": "/var/lib/registry"},
            "delete": {"enabled": delete},
            "cache": {"blobdescriptor": "inmemory"},
        },
        "http": {
            "addr": ":5000",
            "secret": secrets.token_hex(16),
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
    }
    if tls:
        config["http"]["tls"] = {"certificate": "/certs/server.crt", "key": "/certs/server.key"}
    if auth == "htpasswd":
        config["auth"] = {"htpasswd": {"realm": "dockyard-it-basic", "path": "/auth/htpasswd"}}
    elif auth == "token":
        config["auth"] = {"token": {
            "realm": "https://localhost:%d/token" % PORT_TOKEN_SERVER,
            "service": TOKEN_SERVICE,
            "issuer": TOKEN_ISSUER,
            "rootcertbundle": "/certs/ca.crt",
        }}
    elif auth == "acr":
        config["auth"] = {"token": {
            "realm": "https://localhost:%d/oauth2/token" % PORT_TOKEN_SERVER,
            "service": ACR_SERVICE,
            "issuer": TOKEN_ISSUER,
            "rootcertbundle": "/certs/ca.crt",
        }}
    return config


# ---- background processes ----------------------------------------------------------------

def _pid_file(workdir: str, name: str) -> str:
    return os.path.join(workdir, "run", name + ".pid")


def start_process(workdir: str, name: str, argv: list[str]) -> int:
    os.makedirs(os.path.join(workdir, "run"), exist_ok=True)
    os.makedirs(os.path.join(workdir, "logs"), exist_ok=True)
    log_path = os.path.join(workdir, "logs", name + ".log")
    with open(log_path, "wb") as log_file, open(os.devnull, "rb") as devnull:
        # A session of its own: down() ends exactly this process group and nothing else.
        proc = subprocess.Popen(  # pylint: disable=consider-using-with
            argv, stdin=devnull, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
        )
    write_file(_pid_file(workdir, name), "%d\n" % proc.pid)
    return proc.pid


def stop_process(workdir: str, name: str) -> None:
    path = _pid_file(workdir, name)
    try:
        with open(path, encoding="utf-8") as handle:
            pid = int(handle.read().strip())
    except (OSError, ValueError):
        return
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            cmdline = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        cmdline = ""
    # A recycled pid belongs to someone else: only signal what we started.
    if cmdline and (name in cmdline or "moto_server" in cmdline):
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        for _i in range(50):
            if not os.path.exists("/proc/%d" % pid) or _is_zombie(pid):
                break
            time.sleep(0.1)
        else:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    os.unlink(path)


def _is_zombie(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid, encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


# ---- readiness -----------------------------------------------------------------------------

def wait_http(url: str, ca_cert: str | None, accept: tuple[int, ...], what: str, timeout: float = 60) -> None:
    context = ssl.create_default_context(cafile=ca_cert) if url.startswith("https") else None
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5, context=context) as response:  # nosec B310
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
            time.sleep(0.2)
            continue
        if status in accept:
            return
        last = "HTTP %d" % status
        time.sleep(0.2)
    raise RuntimeError("%s did not answer %s within %ds (last: %s)" % (what, url, timeout, last))


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# ---- up / down -----------------------------------------------------------------------------

def _state_path(workdir: str) -> str:
    return os.path.join(workdir, "state.json")


def remove_containers(log_dir: str | None = None) -> None:
    names = docker("ps", "-a", "--format", "{{.Names}}", "--filter", "label=" + LABEL,
                   "--filter", "name=^" + PREFIX).split()
    if not names:
        return
    if log_dir:
        # Keep what the registries said: the containers (and their logs) go now.
        os.makedirs(log_dir, exist_ok=True)
        for name in names:
            proc = subprocess.run(["docker", "logs", name], capture_output=True, check=False)
            with open(os.path.join(log_dir, name[len(PREFIX):] + ".log"), "wb") as handle:
                handle.write(proc.stdout + proc.stderr)
    docker("rm", "-f", "-v", *names)


def down(workdir: str, config_path: str | None = None) -> None:
    for name in ("faultproxy", "tokenserver", "moto"):
        stop_process(workdir, name)
    remove_containers(os.path.join(workdir, "logs") if os.path.isdir(workdir) else None)
    try:
        with open(_state_path(workdir), encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        state = {}
    for directory in state.get("certs_d", []):
        shutil.rmtree(directory, ignore_errors=True)
    if os.path.exists(_state_path(workdir)):
        os.unlink(_state_path(workdir))
    if config_path and os.path.exists(config_path):
        os.unlink(config_path)


def up(workdir: str, config_path: str) -> dict:
    started = time.monotonic()
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, mode=0o755, exist_ok=True)
    down(workdir)
    busy = [str(p) for p in [r[1] for r in REGISTRIES] + [PORT_TOKEN_SERVER, PORT_FAULTY, PORT_MOTO]
            if not port_free(p)]
    if busy:
        raise RuntimeError("ports already in use (another harness or test still running?): %s" % ", ".join(busy))

    pki = make_pki(os.path.join(workdir, "ca"))
    state: dict = {"certs_d": []}

    # Users: htpasswd (bcrypt cost 5, as `htpasswd -B` writes it) and the token server's users.
    passwords = {
        "itest": secrets.token_urlsafe(12),
        "tokenuser": secrets.token_urlsafe(12),
        "reader": secrets.token_urlsafe(12),
    }
    auth_dir = os.path.join(workdir, "auth")
    os.makedirs(auth_dir, exist_ok=True)
    hashed = bcrypt.hashpw(passwords["itest"].encode(), bcrypt.gensalt(rounds=5)).decode()
    write_file(os.path.join(auth_dir, "htpasswd"), "itest:%s\n" % hashed.replace("$2b$", "$2y$", 1))
    # Google's two registry logins without the SDK, as the token registry's users: _json_key with a
    # service account key (a fresh RSA key, never a real account) and oauth2accesstoken with a token.
    gcr_key_path = os.path.join(auth_dir, "gcr-service-account.json")
    write_file(gcr_key_path, service_account_key(), 0o600)
    with open(gcr_key_path, encoding="utf-8") as handle:
        gcr_key = handle.read().strip()
    gcr_access_token = "ya29." + secrets.token_urlsafe(48)
    write_file(os.path.join(auth_dir, "token-users.json"), json.dumps({
        "tokenuser": {"password": passwords["tokenuser"], "access": "all"},
        "reader": {"password": passwords["reader"], "access": "pull"},
        "_json_key": {"password": gcr_key, "access": "all"},
        "oauth2accesstoken": {"password": gcr_access_token, "access": "all"},
    }, indent=2), 0o600)

    aad_key = os.path.join(auth_dir, "aad.key")
    write_file(aad_key, secrets.token_hex(32) + "\n", 0o600)

    # The token server first: the token registry's /v2/ check does not need it, but tests do.
    start_process(workdir, "tokenserver", [
        sys.executable, os.path.join(HARNESS_DIR, "tokenserver.py"),
        "--users", os.path.join(auth_dir, "token-users.json"), "--port", str(PORT_TOKEN_SERVER),
        "--cert", pki.server_cert, "--key", pki.server_key,
        "--signer-cert", pki.signer_cert, "--signer-key", pki.signer_key, "--issuer", TOKEN_ISSUER,
        "--aad-key", aad_key, "--aad-service", ACR_SERVICE,
    ])

    for name, port, tls, auth, delete in REGISTRIES:
        config_dir = os.path.join(workdir, "registries", name)
        os.makedirs(config_dir, exist_ok=True)
        write_file(os.path.join(config_dir, "config.yml"),
                   yaml.safe_dump(registry_config(name, tls, auth, delete), sort_keys=False))
        argv = ["run", "-d", "--name", PREFIX + name, "--label", LABEL,
                "--label", "dockyard.test.owner=harness",
                "-p", "127.0.0.1:%d:5000" % port,
                "-v", "%s:/etc/docker/registry:ro" % config_dir]
        if tls or auth in ("token", "acr"):
            argv += ["-v", "%s:/certs:ro" % pki.directory]
        if auth == "htpasswd":
            argv += ["-v", "%s:/auth:ro" % auth_dir]
        docker(*argv, IMAGE)

    start_process(workdir, "faultproxy", [
        sys.executable, os.path.join(HARNESS_DIR, "faultproxy.py"),
        "--port", str(PORT_FAULTY), "--upstream", "127.0.0.1:%d" % PORT_FAULTY_BACKEND,
    ])
    moto = os.path.join(os.path.dirname(sys.executable), "moto_server")
    if not os.path.exists(moto):
        moto = shutil.which("moto_server") or "moto_server"
    start_process(workdir, "moto", [moto, "-H", "127.0.0.1", "-p", str(PORT_MOTO)])

    # The docker CLI (its daemon, really) trusts a registry's CA from certs.d/<host:port>/.
    for _name, port, tls, _auth, _delete in REGISTRIES:
        if not tls:
            continue
        for host in ("localhost", "127.0.0.1"):
            directory = os.path.join(CERTS_D, "%s:%d" % (host, port))
            try:
                os.makedirs(directory, exist_ok=True)
                shutil.copyfile(pki.ca_cert, os.path.join(directory, "ca.crt"))
            except OSError as exc:
                log("cannot install the CA in %s (%s); the docker CLI will not trust it" % (directory, exc))
                continue
            state["certs_d"].append(directory)
    write_file(_state_path(workdir), json.dumps(state, indent=2))

    for name, port, tls, _auth, _delete in REGISTRIES:
        scheme = "https" if tls else "http"
        host = "localhost" if tls else "127.0.0.1"
        wait_http("%s://%s:%d/v2/" % (scheme, host, port), pki.ca_cert, (200, 401), "registry " + name)
    wait_http("https://localhost:%d/token" % PORT_TOKEN_SERVER, pki.ca_cert, (200,), "token server")
    wait_http("http://127.0.0.1:%d/v2/" % PORT_FAULTY, None, (200,), "fault proxy")
    wait_http("http://127.0.0.1:%d/moto-api/" % PORT_MOTO, None, (200,), "moto server")

    variables = {
        "dockyard_it_dir": workdir,
        "dockyard_ca_cert": pki.ca_cert,
        "registry_plain": "http://127.0.0.1:5201",
        "registry_tls_noauth": "localhost:5202",
        "registry_basic": "localhost:5203",
        "registry_basic_user": "itest",
        "registry_basic_password": passwords["itest"],
        "registry_token": "localhost:5204",
        "registry_token_user": "tokenuser",
        "registry_token_password": passwords["tokenuser"],
        "registry_token_readonly_user": "reader",
        "registry_token_readonly_password": passwords["reader"],
        "registry_token_service": TOKEN_SERVICE,
        "registry_token_issuer": TOKEN_ISSUER,
        "token_server_url": "https://localhost:%d/token" % PORT_TOKEN_SERVER,
        "registry_faulty": "http://127.0.0.1:%d" % PORT_FAULTY,
        "registry_faulty_admin": "http://127.0.0.1:%d/__faults__" % PORT_FAULTY,
        "registry_faulty_backend": "http://127.0.0.1:%d" % PORT_FAULTY_BACKEND,
        "registry_nodelete": "http://127.0.0.1:5207",
        "moto_endpoint": "http://127.0.0.1:%d" % PORT_MOTO,
        "gcr_service_account_key": gcr_key_path,
        "gcr_access_token": gcr_access_token,
        "registry_acr": ACR_SERVICE,
        "acr_tenant": ACR_TENANT,
        "acr_aad_key": aad_key,
        "acr_token_url": "https://localhost:%d/oauth2/token" % PORT_TOKEN_SERVER,
        "dockyard_it_python": sys.executable,
        "dockyard_it_harness_dir": HARNESS_DIR,
        "dockyard_it_corpus": os.path.join(HARNESS_DIR, "corpus.py"),
    }
    text = "# Written by tests/integration/harness/registries.py up; removed by down.\n"
    text += yaml.safe_dump(variables, sort_keys=False)
    config_dir = os.path.dirname(os.path.abspath(config_path))
    os.makedirs(config_dir, exist_ok=True)
    write_file(config_path, text, 0o600)
    write_file(os.path.join(workdir, "integration_config.yml"), text, 0o600)
    log("up in %.1fs: %s" % (time.monotonic() - started, config_path))
    return variables


def lock_or_fail() -> t.Any:
    """Fail when another integration run holds the harness lock (see the module doc)."""
    if os.environ.get("DOCKYARD_IT_LOCK_HELD") == "1":
        return None
    path = os.environ.get("DOCKYARD_IT_LOCK", "/tmp/dockyard-it.lock")
    handle = open(path, "a", encoding="utf-8")  # pylint: disable=consider-using-with
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise RuntimeError("another integration run holds %s; wait for it (flock %s ...)" % (path, path)) from None
    return handle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="integration test registries")
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("--config", help="integration_config.yml to write (up) or remove (down)")
    parser.add_argument("--workdir", default=os.environ.get("DOCKYARD_IT_DIR", "/tmp/dockyard-it"))
    args = parser.parse_args(argv)
    try:
        lock = lock_or_fail()
    except (RuntimeError, OSError) as exc:
        log("%s failed: %s" % (args.action, exc))
        return 1
    try:
        return _run(parser, args)
    finally:
        if lock is not None:
            lock.close()


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.action == "up":
        if not args.config:
            parser.error("up needs --config")
        try:
            up(args.workdir, args.config)
        except (RuntimeError, OSError) as exc:
            log("up failed: %s" % exc)
            log("logs: %s/logs/, containers: docker logs %s<name>" % (args.workdir, PREFIX))
            return 1
    else:
        down(os.path.abspath(args.workdir), args.config)
        log("down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
