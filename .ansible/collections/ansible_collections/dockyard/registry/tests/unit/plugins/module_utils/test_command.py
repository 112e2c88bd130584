# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""_command: programs started through a real AnsibleModule's run_command (conftest binds one)."""

from __future__ import annotations

import sys

import pytest

from ansible_collections.dockyard.registry.plugins.module_utils import _command


def test_stdin_stdout_stderr_and_exit_code_as_bytes():
    code, out, err = _command.run(
        [sys.executable, "-c", "import sys; d = sys.stdin.buffer.read(); sys.stdout.buffer.write(d[::-1]);"
                               " sys.stderr.write('e'); sys.exit(3)"], data=b"abc")
    assert (code, out, err) == (3, b"cba", b"e")


def test_arguments_are_passed_as_given():
    # no shell, no ~ or $VAR expansion: a credential helper gets exactly the server URL
    code, out, err = _command.run([sys.executable, "-c", "import sys; print(sys.argv[1:])", "~/x", "$HOME", "a b"])
    assert code == 0
    assert out.decode().strip() == "['~/x', '$HOME', 'a b']"
    assert err == b""


def test_missing_program_raises_instead_of_failing_the_module():
    with pytest.raises(FileNotFoundError):
        _command.run(["/nonexistent/docker-credential-nope", "get"])


def test_timeout_stops_the_program():
    with pytest.raises(TimeoutError, match="did not finish within 0.5 s"):
        _command.run([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)


def test_unbound_is_a_programming_error():
    _command.bind(None)
    with pytest.raises(RuntimeError, match="run_backend"):
        _command.run(["true"])


def test_a_program_that_does_not_read_its_input_is_answered_by_its_output():
    # like a credential helper that fails at once: EPIPE on stdin must not hide what it said
    code, out, err = _command.run([sys.executable, "-c", "import sys; sys.stderr.write('locked'); sys.exit(1)"],
                                  data=b"x" * (1 << 20))
    assert (code, out, err) == (1, b"", b"locked")
