# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""Programs on the managed node, started through ``AnsibleModule.run_command`` only.

A module starts programs through ``run_command`` (it sets the locale and environment Ansible
expects, closes file descriptors, and is what ansible-test's pylint ``ansible-bad-function``
accepts: ansible-core 2.21 rejects ``subprocess`` in module code). module_utils code does not
hold the AnsibleModule, and threading it through every backend would couple them to it:
``_module.run_backend`` binds the module of the run (one module per process) with :func:`bind`,
and :func:`run` starts programs with it.

:func:`run` never fails the module: ``handle_exceptions=False`` makes a program that cannot be
started raise ``OSError`` (``FileNotFoundError`` when it is missing) for the caller to turn into
a RegistryError, and a ``timeout`` kills the program and raises ``TimeoutError`` (an OSError
too), which ``run_command`` itself does not offer. A program that exits without reading its
input is answered by its output and exit code, as with ``Popen.communicate`` (EPIPE ignored).
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["bind", "run"]

_module: Any = None


class _Stdin:
    """A program's stdin pipe that, like ``Popen.communicate``, ignores EPIPE: a program may exit
    without reading all its input (a credential helper that fails at once), and what it printed
    and its exit code are the answer, not the broken pipe."""

    def __init__(self, pipe: Any) -> None:
        self._pipe = pipe

    def write(self, data: bytes) -> int:
        try:
            return self._pipe.write(data)
        except BrokenPipeError:
            return 0

    def close(self) -> None:
        try:
            self._pipe.close()
        except BrokenPipeError:
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipe, name)


def bind(module: Any) -> None:
    """Start programs with ``module.run_command`` from now on (called by ``run_backend``)."""
    global _module  # pylint: disable=global-statement
    _module = module


def run(argv: list, data: bytes | None = None, timeout: float | None = None) -> tuple:
    """Run ``argv`` (no shell, no ``~``/``$VAR`` expansion) and return ``(rc, stdout, stderr)`` as bytes.

    ``data`` is written to the program's standard input as is. With ``timeout`` (seconds) the
    program is killed when it runs longer, and ``TimeoutError`` is raised.
    """
    if _module is None:
        raise RuntimeError("_command.run() before _command.bind(module): run the backend through _module.run_backend")
    expired = threading.Event()
    timers = []

    def arm(proc: Any) -> None:
        if proc.stdin is not None:
            proc.stdin = _Stdin(proc.stdin)
        if timeout is None:
            return

        def kill() -> None:
            expired.set()
            try:
                proc.kill()
            except OSError:
                pass  # it ended on its own meanwhile

        timer = threading.Timer(timeout, kill)
        timer.daemon = True
        timers.append(timer)
        timer.start()

    try:
        rc, out, err = _module.run_command([str(a) for a in argv], data=data, binary_data=True, encoding=None,
                                           expand_user_and_vars=False, handle_exceptions=False,
                                           before_communicate_callback=arm)
    finally:
        for timer in timers:
            timer.cancel()
    if expired.is_set():
        raise TimeoutError("%s did not finish within %s s and was stopped" % (argv[0], timeout))
    return rc, out or b"", err or b""
