# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Empty the Redis database a registry keeps its blob descriptors in (FLUSHDB), for the
garbage collection entry point of dockyard.registry.registry: after a collection, the
descriptors of deleted blobs would otherwise keep answering (HEAD 200, skipped re-pushes)
on every replica, restarted or not. Standard library only (RESP over a socket).

Reads JSON from stdin - {"addr": "host:port", "password": "...", "db": N, "timeout": S} -
so that the password is on no command line. Prints JSON: {"addr", "db", "keys_before"};
exits 1 with {"error": ...} (never the password) when Redis refuses or cannot be reached.
"""
from __future__ import annotations

import json
import socket
import sys


class RedisFailure(Exception):
    pass


def command(sock: socket.socket, reader, *args: str) -> str:
    parts = ["*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode("utf-8")
        parts.append("$%d\r\n" % len(data))
        parts.append(data.decode("utf-8") + "\r\n")
    sock.sendall("".join(parts).encode("utf-8"))
    line = reader.readline()
    if not line:
        raise RedisFailure("Redis closed the connection after %s" % args[0])
    reply = line.decode("utf-8", "replace").rstrip("\r\n")
    if reply.startswith("-"):
        raise RedisFailure("Redis refused %s: %s" % (args[0], reply[1:]))
    return reply[1:]


def main() -> int:
    request = json.load(sys.stdin)
    addr = request["addr"]
    host, _sep, port = addr.rpartition(":")
    host = host.strip("[]")
    db = int(request.get("db") or 0)
    try:
        sock = socket.create_connection((host, int(port)), timeout=float(request.get("timeout") or 10))
    except OSError as exc:
        json.dump({"error": "cannot reach Redis at %s: %s" % (addr, exc)}, sys.stdout)
        return 1
    try:
        reader = sock.makefile("rb")
        if request.get("password"):
            command(sock, reader, "AUTH", request["password"])
        command(sock, reader, "SELECT", str(db))
        keys = int(command(sock, reader, "DBSIZE"))
        command(sock, reader, "FLUSHDB")
    except (OSError, RedisFailure, ValueError) as exc:
        json.dump({"error": "Redis at %s, db %d: %s" % (addr, db, exc)}, sys.stdout)
        return 1
    finally:
        sock.close()
    json.dump({"addr": addr, "db": db, "keys_before": keys}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
