# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the runtime files say: hosts, mirrors, hosts.toml, registries.conf.d, daemon.json, config.toml."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.dockyard.registry.plugins.module_utils import _runtime_config as rc
from ansible_collections.dockyard.registry.plugins.module_utils._errors import InvalidInput

try:
    import tomllib
except ImportError:  # Python < 3.11: the TOML checks are skipped there
    tomllib = None

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"


def toml(text: str) -> dict:
    if tomllib is None:
        pytest.skip("tomllib needs Python 3.11")
    return tomllib.loads(text)


# ---- hosts and mirrors ------------------------------------------------------------------------

@pytest.mark.parametrize("value,expected", [
    ("Registry.Example.COM:5000", "registry.example.com:5000"),
    (" localhost ", "localhost"),
    ("a-b.c:1", "a-b.c:1"),
])
def test_normalise_host(value, expected):
    assert rc.normalise_host(value, "x") == expected


@pytest.mark.parametrize("value,message", [
    ("https://reg:5000", "has a scheme: give host[:port] only (for example 'reg:5000')"),
    ("reg:5000/team", "has a path: give host[:port] only (for example 'reg:5000')"),
    ("reg:0", "not between 1 and 65535"),
    ("reg:70000", "not between 1 and 65535"),
    ("-reg", "is not a valid host[:port]"),
    ("reg_1", "is not a valid host[:port]"),
    ("", "must be a registry host"),
    (None, "must be a registry host"),
])
def test_normalise_host_rejects(value, message):
    with pytest.raises(InvalidInput) as exc:
        rc.normalise_host(value, "registries[3].host")
    assert "registries[3].host" in str(exc.value)
    assert message in str(exc.value)


@pytest.mark.parametrize("value", ["docker.io", "index.docker.io", "Registry-1.Docker.io"])
def test_hub_aliases_are_one_upstream(value):
    assert rc.normalise_upstream(value, "x") == "docker.io"


@pytest.mark.parametrize("value,expected", [
    ("mirror:5000", ("https", "mirror:5000")),
    ("https://Mirror:5000/", ("https", "mirror:5000")),
    ("HTTP://mirror", ("http", "mirror")),
])
def test_parse_mirror(value, expected):
    assert rc.parse_mirror(value, "x") == expected


@pytest.mark.parametrize("value,message", [
    ("ftp://mirror", "only http:// and https:// mirrors exist"),
    ("https://mirror/v2", "Docker Engine refuses mirror URLs with a path"),
])
def test_parse_mirror_rejects(value, message):
    with pytest.raises(InvalidInput, match=message):
        rc.parse_mirror(value, "mirrors[0].mirrors[0]")


def test_host_settings_ignores_absent_and_merges_mirrors():
    registries = [rc.RegistryEntry("a:1", ca=CA), rc.RegistryEntry("b:2", state="absent")]
    mirrors = [rc.MirrorEntry("a:1", (("https", "m:1"),)),
               rc.MirrorEntry("c", (("http", "m:2"),), state="absent")]
    hosts = rc.host_settings(registries, mirrors)
    assert sorted(hosts) == ["a:1"]
    assert hosts["a:1"].registry is registries[0]
    assert hosts["a:1"].mirrors == [("https", "m:1")]


def test_file_name_for():
    assert rc.file_name_for("reg.test:5000") == "reg.test_5000"


# ---- containerd hosts.toml --------------------------------------------------------------------

def test_hosts_toml_private_ca_and_client_cert():
    entry = rc.RegistryEntry("reg.test:5000", ca=CA, client_cert=CA, client_key=KEY)
    text = rc.render_hosts_toml(rc.HostSettings("reg.test:5000", entry), "/etc/containerd/certs.d",
                                {entry.host: entry})
    assert text.startswith(rc.MARKER + "\n")
    data = toml(text)
    assert data["server"] == "https://reg.test:5000"
    host = data["host"]["https://reg.test:5000"]
    # containerd 1.6 ignores a hosts.toml without a [host] table.
    assert host["capabilities"] == ["pull", "resolve", "push"]
    assert host["ca"] == "/etc/containerd/certs.d/reg.test:5000/ca.crt"
    assert host["client"] == [["/etc/containerd/certs.d/reg.test:5000/client.cert",
                               "/etc/containerd/certs.d/reg.test:5000/client.key"]]
    assert "skip_verify" not in host


def test_hosts_toml_insecure_tries_https_unverified_then_http():
    entry = rc.RegistryEntry("reg:5000", insecure=True)
    data = toml(rc.render_hosts_toml(rc.HostSettings("reg:5000", entry), "/c", {entry.host: entry}))
    assert data["server"] == "http://reg:5000"
    assert list(data["host"]) == ["https://reg:5000", "http://reg:5000"]
    assert data["host"]["https://reg:5000"]["skip_verify"] is True
    assert "skip_verify" not in data["host"]["http://reg:5000"]


