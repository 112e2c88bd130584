# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Runs a module's real main() the way Ansible runs it: arguments in, one JSON document on
stdout, exit code out."""

from __future__ import annotations

import contextlib
import json
import types

import pytest

from ansible.module_utils import basic
from ansible.module_utils.common import parameters as ansible_parameters
from ansible.module_utils.common import warnings as ansible_warnings

__all__ = ["Run", "patch_module_args", "run_module"]

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19
    @contextlib.contextmanager
    def patch_module_args(args=None):
        from ansible.module_utils.common.text.converters import to_bytes
        old = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}))
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = old


class Run:
    """What one run of a module left behind."""

    def __init__(self, rc: int, result: dict, stdout: str) -> None:
        self.rc = rc
        self.result = result
        self.stdout = stdout

    @property
    def failed(self) -> bool:
        return bool(self.result.get("failed"))

    @property
    def warnings(self) -> list:
        """The warning texts (ansible-core 2.19 returns them as dicts with an event)."""
        texts = []
        for warning in self.result.get("warnings", []):
            if isinstance(warning, dict):
                warning = warning.get("event", warning).get("msg", "")
            texts.append(warning)
        return texts


def run_module(capsys, module: types.ModuleType, check_mode: bool = False, diff: bool = False, **args) -> Run:
    """Runs ``module.main()`` with ``args`` (plus the check/diff mode flags) and returns its
    exit code, parsed JSON result and raw stdout (to look for leaked secrets in)."""
    module_args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    # ansible-core 2.21 echoes the (censored) arguments as "invocation" only when the controller
    # asks for it (at -vvv); ask as the controller then does, so the tests see what a user sees.
    if "inject_invocation" in ansible_parameters.PASS_VARS:
        module_args["_ansible_inject_invocation"] = True
    # warnings are process-global; a second run in one test must not see the first one's
    ansible_warnings._global_warnings.clear()
    capsys.readouterr()
    with patch_module_args(module_args):
        with pytest.raises(SystemExit) as exc:
            module.main()
    stdout = capsys.readouterr().out
    return Run(exc.value.code or 0, json.loads(stdout), stdout)
