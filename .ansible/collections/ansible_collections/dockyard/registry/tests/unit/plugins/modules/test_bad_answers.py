# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Every registry module, through its real main(), against a server that answers what a proxy,
a login page or a broken registry answers: each run ends in a clean failure (or success) with an
``error_kind`` and a message naming the registry, the request and the problem, never a traceback.
Also the option ranges, and retries reported in the result."""

from __future__ import annotations

import pytest

from ansible_collections.dockyard.registry.plugins.modules import registry_image
from ansible_collections.dockyard.registry.plugins.modules import registry_info
from ansible_collections.dockyard.registry.plugins.modules import registry_login
from ansible_collections.dockyard.registry.plugins.modules import registry_sync
from ansible_collections.dockyard.registry.tests.unit.plugins.misbehaving_registry import IMAGE, misbehaving_registry
from ansible_collections.dockyard.registry.tests.unit.plugins.modules.utils import run_module

NO_CONFIG = "/nonexistent/config.json"


@pytest.fixture
def bad():
    with misbehaving_registry() as server:
        yield server


@pytest.fixture
def good():
    with misbehaving_registry() as server:
        yield server


def run_info(capsys, server, **args):
    args.setdefault("config_path", NO_CONFIG)
    return run_module(capsys, registry_info, registry=server.url, **args)


def run_image(capsys, source, destination, **args):
    return run_module(capsys, registry_image, name=destination.url + "/team/app:2.0",
                      source=source.url + "/team/app:1.0", config_path=NO_CONFIG, **args)


def run_sync(capsys, source, destination, **args):
    return run_module(capsys, registry_sync, source_registry=source.url, destination_registry=destination.url,
                      destination_prefix="mirror", repositories=[{"name": "team/app", "tags": ["1.0"]}],
                      config_path=NO_CONFIG, **args)


def assert_clean_failure(run, kind, *texts):
    """A failure Ansible can show: msg and error_kind, no traceback anywhere."""
    assert run.rc == 1 and run.failed, run.result
    assert "exception" not in run.result and "module_stderr" not in run.result, run.result
    assert "Traceback" not in run.stdout
    assert run.result["error_kind"] == kind, run.result
    for text in texts:
        assert text in run.result["msg"], (text, run.result["msg"])


# --- malformed answers ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode,kind,texts", [
    ("html", "server_error", ["GET /v2/team/app/manifests/1.0", "HTML page", "text/html"]),
    ("not_json", "server_error", ["GET /v2/team/app/manifests/1.0", "not JSON"]),
    ("content_type", "server_error", ["GET /v2/team/app/manifests/1.0", "Content-Type text/html"]),
    ("digest", "digest_mismatch", ["GET /v2/team/app/manifests/1.0", "Docker-Content-Digest"]),
    ("redirect_loop", "server_error", ["GET /v2/team/app/manifests/1.0", "redirect"]),
])
def test_registry_info_fails_cleanly_on_bad_manifest_answers(capsys, bad, mode, kind, texts):
    bad.mode = mode
    run = run_info(capsys, bad, repository="team/app", reference="1.0")
    assert_clean_failure(run, kind, bad.url, *texts)


def test_registry_info_fails_cleanly_on_a_tag_list_that_is_not_an_object(capsys, bad):
    bad.mode = "json_list"
    run = run_info(capsys, bad, repository="team/app")
    assert_clean_failure(run, "server_error", bad.url, "GET /v2/team/app/tags/list")
    run = run_info(capsys, bad)
    assert_clean_failure(run, "server_error", bad.url, "GET /v2/_catalog")


def test_the_well_behaved_server_works(capsys, good):
    run = run_info(capsys, good, repository="team/app", reference="1.0")
    assert not run.failed, run.result
    assert run.result["digest"] == IMAGE.digest
    assert run.result["created"] == "2024-01-02T03:04:05Z"


@pytest.mark.parametrize("mode,kind,texts", [
    ("html", "server_error", ["/v2/team/app/manifests/", "HTML page"]),
    ("not_json", "server_error", ["/v2/team/app/manifests/", "not JSON"]),
    ("content_type", "server_error", ["/v2/team/app/manifests/", "Content-Type text/html"]),
    ("digest", "digest_mismatch", ["/v2/team/app/manifests/", "Docker-Content-Digest"]),
    ("redirect_loop", "server_error", ["/v2/team/app/manifests/1.0", "redirect"]),
])
def test_registry_image_and_sync_fail_cleanly_on_bad_source_answers(capsys, bad, good, mode, kind, texts):
    bad.mode = mode
    image = run_image(capsys, bad, good)
    assert_clean_failure(image, kind, bad.url, *texts)
    sync = run_sync(capsys, bad, good)
    assert sync.failed and "exception" not in sync.result and "Traceback" not in sync.stdout
    assert [f["error_kind"] for f in sync.result["failed_images"]] == [kind]
    assert sync.result["error_kind"] == kind
    for text in [bad.url] + texts:
        assert text in sync.result["failed_images"][0]["error"], (text, sync.result["failed_images"])


# --- option ranges -------------------------------------------------------------------------------

@pytest.mark.parametrize("value,text", [
    (-1, "timeout must be greater than 0 (got -1"),
    (0, "timeout must be greater than 0 (got 0"),
    (100000, "timeout must be at most 3600 (got 100000"),
])
def test_timeout_range_is_checked_up_front(capsys, good, value, text):
    for module, args in ((registry_info, dict(registry=good.url)),
                         (registry_login, dict(registry=good.url, username="u", password="p-Secret-1")),
                         (registry_image, dict(name=good.url + "/team/app:1.0")),
                         (registry_sync, dict(source_registry=good.url, destination_registry=good.url,
                                              repositories=["team/app"]))):
        run = run_module(capsys, module, timeout=value, config_path=NO_CONFIG, **args)
        assert_clean_failure(run, "invalid_input", text)
    assert good.requests == []


@pytest.mark.parametrize("module,args", [
    (registry_image, dict(name="http://127.0.0.1:1/team/app:1.0")),
    (registry_sync, dict(source_registry="http://127.0.0.1:1", destination_registry="http://127.0.0.1:1",
                         repositories=["team/app"])),
])
@pytest.mark.parametrize("value,text", [
    (0, "concurrency must be between 1 and 64 (got 0)"),
    (65, "concurrency must be between 1 and 64 (got 65)"),
])
def test_concurrency_range(capsys, module, args, value, text):
    run = run_module(capsys, module, concurrency=value, config_path=NO_CONFIG, **args)
    assert_clean_failure(run, "invalid_input", text)


@pytest.mark.parametrize("value,text", [(-1, "retries must be between 0 and 20 (got -1)"),
                                        (21, "retries must be between 0 and 20 (got 21)")])
def test_retries_range(capsys, value, text):
    run = run_module(capsys, registry_info, registry="http://127.0.0.1:1", retries=value, config_path=NO_CONFIG)
    assert_clean_failure(run, "invalid_input", text)


# --- retries are reported ------------------------------------------------------------------------

def test_retries_are_reported_and_warned_about(capsys, good):
    good.flaky = 2
    run = run_info(capsys, good, repository="team/app", reference="1.0")
    assert not run.failed, run.result
    assert run.result["retries"]["count"] == 2
    assert run.result["retries"]["statuses"] == {"503": 2}
    assert run.result["retries"]["waited"] >= 0
    assert any("retried" in w and good.url in w for w in run.warnings), run.result

    quiet = run_info(capsys, good, repository="team/app", reference="1.0")
    assert quiet.result["retries"] == {"count": 0, "statuses": {}, "network_errors": 0, "waited": 0.0}
    assert not quiet.warnings


def test_retries_zero_turns_them_off(capsys, good):
    good.flaky = 1
    run = run_info(capsys, good, repository="team/app", reference="1.0", retries=0)
    assert_clean_failure(run, "server_error", "HTTP 503")
    assert run.result["retries"]["count"] == 0


def test_retries_are_reported_on_failure_too(capsys, good):
    good.flaky = 10
    run = run_info(capsys, good, repository="team/app", reference="1.0", retries=2)
    assert_clean_failure(run, "server_error", "HTTP 503")
    assert run.result["retries"]["count"] == 2
    assert any("retried" in w for w in run.warnings)


# --- the one way a module fails -----------------------------------------------------------------

def test_a_missing_library_says_which_and_how_to_install_it(capsys, good, monkeypatch):
    from ansible_collections.dockyard.registry.plugins.module_utils import _docker_engine

    monkeypatch.setattr(_docker_engine, "docker", None)
    monkeypatch.setattr(_docker_engine, "DOCKER_IMPORT_ERROR", "Traceback: No module named 'docker'")
    run = run_module(capsys, registry_image, name=good.url + "/team/app:1.0", pull=True, config_path=NO_CONFIG)
    assert run.failed and run.result["error_kind"] == "missing_library"
    assert "Failed to import the required Python library (docker)" in run.result["msg"]
    # ansible-core 2.19 returns the import traceback only when traceback capturing is on (-vvv)
    assert run.result.get("exception", "Traceback: No module named 'docker'") == "Traceback: No module named 'docker'"


def test_an_unexpected_exception_is_said_to_be_a_bug_not_a_traceback(capsys, good, monkeypatch):
    from ansible_collections.dockyard.registry.plugins.module_utils import _info

    def broken(*_args, **_kwargs):
        raise KeyError("digest")

    monkeypatch.setattr(_info, "inspect_image", broken)
    run = run_info(capsys, good, repository="team/app", reference="1.0")
    assert run.failed and run.result["error_kind"] == "internal"
    assert run.result["msg"] == "unexpected error (a bug in dockyard.registry, please report it): KeyError: 'digest'"
    assert "KeyError" in run.result.get("exception", "KeyError")   # the traceback, when capturing is on


def test_refusing_to_delete_a_shared_digest_lists_the_tags(capsys, monkeypatch):
    from ansible_collections.dockyard.registry.plugins.module_utils import _image
    from ansible_collections.dockyard.registry.tests.unit.plugins.module_utils.fake_registry import FakeRegistry

    registry = FakeRegistry("reg.example:5000")
    digest = registry.add_image("app", "1.0", [b"x"])
    registry.tags["app"]["stable"] = digest
    monkeypatch.setattr(_image, "client_from_params", lambda *_a, **_k: registry.client())
    run = run_module(capsys, registry_image, name="reg.example:5000/app:1.0", state="absent", config_path=NO_CONFIG)
    assert run.failed and run.result["error_kind"] == "invalid_input"
    assert run.result["shared_tags"] == ["stable"]
    assert "set force=true" in run.result["msg"]
    assert run.result["retries"]["count"] == 0
