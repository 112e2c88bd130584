"""A tiny Chrome DevTools Protocol driver for headless Chromium, over --remote-debugging-pipe.

Only the standard library: Chromium reads JSON commands, each ended by a NUL byte, from file
descriptor 3 and writes answers and events the same way to descriptor 4. One page target is
attached in flat mode; events are kept so that a test can ask what happened during a load.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from typing import Any

__all__ = ["Browser", "BrowserError", "find_chromium"]

CANDIDATES = ("chromium-headless-shell", "chromium", "chromium-browser")


class BrowserError(Exception):
    """The browser failed, answered a command with an error, or did not answer in time."""


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    def __init__(self, binary: str, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="dockyard-docs-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # The child's ends move above 9 first, so that neither is already 3 or 4.
        to_browser_r, from_browser_w = self._above_9(to_browser_r), self._above_9(from_browser_w)
        args = [binary, "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
                "--no-first-run", "--disable-extensions", "--disable-background-networking",
                "--user-data-dir=" + self.profile, "about:blank"]
        # Chromium expects the pipe on fds 3 (commands in) and 4 (answers out): a shell puts the
        # two ends there and execs it (bash: dash takes no fd numbers above 9).
        redirect = 'exec "$@" 3<&%d 4>&%d %d<&- %d>&-' % (to_browser_r, from_browser_w, to_browser_r, from_browser_w)
        self.proc = subprocess.Popen(["/bin/bash", "-c", redirect, "bash"] + args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     pass_fds=(to_browser_r, from_browser_w))
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        target = self.command("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.command("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.command(domain + ".enable", session=True)

    @staticmethod
    def _above_9(fd: int) -> int:
        moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(fd)
        return moved

    # -- the wire --------------------------------------------------------------------------
    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserError("Chromium did not answer within %.0f s" % self.timeout)
            ready = select.select([self._from_browser], [], [], remaining)[0]
            if not ready:
                continue
            chunk = os.read(self._from_browser, 65536)
            if not chunk:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise BrowserError("Chromium closed the DevTools pipe (exit %s): %s" % (self.proc.poll(), err[-2000:]))
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def command(self, method: str, params: dict[str, Any] | None = None, session: bool = False) -> dict[str, Any]:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            answer = self._read_message(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise BrowserError("%s failed: %s" % (method, answer["error"]))
                return answer.get("result", {})
            if "method" in answer:
                self.events.append(answer)

    def wait_for_event(self, method: str, since: int) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while True:
            for event in self.events[since:]:
                if event["method"] == method:
                    return event
            message = self._read_message(deadline)
            if "method" in message:
                self.events.append(message)

    # -- what the tests use ----------------------------------------------------------------
    def load(self, url: str) -> list[dict[str, Any]]:
        """Navigate to ``url``, wait for its load event, return the events seen meanwhile."""
        start = len(self.events)
        result = self.command("Page.navigate", {"url": url}, session=True)
        if result.get("errorText"):
            raise BrowserError("%s did not load: %s" % (url, result["errorText"]))
        self.wait_for_event("Page.loadEventFired", start)
        return self.events[start:]

    def evaluate(self, expression: str) -> Any:
        result = self.command("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                   "awaitPromise": True}, session=True)
        if "exceptionDetails" in result:
            raise BrowserError("JavaScript failed: %s" % result["exceptionDetails"])
        return result["result"].get("value")

    def close(self) -> None:
        try:
            self.command("Browser.close")
        except (BrowserError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.proc.stderr:
            self.proc.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)
