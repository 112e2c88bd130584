# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The cluster test's own services, each started once, all on docker0 (172.17.0.1).

    python services.py up HARNESS_DIR WORKDIR VARS_FILE
    python services.py down HARNESS_DIR WORKDIR

* moto_server with IAM authentication (5990): an IAM user with an access key and an S3
  policy, and the bucket; any other key is refused (so wrong credentials can be tested);
* redis-server with a password and ``maxmemory-policy allkeys-lru`` (6399);
* a token server (5995, the harness's tokenserver.py) and an upstream registry container
  with token auth and TLS (5996), both with a test CA whose server certificate names
  172.17.0.1, and one image pushed to it (for the pull-through cache).

The registry containers sit on the default bridge and cannot reach the host's 127.0.0.1,
hence docker0. VARS_FILE (0600) gets the secrets and addresses for the playbooks.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import typing as t
import urllib.error
import urllib.request

HOST = "172.17.0.1"
PORT_MOTO = 5990
PORT_REDIS = 6399
PORT_TOKEN = 5995
PORT_UPSTREAM = 5996
UPSTREAM = "i9-upstream"
ISSUER = "i9-token-issuer"
SERVICE = "i9-upstream"
BUCKET = "i9-registry"


def _env() -> dict:
    env = dict(os.environ)
    env.pop("AWS_CA_BUNDLE", None)  # moto and boto3 must not try to load it
    return env


def _start(workdir: str, name: str, argv: t.List[str], env: t.Optional[dict] = None) -> None:
    log = open(os.path.join(workdir, name + ".log"), "ab")  # pylint: disable=consider-using-with
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env or _env(),
                            start_new_session=True)
    with open(os.path.join(workdir, name + ".pid"), "w", encoding="ascii") as handle:
        handle.write(str(proc.pid))


