# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Downloads one blob from a registry across a restart of its container and says whether it arrived
whole. Raw HTTP on a socket, independent of the collection.

It reads the first --first bytes of the body, writes --ready (the request is in flight), then reads
nothing until Docker sends the container SIGTERM (the "kill" event with signal 15 in `docker events`),
and then reads the rest at full speed. So the transfer is in flight when the registry is told to stop,
whatever the timing of the play that restarts it: no sleeps, no timed assertions.

The registry is reached on its container address (no docker-proxy and its buffers in between) with a
small receive buffer, so that at SIGTERM most of the blob is still in the registry, not in socket
buffers: a registry that does not drain dies with its connections and the body comes up short.

Prints JSON: status, content_length, bytes (body bytes received), bytes_at_sigterm, sha256, complete
(every byte, and the digest asked for), sigterm (seen), error (why the body stopped early, or null).

Usage: slow_pull.py --host IP --port 5000 --path /v2/REPO/blobs/DIGEST --digest sha256:HEX
                    --container NAME --ready FILE [--first BYTES] [--timeout SECONDS]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import select
import socket
import subprocess
import sys
import time
import typing as t

CHUNK = 65536


def wait_for_sigterm(events: subprocess.Popen, timeout: float) -> bool:
    """True once `docker events` reports a SIGTERM for the container; False after timeout."""
    deadline = time.monotonic() + timeout
    pending = b""
    stream = t.cast(t.IO[bytes], events.stdout)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        if not select.select([stream], [], [], remaining)[0]:
            return False
        chunk = os.read(stream.fileno(), CHUNK)
        if not chunk:
            return False  # docker events ended
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            attributes = (event.get("Actor") or {}).get("Attributes") or {}
            if event.get("Action") == "kill" and attributes.get("signal") == "15":
                return True


def read_head(sock: socket.socket) -> t.Tuple[int, t.Dict[str, str], bytes]:
    """The status code, the headers (lower-case names) and the body bytes read with them."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(CHUNK)
        if not chunk:
            raise ConnectionError("the connection closed before the response headers ended")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("iso-8859-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _sep, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def write_atomically(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--path", required=True)
    parser.add_argument("--digest", required=True)
    parser.add_argument("--container", required=True)
    parser.add_argument("--ready", required=True)
    parser.add_argument("--first", type=int, default=1 << 20)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()

    result: t.Dict[str, t.Any] = {"status": None, "content_length": None, "bytes": 0, "bytes_at_sigterm": None,
                                  "sha256": None, "complete": False, "sigterm": False, "error": None}
    # Started first, and replaying from now on: the SIGTERM cannot be missed.
    events = subprocess.Popen(
        ["docker", "events", "--since", "%.6f" % time.time(), "--filter", "container=" + args.container,
         "--filter", "event=kill", "--format", "{{json .}}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    digest = hashlib.sha256()
    try:
        # Before connect, so that the window offered to the registry stays small.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CHUNK)
        sock.settimeout(args.timeout)
        sock.connect((args.host, args.port))
        sock.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: */*\r\nConnection: close\r\n\r\n"
                      % (args.path, args.host, args.port)).encode("ascii"))
        status, headers, body = read_head(sock)
        result["status"] = status
        if status != 200:
            raise ConnectionError("the registry answered %d, not 200" % status)
        length = int(headers["content-length"])
        result["content_length"] = length
        received = len(body)
        digest.update(body)
        while received < min(args.first, length):
            chunk = sock.recv(min(CHUNK, args.first - received))
            if not chunk:
                raise ConnectionError("the body ended after %d of %d bytes, before the restart" % (received, length))
            received += len(chunk)
            digest.update(chunk)
        result["bytes"] = received
        write_atomically(args.ready, json.dumps({"bytes": received, "content_length": length}))

        result["sigterm"] = wait_for_sigterm(events, args.timeout)
        result["bytes_at_sigterm"] = received
        if not result["sigterm"]:
            raise TimeoutError("no SIGTERM for %s within %s s" % (args.container, args.timeout))
        sock.settimeout(30.0)  # a registry gone without a FIN or RST
        while received < length:
            chunk = sock.recv(CHUNK)
            if not chunk:
                raise ConnectionError("the body ended after %d of %d bytes" % (received, length))
            received += len(chunk)
            result["bytes"] = received
            digest.update(chunk)
    except (OSError, ValueError, KeyError, IndexError) as exc:
        result["error"] = "%s: %s" % (type(exc).__name__, exc)
        if not os.path.exists(args.ready):  # failed before the restart: let the play go on to report it
            write_atomically(args.ready, json.dumps({"error": result["error"]}))
    finally:
        sock.close()
        events.kill()
        events.wait()
    result["sha256"] = "sha256:" + digest.hexdigest()
    result["complete"] = (result["error"] is None and result["bytes"] == result["content_length"]
                          and result["sha256"] == args.digest)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
