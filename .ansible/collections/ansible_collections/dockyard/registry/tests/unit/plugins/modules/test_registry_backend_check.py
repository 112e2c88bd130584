# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""registry_backend_check through its real main(): what run_registry_module does around the
backend. The checks themselves run against real moto, Redis and registries in the
role_registry_cluster integration target."""

from __future__ import annotations

from ansible_collections.dockyard.registry.plugins.module_utils import _backends
from ansible_collections.dockyard.registry.plugins.modules import registry_backend_check
from ansible_collections.dockyard.registry.tests.unit.plugins.modules.utils import run_module


def test_missing_credentials_are_a_warning_not_a_failure(capsys, monkeypatch):
    monkeypatch.setattr(_backends, "find_s3_credentials", lambda *args: None)
    run = run_module(capsys, registry_backend_check, s3={"bucket": "b"})
    assert not run.failed
    assert run.result["s3"] == {"checked": False, "bucket": "b"}
    assert "retries" not in run.result  # it sends no retried registry requests
    assert any("the bucket b was not checked" in warning for warning in run.warnings)


def test_a_timeout_out_of_range_names_the_option(capsys):
    run = run_module(capsys, registry_backend_check, redis={"address": "127.0.0.1:1"}, timeout=0)
    assert run.failed and run.result["msg"].startswith("timeout must be greater than 0")
