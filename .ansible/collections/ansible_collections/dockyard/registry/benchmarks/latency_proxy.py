# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A loopback TCP proxy that adds WAN latency, for the ``wan`` benchmark scenario.

Each ``--route LISTEN:TARGET`` listens on 127.0.0.1:LISTEN and forwards to 127.0.0.1:TARGET:

* every byte is delivered ``--delay`` seconds (default 0.025) after it was read, in each
  direction: a request and its answer gain 2 x delay (one round trip), however the bytes are
  split, while a stream's throughput is not limited (a delay line, not a bandwidth cap);
* a new connection waits one more round trip (2 x delay) before its first byte is forwarded,
  as a TCP handshake to a remote host costs;
* bounded: at most ``--buffer`` bytes (default 4 MiB) wait in each direction of a connection;
  the reader stops reading until the writer caught up.

Counts per route: connections, HTTP requests (parsed from the client's byte stream: request
heads, ``Content-Length`` and chunked bodies), bytes each way. ``--control PORT`` answers every
connection with those counts as JSON (``{"5320": {"connections": .., "requests": ..}, ...}``)
and closes it. Loopback only: it never listens on or connects to anything else.

    python benchmarks/latency_proxy.py --route 5320:5310 --route 5321:5311 --control 5329
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import signal
import sys
import time

HOST = "127.0.0.1"
CHUNK = 64 * 1024


class Counts:
    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0
        self.bytes_up = 0
        self.bytes_down = 0

    def as_dict(self) -> dict:
        return {"connections": self.connections, "requests": self.requests,
                "bytes_up": self.bytes_up, "bytes_down": self.bytes_down}


class RequestCounter:
    """Counts HTTP/1.1 requests in a client's byte stream: heads, then bodies skipped by
    Content-Length or chunked encoding."""

    def __init__(self, counts: Counts) -> None:
        self.counts = counts
        self.buffer = b""
        self.state = "head"
        self.left = 0

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while self.buffer:
            if self.state == "head":
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buffer) > 256 * 1024:   # not HTTP: stop counting
                        self.state, self.buffer = "opaque", b""
                    return
                head, self.buffer = self.buffer[:end], self.buffer[end + 4:]
                self.counts.requests += 1
                headers = {}
                for line in head.split(b"\r\n")[1:]:
                    name, _sep, value = line.partition(b":")
                    headers[name.strip().lower()] = value.strip().lower()
                if b"chunked" in headers.get(b"transfer-encoding", b""):
                    self.state = "chunk-size"
                elif int(headers.get(b"content-length", b"0") or 0):
                    self.state, self.left = "body", int(headers[b"content-length"])
            elif self.state == "body":
                taken = min(self.left, len(self.buffer))
                self.buffer = self.buffer[taken:]
                self.left -= taken
                if self.left:
                    return
                self.state = "head"
            elif self.state in ("chunk-size", "trailer"):
                end = self.buffer.find(b"\r\n")
                if end < 0:
                    return
                line, self.buffer = self.buffer[:end], self.buffer[end + 2:]
                if self.state == "trailer":
                    if not line:
                        self.state = "head"
                    continue
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.state = "trailer"
                else:
                    self.state, self.left = "chunk-data", size + 2   # the data and its CRLF
            elif self.state == "chunk-data":
                taken = min(self.left, len(self.buffer))
                self.buffer = self.buffer[taken:]
                self.left -= taken
                if self.left:
                    return
                self.state = "chunk-size"
            else:  # opaque
                self.buffer = b""
                return


class DelayLine:
    """Bytes from ``reader`` to ``writer``, each delivered ``delay`` after it was read."""

    def __init__(self, delay: float, limit: int) -> None:
        self.delay = delay
        self.limit = limit
        self.queue: collections.deque = collections.deque()
        self.queued = 0
        self.changed = asyncio.Event()
        self.closed = False

    async def pump_in(self, reader: asyncio.StreamReader, on_data) -> None:
        try:
            while True:
                while self.queued >= self.limit:
                    self.changed.clear()
                    await self.changed.wait()
                data = await reader.read(CHUNK)
                if not data:
                    break
                on_data(data)
                self.queue.append((time.monotonic() + self.delay, data))
                self.queued += len(data)
                self.changed.set()
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed = True
            self.changed.set()

    async def pump_out(self, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                if not self.queue:
                    if self.closed:
                        break
                    self.changed.clear()
                    await self.changed.wait()
                    continue
                due, data = self.queue[0]
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                self.queue.popleft()
                self.queued -= len(data)
                self.changed.set()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            try:
                writer.close()
            except (ConnectionError, OSError):
                pass


async def handle(client_reader, client_writer, target: int, counts: Counts, delay: float, limit: int) -> None:
    counts.connections += 1
    await asyncio.sleep(2 * delay)          # the extra round trip of a new connection
    try:
        server_reader, server_writer = await asyncio.open_connection(HOST, target)
    except OSError:
        client_writer.close()
        return
    up, down = DelayLine(delay, limit), DelayLine(delay, limit)
    counter = RequestCounter(counts)

    def seen_up(data: bytes) -> None:
        counts.bytes_up += len(data)
        counter.feed(data)

    def seen_down(data: bytes) -> None:
        counts.bytes_down += len(data)

    await asyncio.gather(up.pump_in(client_reader, seen_up), up.pump_out(server_writer),
                         down.pump_in(server_reader, seen_down), down.pump_out(client_writer))


async def serve(routes: list, control: int | None, delay: float, limit: int) -> None:
    counts = {}
    servers = []
    for listen, target in routes:
        counts[str(listen)] = Counts()
        servers.append(await asyncio.start_server(
            lambda r, w, t=target, c=counts[str(listen)]: handle(r, w, t, c, delay, limit), HOST, listen))

    async def report(_reader, writer) -> None:
        writer.write(json.dumps(dict((k, v.as_dict()) for k, v in counts.items())).encode())
        await writer.drain()
        writer.close()

    if control:
        servers.append(await asyncio.start_server(report, HOST, control))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sys.stderr.write("latency proxy: %s, %.0f ms each way\n"
                     % (", ".join("%d -> %d" % r for r in routes), delay * 1000))
    sys.stderr.flush()
    await stop.wait()
    for server in servers:
        server.close()


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--route", action="append", required=True, help="LISTEN:TARGET ports on 127.0.0.1")
    parser.add_argument("--delay", type=float, default=0.025, help="seconds added in each direction")
    parser.add_argument("--buffer", type=int, default=4 * 1024 * 1024, help="bytes in flight per direction")
    parser.add_argument("--control", type=int, help="port that answers with the counts as JSON")
    args = parser.parse_args(argv)
    routes = []
    for route in args.route:
        listen, _sep, target = route.partition(":")
        routes.append((int(listen), int(target)))
    asyncio.run(serve(routes, args.control, args.delay, args.buffer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