def test_hosts_toml_mirrors_first_with_their_own_tls():
    mirror = rc.RegistryEntry("mirror:443", ca=CA)
    settings = rc.HostSettings("reg:5000", None, [("https", "mirror:443"), ("http", "plain:80")])
    data = toml(rc.render_hosts_toml(settings, "/c", {mirror.host: mirror}))
    assert list(data["host"]) == ["https://mirror:443", "http://plain:80", "https://reg:5000"]
    assert data["host"]["https://mirror:443"] == {"capabilities": ["pull", "resolve"],
                                                  "ca": "/c/mirror:443/ca.crt"}
    assert data["host"]["http://plain:80"] == {"capabilities": ["pull", "resolve"]}
    assert "ca" not in data["host"]["https://reg:5000"]


def test_hosts_toml_docker_hub():
    settings = rc.HostSettings("docker.io", None, [("https", "mirror:443")])
    data = toml(rc.render_hosts_toml(settings, "/c", {}))
    assert data["server"] == "https://registry-1.docker.io"
    assert list(data["host"]) == ["https://mirror:443"]
    bare = toml(rc.render_hosts_toml(rc.HostSettings("docker.io"), "/c", {}))
    assert list(bare["host"]) == ["https://registry-1.docker.io"]


def test_hosts_toml_quotes_paths():
    entry = rc.RegistryEntry("reg", ca=CA)
    data = toml(rc.render_hosts_toml(rc.HostSettings("reg", entry), 'C:\\odd "dir"', {"reg": entry}))
    assert data["ca"] == os.path.join('C:\\odd "dir"', "reg", "ca.crt")


# ---- registries.conf.d --------------------------------------------------------------------------

def test_registries_conf_drop_in():
    insecure_mirror = rc.RegistryEntry("m2:5000", insecure=True)
    entry = rc.RegistryEntry("reg:5000", ca=CA)
    settings = rc.HostSettings("reg:5000", entry, [("https", "m1"), ("https", "m2:5000"), ("http", "m3")])
    text = rc.render_registries_conf(settings, {entry.host: entry, insecure_mirror.host: insecure_mirror})
    assert text.startswith(rc.MARKER + "\n")
    data = toml(text)
    assert data == {"registry": [{
        "location": "reg:5000", "insecure": False,
        "mirror": [{"location": "m1", "insecure": False},
                   {"location": "m2:5000", "insecure": True},
                   {"location": "m3", "insecure": True}],
    }]}


def test_registries_conf_insecure_registry():
    entry = rc.RegistryEntry("reg:5000", insecure=True)
    data = toml(rc.render_registries_conf(rc.HostSettings("reg:5000", entry), {}))
    assert data["registry"][0]["insecure"] is True


# ---- daemon.json --------------------------------------------------------------------------------

@pytest.mark.parametrize("text,message", [
    ("{", "/etc/docker/daemon.json is not valid JSON"),
    ("[]", "must hold a JSON object"),
    ('{"insecure-registries": "reg:5000"}', "'insecure-registries' must be a list of strings"),
    ('{"registry-mirrors": [1]}', "'registry-mirrors' must be a list of strings"),
])
def test_parse_daemon_json_rejects(text, message):
    with pytest.raises(InvalidInput) as exc:
        rc.parse_daemon_json(text, "/etc/docker/daemon.json")
    assert message in str(exc.value)
    assert "Nothing was changed" in str(exc.value)


def test_parse_daemon_json_empty_file():
    assert rc.parse_daemon_json(" \n", "p") == {}


def test_merge_daemon_json_keeps_every_other_key():
    config = {"log-driver": "local", "debug": True, "insecure-registries": ["theirs:1"],
              "registry-mirrors": ["https://Theirs.mirror/"], "default-address-pools": [{"base": "10.9.0.0/16", "size": 24}]}
    before = json.dumps(config, sort_keys=True)
    merged = rc.merge_daemon_json(
        config,
        [rc.RegistryEntry("plain:5000", insecure=True), rc.RegistryEntry("tls:5000", ca=CA)],
        [rc.MirrorEntry("docker.io", (("https", "mirror.a"), ("https", "theirs.mirror")))])
    assert json.dumps(config, sort_keys=True) == before  # input untouched
    assert merged["insecure-registries"] == ["theirs:1", "plain:5000"]
    assert merged["registry-mirrors"] == ["https://Theirs.mirror/", "https://mirror.a"]
    for key in ("log-driver", "debug", "default-address-pools"):
        assert merged[key] == config[key]


def test_merge_daemon_json_is_idempotent():
    entries = [rc.RegistryEntry("plain:5000", insecure=True)]
    mirrors = [rc.MirrorEntry("docker.io", (("https", "mirror.a"),))]
    once = rc.merge_daemon_json({}, entries, mirrors)
    assert rc.merge_daemon_json(once, entries, mirrors) == once


def test_merge_daemon_json_absent_and_secure_entries_leave_empty_lists():
    config = {"insecure-registries": ["plain:5000", "was-insecure:1"], "registry-mirrors": ["https://mirror.a"]}
    merged = rc.merge_daemon_json(
        config,
        [rc.RegistryEntry("plain:5000", state="absent"), rc.RegistryEntry("was-insecure:1", ca=CA)],
        [rc.MirrorEntry("docker.io", (("https", "mirror.a"),), state="absent")])
    # dockerd's reload keeps a key that disappeared, so an emptied key stays as [].
    assert merged == {"insecure-registries": [], "registry-mirrors": []}


def test_merge_daemon_json_adds_no_empty_key():
    assert rc.merge_daemon_json({"debug": True}, [rc.RegistryEntry("tls:1", ca=CA)], []) == {"debug": True}


# ---- containerd config.toml ---------------------------------------------------------------------

DUMP = """version = 2
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "pause:3.6"
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "/etc/containerd/certs.d:/opt/\\"q\\""
      [plugins."io.containerd.grpc.v1.cri".registry.auths]
  [plugins."io.containerd.internal.v1.opt"]
    config_path = "/not/this"
"""


def test_dump_config_path():
    assert rc.dump_config_path(DUMP) == '/etc/containerd/certs.d:/opt/"q"'
    assert rc.dump_config_path(DUMP.replace('config_path = "/etc', 'other = "/etc')) is None


def test_dump_legacy_registry_settings():
    dump = DUMP + ('    [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]\n'
                   '    [plugins."io.containerd.grpc.v1.cri".registry.configs."reg:5000".tls]\n'
                   '    [plugins."io.containerd.grpc.v1.cri".registry.configs."reg:5000".auth]\n')
    assert rc.dump_legacy_registry_settings(dump) == [
        '[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]',
        '[plugins."io.containerd.grpc.v1.cri".registry.configs."reg:5000".tls]',
    ]
    assert rc.dump_legacy_registry_settings(DUMP) == []


@pytest.mark.parametrize("config_path,expected", [
    ("/etc/containerd/certs.d", True),
    ("/etc/containerd/certs.d/", True),
    ("/a:/etc/containerd/certs.d", True),
    ("/etc/containerd", False),
    ("", False),
    (None, False),
])
def test_path_covers(config_path, expected):
    assert rc.path_covers(config_path, "/etc/containerd/certs.d") is expected


@pytest.mark.parametrize("text,table", [
    ("", 'plugins."io.containerd.grpc.v1.cri".registry'),
    ("version = 2\n", 'plugins."io.containerd.grpc.v1.cri".registry'),
    ("version = 3\n", 'plugins."io.containerd.cri.v1.images".registry'),
    ("root = '/var/lib/containerd'\n", "plugins.cri.registry"),
])
def test_containerd_registry_table(text, table):
    assert rc.containerd_registry_table(text) == table


def test_containerd_registry_table_unknown_version():
    with pytest.raises(InvalidInput, match="version 9 is unknown"):
        rc.containerd_registry_table("version = 9\n")


def test_set_config_path_in_empty_file():
    data = toml(rc.set_containerd_config_path("", "/etc/containerd/certs.d"))
    assert data["version"] == 2
    assert data["plugins"]["io.containerd.grpc.v1.cri"]["registry"]["config_path"] == "/etc/containerd/certs.d"


def test_set_config_path_appends_table_and_keeps_other_lines():
    text = 'version = 2\n# a comment the user wrote\n[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "p"\n'
    result = rc.set_containerd_config_path(text, "/c")
    assert result.startswith(text)
    data = toml(result)
    assert data["plugins"]["io.containerd.grpc.v1.cri"] == {"sandbox_image": "p", "registry": {"config_path": "/c"}}


@pytest.mark.parametrize("header", [
    '[plugins."io.containerd.grpc.v1.cri".registry]',
    "[plugins.'io.containerd.grpc.v1.cri'.registry]",
    '[ plugins . "io.containerd.grpc.v1.cri" . registry ]  # ours',
])
def test_set_config_path_under_existing_header(header):
    text = 'version = 2\n%s\n  other = 1\n[plugins."x"]\n  config_path = "/keep"\n' % header
    result = rc.set_containerd_config_path(text, "/c")
    data = toml(result)
    assert data["plugins"]["io.containerd.grpc.v1.cri"]["registry"] == {"config_path": "/c", "other": 1}
    assert data["plugins"]["x"]["config_path"] == "/keep"


def test_set_config_path_replaces_existing_value():
    text = 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n    config_path = ""\n'
    result = rc.set_containerd_config_path(text, "/c")
    assert result == 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n    config_path = "/c"\n'


def test_set_config_path_version_1():
    data = toml(rc.set_containerd_config_path("[plugins.cri]\n  x = 1\n", "/c"))
    assert data["plugins"]["cri"] == {"x": 1, "registry": {"config_path": "/c"}}


def test_toml_parser_is_the_one_both_checks_use():
    parser = rc.toml_parser()
    if tomllib is None:
        pytest.skip("tomllib needs Python 3.11")
    assert parser is tomllib
    assert parser.loads('version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\nconfig_path = "/c"\n') == {
        "version": 2, "plugins": {"io.containerd.grpc.v1.cri": {"registry": {"config_path": "/c"}}}}
    with pytest.raises(ValueError):
        parser.loads("version = = 2")
