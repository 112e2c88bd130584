# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Every module's documentation (with its fragments) says what its argument spec does, shared
options are documented only by the shared fragments, and the action groups of meta/runtime.yml
hold only modules that accept every option a group default may set."""

from __future__ import annotations

import importlib
import os

import pytest
import yaml

from ansible.module_utils.basic import FILE_COMMON_ARGUMENTS

from ansible_collections.dockyard.registry.plugins.module_utils._argspec import connection_argument_spec

COLLECTION = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
MODULES = sorted(name[:-3] for name in os.listdir(os.path.join(COLLECTION, "plugins", "modules"))
                 if name.endswith(".py") and not name.startswith("_"))
# The options a group default may set, per action group (what every member must accept).
GROUP_OPTIONS = {"registry": sorted(connection_argument_spec())}
SHARED = set(connection_argument_spec()) | set(connection_argument_spec("source_")) | \
    set(connection_argument_spec("destination_"))
SHARED.discard("registry")  # each module documents its own: what it means differs
# Shared options a module documents itself because they mean more there (registry_login: the
# user and secret differ by provider); type and default are still checked against the spec.
OWN_WORDS = {"registry_login": {"username", "password"}}


def module(name: str):
    return importlib.import_module("ansible_collections.dockyard.registry.plugins.modules." + name)


def fragment(name: str) -> dict:
    """``dockyard.registry.registry_connection.SOURCE`` -> that fragment's YAML."""
    parts = name.split(".")
    if name == "ansible.builtin.files":
        # ansible.plugins is not importable in module unit tests: the options are the file common
        # arguments, which add_file_common_args=True adds to the spec
        return {"options": dict((key, dict(spec, description="ansible.builtin.files"))
                                for key, spec in FILE_COMMON_ARGUMENTS.items())}
    assert parts[:2] == ["dockyard", "registry"], name
    doc_module = importlib.import_module("ansible_collections.dockyard.registry.plugins.doc_fragments." + parts[2])
    return yaml.safe_load(getattr(doc_module.ModuleDocFragment, parts[3] if len(parts) > 3 else "DOCUMENTATION"))


def documentation(name: str) -> tuple:
    """(the module's own documentation, the documentation with every fragment merged in)."""
    own = yaml.safe_load(module(name).DOCUMENTATION)
    merged = {"options": dict(own.get("options") or {}), "attributes": dict(own.get("attributes") or {})}
    for fragment_name in own.get("extends_documentation_fragment") or []:
        data = fragment(fragment_name)
        for key in ("options", "attributes"):
            for option, spec in (data.get(key) or {}).items():
                merged[key][option] = dict(spec, **merged[key].get(option, {}))
    return own, merged


@pytest.mark.parametrize("name", MODULES)
def test_documentation_matches_the_argument_spec(name):
    spec = module(name).argument_spec()
    own, merged = documentation(name)
    if "ansible.builtin.files" in (own.get("extends_documentation_fragment") or []):
        spec.update(FILE_COMMON_ARGUMENTS)  # add_file_common_args=True
    docs = merged["options"]
    assert sorted(docs) == sorted(spec)
    for option, want in spec.items():
        doc = docs[option]
        assert doc.get("type", "str") == want.get("type", "str"), option
        assert doc.get("default") == want.get("default"), option
        assert bool(doc.get("required")) == bool(want.get("required")), option
        assert doc.get("choices") == want.get("choices"), option
        assert doc.get("elements") == want.get("elements"), option
        assert doc.get("description"), option


def connection_modules() -> list:
    """The modules that extend a registry_connection fragment."""
    return [name for name in MODULES if any(".registry_connection" in f for f in yaml.safe_load(
        module(name).DOCUMENTATION).get("extends_documentation_fragment") or [])]


def test_every_registry_module_uses_the_connection_fragments():
    assert connection_modules() == ["registry_diagnose", "registry_image", "registry_info", "registry_login", "registry_prune",
                                    "registry_sync"]


@pytest.mark.parametrize("name", connection_modules())
def test_shared_options_are_documented_only_by_the_fragments(name):
    own, _merged = documentation(name)
    inline = sorted(set(own.get("options") or {}) & SHARED - OWN_WORDS.get(name, set()))
    assert inline == [], "%s documents shared options itself; extend registry_connection instead" % name


def test_group_members_accept_every_group_option():
    with open(os.path.join(COLLECTION, "meta", "runtime.yml")) as handle:
        groups = yaml.safe_load(handle)["action_groups"]
    assert sorted(groups) == sorted(GROUP_OPTIONS)
    for group, members in groups.items():
        assert members, group
        for member in members:
            missing = sorted(set(GROUP_OPTIONS[group]) - set(module(member).argument_spec()))
            assert missing == [], "%s is in group %s but does not accept %s" % (member, group, missing)


@pytest.mark.parametrize("name", MODULES)
def test_documented_group_membership_is_the_runtime_one(name):
    with open(os.path.join(COLLECTION, "meta", "runtime.yml")) as handle:
        groups = yaml.safe_load(handle)["action_groups"]
    _own, merged = documentation(name)
    attribute = merged["attributes"].get("action_group") or {}
    in_groups = sorted("dockyard.registry." + group for group, members in groups.items() if name in members)
    if in_groups:
        assert attribute.get("support") == "full" and sorted(attribute.get("membership")) == in_groups, name
    else:
        assert attribute.get("support") == "none" and not attribute.get("membership"), name