def _stop(workdir: str, name: str) -> None:
    path = os.path.join(workdir, name + ".pid")
    try:
        with open(path, encoding="ascii") as handle:
            pid = int(handle.read().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
        for _attempt in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass  # redis-server removes its own


def _wait(check: t.Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("%s did not come up within %ds" % (what, timeout))
        time.sleep(0.3)


def _http_ok(url: str, context: t.Any = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3, context=context):  # nosec - test endpoints
            return True
    except urllib.error.HTTPError as exc:
        return exc.code in (401, 404)


def _redis_ping(password: str) -> bool:
    with socket.create_connection((HOST, PORT_REDIS), timeout=3) as sock:
        sock.sendall(("*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n*1\r\n$4\r\nPING\r\n" % (len(password), password)).encode())
        data = b""
        while data.count(b"\r\n") < 2:
            chunk = sock.recv(256)
            if not chunk:
                break
            data += chunk
    return data == b"+OK\r\n+PONG\r\n"


def up(harness: str, workdir: str, vars_file: str) -> None:
    sys.path.insert(0, harness)
    from pki import make_pki  # pylint: disable=import-outside-toplevel
    import boto3  # pylint: disable=import-outside-toplevel

    down(harness, workdir)
    os.makedirs(workdir, mode=0o700, exist_ok=True)
    for key in list(os.environ):
        if key.startswith("AWS_"):
            del os.environ[key]
    pki = make_pki(os.path.join(workdir, "pki"), extra_ips=[HOST], ca_name="i9 upstream test CA")
    redis_password = secrets.token_urlsafe(16)
    token_password = secrets.token_urlsafe(12)

    # moto: the first 4 requests are let through unauthenticated (they create the user,
    # its policy, its key and the bucket); every later request must be signed by that key.
    env = _env()
    env["INITIAL_NO_AUTH_ACTION_COUNT"] = "4"
    moto = os.path.join(os.path.dirname(sys.executable), "moto_server")
    _start(workdir, "moto", [moto, "-H", HOST, "-p", str(PORT_MOTO)], env)
    redis_dir = os.path.join(workdir, "redis")
    os.makedirs(redis_dir, exist_ok=True)
    subprocess.run(["redis-server", "--bind", HOST, "--port", str(PORT_REDIS), "--requirepass", redis_password,
                    "--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru", "--save", "", "--appendonly", "no",
                    "--dir", redis_dir, "--daemonize", "yes", "--pidfile", os.path.join(workdir, "redis.pid"),
                    "--logfile", os.path.join(workdir, "redis.log")], check=True, env=_env())
    users = os.path.join(workdir, "token-users.json")
    with open(os.open(users, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
        json.dump({"i9upstream": {"password": token_password, "access": "all"}}, handle)
    _start(workdir, "tokenserver", [sys.executable, os.path.join(harness, "tokenserver.py"), "--users", users,
                                    "--host", HOST, "--port", str(PORT_TOKEN), "--cert", pki.server_cert,
                                    "--key", pki.server_key, "--signer-cert", pki.signer_cert,
                                    "--signer-key", pki.signer_key, "--issuer", ISSUER])
    config_dir = os.path.join(workdir, "upstream")
    os.makedirs(config_dir, exist_ok=True)
    with open(os.path.join(config_dir, "config.yml"), "w", encoding="utf-8") as handle:
        json.dump({  # JSON is YAML
            "version": 0.1,
            "storage": {"filesystem": {"rootdirectory": "/var/lib/registry"}},
            "http": {"addr": ":5000", "secret": secrets.token_hex(16),
                     "tls": {"certificate": "/certs/server.crt", "key": "/certs/server.key"}},
            "auth": {"token": {"realm": "https://%s:%d/token" % (HOST, PORT_TOKEN), "service": SERVICE,
                               "issuer": ISSUER, "rootcertbundle": "/certs/ca.crt"}},
        }, handle)
    subprocess.run(["docker", "run", "-d", "--name", UPSTREAM, "--label", "dockyard.test=1",
                    "-p", "%s:%d:5000" % (HOST, PORT_UPSTREAM), "-v", "%s:/etc/docker/registry:ro" % config_dir,
                    "-v", "%s:/certs:ro" % pki.directory, "registry:2"], check=True, stdout=subprocess.DEVNULL)

    import ssl  # pylint: disable=import-outside-toplevel
    context = ssl.create_default_context(cafile=pki.ca_cert)
    _wait(lambda: _http_ok("http://%s:%d/moto-api/" % (HOST, PORT_MOTO)), "moto")
    _wait(lambda: _redis_ping(redis_password), "redis")
    _wait(lambda: _http_ok("https://%s:%d/token" % (HOST, PORT_TOKEN), context), "token server")
    _wait(lambda: _http_ok("https://%s:%d/v2/" % (HOST, PORT_UPSTREAM), context), "upstream registry")

    endpoint = "http://%s:%d" % (HOST, PORT_MOTO)
    anon = {"aws_access_key_id": "bootstrap", "aws_secret_access_key": "bootstrap", "region_name": "us-east-1"}
    iam = boto3.client("iam", endpoint_url=endpoint, **anon)
    iam.create_user(UserName="i9-registry")
    iam.put_user_policy(UserName="i9-registry", PolicyName="s3", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="i9-registry")["AccessKey"]
    boto3.client("s3", endpoint_url=endpoint, **anon).create_bucket(Bucket=BUCKET)
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key["AccessKeyId"],
                      aws_secret_access_key=key["SecretAccessKey"], region_name="us-east-1")
    s3.list_objects_v2(Bucket=BUCKET, MaxKeys=1)  # the key works; anything else is refused from now on

    # One image on the upstream, pushed through the token flow.
    push = subprocess.run([sys.executable, os.path.join(harness, "corpus.py"), "push",
                           "--registry", "%s:%d" % (HOST, PORT_UPSTREAM), "--ca-cert", pki.ca_cert,
                           "--username", "i9upstream", "--password-env", "I9_UPSTREAM_PASSWORD",
                           "--repo", "library/app", "--tags", "v1", "--seed", "91", "--layers", "2048", "65536"],
                          check=True, stdout=subprocess.PIPE, env=dict(_env(), I9_UPSTREAM_PASSWORD=token_password))
    digest = json.loads(push.stdout)["digest"]

    variables = {
        "i9_s3_endpoint": endpoint,
        "i9_s3_bucket": BUCKET,
        "i9_s3_access_key": key["AccessKeyId"],
        "i9_s3_secret_key": key["SecretAccessKey"],
        "i9_redis_address": "%s:%d" % (HOST, PORT_REDIS),
        "i9_redis_password": redis_password,
        "i9_password": secrets.token_urlsafe(12),
        "i9_upstream": "%s:%d" % (HOST, PORT_UPSTREAM),
        "i9_upstream_user": "i9upstream",
        "i9_upstream_password": token_password,
        "i9_upstream_ca": pki.ca_cert,
        "i9_upstream_digest": digest,
    }
    with open(os.open(vars_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
        json.dump(variables, handle, indent=2)


def down(_harness: str, workdir: str) -> None:
    subprocess.run(["docker", "rm", "-f", UPSTREAM], check=False, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    for name in ("tokenserver", "moto", "redis"):
        _stop(workdir, name)


def main() -> None:
    action, harness, workdir = sys.argv[1], sys.argv[2], sys.argv[3]
    if action == "up":
        up(harness, workdir, sys.argv[4])
    else:
        down(harness, workdir)


if __name__ == "__main__":
    main()
