# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A scripted stand-in for the client's transport, plus a fake clock.

Each expected exchange is (method, URL prefix) -> response or exception, consumed in
order; a request that does not match the next expectation fails the test with both
sides shown. Every request is recorded with its headers and its fully read body.
"""

from __future__ import annotations

import http.client
import io
import json
from typing import List, Optional


class FakeResponse:
    def __init__(self, status: int, headers: Optional[dict] = None, body: bytes = b"",
                 cut_after: Optional[int] = None) -> None:
        self.status = status
        self._headers = {k.lower(): v for k, v in (headers or {}).items()}
        self._body = io.BytesIO(body)
        self._cut_after = cut_after
        self.closed = False

    def getheader(self, name: str, default: Optional[str] = None) -> Optional[str]:
        return self._headers.get(name.lower(), default)

    def read(self, amt: Optional[int] = None) -> bytes:
        if self._cut_after is not None:
            position = self._body.tell()
            if position >= self._cut_after:
                raise http.client.IncompleteRead(b"", 1)
            limit = self._cut_after - position
            amt = limit if amt is None or amt < 0 else min(amt, limit)
        return self._body.read() if amt is None or amt < 0 else self._body.read(amt)

    def close(self) -> None:
        self.closed = True


def json_response(status: int, data, headers: Optional[dict] = None) -> FakeResponse:
    body = json.dumps(data).encode("utf-8")
    all_headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    all_headers.update(headers or {})
    return FakeResponse(status, all_headers, body)


def registry_error(status: int, code: str, message: str, headers: Optional[dict] = None) -> FakeResponse:
    return json_response(status, {"errors": [{"code": code, "message": message, "detail": None}]}, headers)


class Request:
    def __init__(self, method: str, url: str, headers: dict, body: bytes) -> None:
        self.method = method
        self.url = url
        self.headers = dict(headers)
        self.body = body

    def header(self, name: str) -> Optional[str]:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    def __repr__(self) -> str:
        return "%s %s" % (self.method, self.url)


class FakeTransport:
    def __init__(self) -> None:
        self.script = []  # type: List[tuple]
        self.requests = []  # type: List[Request]
        self.responses = []  # type: List[FakeResponse]

    def expect(self, method: str, url_prefix: str, answer) -> "FakeTransport":
        """``answer`` is a FakeResponse, an exception instance, or a callable(Request) -> either."""
        self.script.append((method, url_prefix, answer))
        return self

    def request(self, method, url, headers, body, timeout):
        assert self.script, "unexpected request %s %s (script exhausted)" % (method, url)
        want_method, want_prefix, answer = self.script.pop(0)
        assert method == want_method and url.startswith(want_prefix), (
            "expected %s %s..., got %s %s" % (want_method, want_prefix, method, url))
        request = Request(method, url, headers, b"")
        self.requests.append(request)
        # the body is consumed as a real transport would send it; a failing source stream
        # raises from here, after the request was started
        if isinstance(body, bytes):
            request.body = body
        elif body is not None:
            chunks = []
            while True:
                chunk = body.read(65536)
                if not chunk:
                    break
                chunks.append(chunk)
            request.body = b"".join(chunks)
        if callable(answer) and not isinstance(answer, FakeResponse):
            answer = answer(request)
        if isinstance(answer, BaseException):
            raise answer
        self.responses.append(answer)
        return answer

    def close(self) -> None:
        pass

    def done(self) -> bool:
        return not self.script


class FakeClock:
    """Monotonic and wall clock in one; ``sleep`` advances it and records the waits."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps = []  # type: List[float]

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds
