# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The shared argument spec and its doc fragment must say the same thing."""

from __future__ import annotations

import base64
import json

import pytest
import yaml

from ansible_collections.dockyard.registry.plugins.doc_fragments.registry_connection import ModuleDocFragment
from ansible_collections.dockyard.registry.plugins.module_utils._argspec import (
    client_from_params,
    connection_argument_spec,
    credentials_from_params,
)
from ansible_collections.dockyard.registry.plugins.module_utils._errors import InvalidInput
from ansible_collections.dockyard.registry.plugins.module_utils._reference import parse_registry


def documented(fragment: str) -> dict:
    return yaml.safe_load(fragment)["options"]


COMMON = ("config_path", "timeout", "retries")


@pytest.mark.parametrize("fragment,prefix", [
    (ModuleDocFragment.DOCUMENTATION, ""),
    (ModuleDocFragment.SOURCE, "source_"),
    (ModuleDocFragment.DESTINATION, "destination_"),
])
def test_fragment_matches_argspec(fragment, prefix):
    spec = connection_argument_spec(prefix)
    # "registry" is documented by each module (its default and requiredness differ), COMMON by its own part.
    spec.pop("registry", None)
    for name in COMMON:
        spec.pop(name)
    assert_documented(documented(fragment), spec)


def test_common_fragment_matches_argspec():
    spec = connection_argument_spec()
    assert_documented(documented(ModuleDocFragment.COMMON), dict((name, spec[name]) for name in COMMON))


def assert_documented(docs, spec):
    assert sorted(docs) == sorted(spec)
    for name, option in spec.items():
        doc = docs[name]
        assert doc["type"] == option["type"], name
        assert doc.get("default") == option.get("default"), name
        assert bool(doc.get("required")) == bool(option.get("required")), name
        assert doc.get("description"), name


def test_the_three_sides_say_the_same_but_for_the_prefix():
    sides = [(documented(ModuleDocFragment.DOCUMENTATION), "", "registry"),
             (documented(ModuleDocFragment.SOURCE), "source_", "source registry"),
             (documented(ModuleDocFragment.DESTINATION), "destination_", "destination registry")]
    plain = json.dumps(sides[0][0], sort_keys=True)
    for docs, prefix, words in sides[1:]:
        text = json.dumps(docs, sort_keys=True).replace(words, "registry")
        for name in sides[0][0]:
            text = text.replace(prefix + name, name)
        assert text == plain


def test_secrets_are_no_log():
    for prefix in ("", "source_", "destination_"):
        spec = connection_argument_spec(prefix)
        assert spec[prefix + "password"]["no_log"] is True
        assert [name for name, option in spec.items() if option.get("no_log")] == [prefix + "password"]


def test_prefixed_spec_has_no_registry():
    assert "registry" in connection_argument_spec()
    assert not any("registry" in name for name in connection_argument_spec("source_"))


def test_credentials_options_first_then_config(tmp_path):
    registry = parse_registry("localhost:5000")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {"localhost:5000": {"auth": base64.b64encode(b"cfg:pw").decode()}}}))
    params = {"username": None, "password": None, "config_path": str(config)}
    assert credentials_from_params(params, registry).username == "cfg"
    params.update(username="opt", password="x")
    assert credentials_from_params(params, registry).username == "opt"
    params = {"source_username": None, "source_password": None, "config_path": str(tmp_path / "none.json")}
    assert credentials_from_params(params, registry, "source_") is None
    with pytest.raises(InvalidInput, match="source_username and source_password"):
        credentials_from_params({"source_username": "a", "config_path": None}, registry, "source_")


def test_client_from_params_uses_the_side_options(tmp_path):
    registry = parse_registry("http://127.0.0.1:1")
    params = {"destination_username": "d", "destination_password": "dst-Secret-9", "destination_validate_certs": True,
              "destination_ca_cert": None, "destination_client_cert": None, "destination_client_key": None,
              "config_path": str(tmp_path / "none.json"), "timeout": 7.0}
    client = client_from_params(params, registry, "destination_")
    assert client.credentials.username == "d"
    assert client.timeout == 7.0
    assert "dst-Secret-9" not in repr(client)
    assert client.credentials.password == "dst-Secret-9"
