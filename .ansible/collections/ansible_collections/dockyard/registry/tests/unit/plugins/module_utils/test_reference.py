# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Image references and registry addresses as the docker CLI reads them."""

from __future__ import annotations

import pytest

from ansible_collections.dockyard.registry.plugins.module_utils._errors import InvalidInput
from ansible_collections.dockyard.registry.plugins.module_utils._reference import (
    DOCKER_HUB,
    ImageReference,
    Registry,
    is_digest,
    parse_reference,
    parse_registry,
    repository_items,
    validate_repository,
    validate_tag,
)

DIGEST = "sha256:" + "ab" * 32

VALID_REFERENCES = [
    # input, host, scheme, repository, tag, digest, str()
    ("alpine", DOCKER_HUB, "https", "library/alpine", None, None, "docker.io/library/alpine"),
    ("alpine:3.20", DOCKER_HUB, "https", "library/alpine", "3.20", None, "docker.io/library/alpine:3.20"),
    ("docker.io/alpine", DOCKER_HUB, "https", "library/alpine", None, None, "docker.io/library/alpine"),
    ("index.docker.io/alpine:1", DOCKER_HUB, "https", "library/alpine", "1", None, "docker.io/library/alpine:1"),
    ("registry-1.docker.io/library/alpine", DOCKER_HUB, "https", "library/alpine", None, None,
     "docker.io/library/alpine"),
    ("docker.io/team/app:2", DOCKER_HUB, "https", "team/app", "2", None, "docker.io/team/app:2"),
    ("team/app", DOCKER_HUB, "https", "team/app", None, None, "docker.io/team/app"),
    ("localhost/app", "localhost", "https", "app", None, None, "localhost/app"),
    ("localhost:5000/team/app:v1", "localhost:5000", "https", "team/app", "v1", None, "localhost:5000/team/app:v1"),
    ("Registry.Example.COM/app", "registry.example.com", "https", "app", None, None, "registry.example.com/app"),
    ("reg.example.com:443/a/b/c", "reg.example.com:443", "https", "a/b/c", None, None, "reg.example.com:443/a/b/c"),
    ("app@" + DIGEST, DOCKER_HUB, "https", "library/app", None, DIGEST, "docker.io/library/app@" + DIGEST),
    ("host:5000/app:1@" + DIGEST, "host:5000", "https", "app", "1", DIGEST, "host:5000/app:1@" + DIGEST),
    ("http://127.0.0.1:5201/app:1", "127.0.0.1:5201", "http", "app", "1", None, "127.0.0.1:5201/app:1"),
    ("https://myhost/app", "myhost", "https", "app", None, None, "myhost/app"),
    ("[::1]:5000/app", "[::1]:5000", "https", "app", None, None, "[::1]:5000/app"),
    ("a.b/x__y/z-1.2_3:Tag_1.0-rc", "a.b", "https", "x__y/z-1.2_3", "Tag_1.0-rc", None,
     "a.b/x__y/z-1.2_3:Tag_1.0-rc"),
    ("host.io/a---b", "host.io", "https", "a---b", None, None, "host.io/a---b"),
    # without ".", ":" or "localhost" the first component is part of a Docker Hub name
    ("host/app", DOCKER_HUB, "https", "host/app", None, None, "docker.io/host/app"),
]


@pytest.mark.parametrize("value,host,scheme,repository,tag,digest,text", VALID_REFERENCES)
def test_parse_reference(value, host, scheme, repository, tag, digest, text):
    ref = parse_reference(value)
    assert ref.registry.host == host
    assert ref.registry.scheme == scheme
    assert ref.repository == repository
    assert ref.tag == tag
    assert ref.digest == digest
    assert str(ref) == text


INVALID_REFERENCES = [
    ("", "it is empty"),
    (" alpine", "white space"),
    ("al pine", "white space"),
    ("Foo:1", "invalid repository name 'Foo' in 'Foo:1': must be lower case"),
    ("host:5000/Team/app", "invalid repository name 'Team/app' in 'host:5000/Team/app': must be lower case"),
    ("host.io/app/", "empty path component"),
    ("host.io//app", "empty path component"),
    ("/app", "empty path component"),
    ("host.io/-app", "component '-app'"),
    ("host.io/app_", "component 'app_'"),
    ("host.io/a___b", "component 'a___b'"),
    ("host.io/a..b", "component 'a..b'"),
    ("app:", "invalid tag ''"),
    ("app:-1", "invalid tag '-1'"),
    ("app:.x", "invalid tag '.x'"),
    ("app:" + "t" * 129, "longer than 128"),
    ("app:a+b", "invalid tag 'a+b'"),
    ("app@sha256:abc", "invalid digest 'sha256:abc'"),
    ("app@sha256:" + "AB" * 32, "lower-case hex"),
    ("app@md5:" + "a" * 32, "unsupported algorithm 'md5'"),
    ("app@", "invalid digest ''"),
    ("host:99999/app", "invalid port '99999'"),
    ("host:abc/app:1", "invalid port 'abc'"),
    ("ho_st.com/app", "invalid registry host 'ho_st.com'"),
    ("-host.com/app", "invalid registry host '-host.com'"),
    ("http://app", "needs host[:port]/repository"),
    ("host.com/" + "a" * 250, "longer than 255"),
    ("a" * 256, "longer than 255"),
]


@pytest.mark.parametrize("value,message", INVALID_REFERENCES)
def test_parse_reference_invalid(value, message):
    with pytest.raises(InvalidInput) as exc:
        parse_reference(value)
    assert message in str(exc.value)
    assert exc.value.kind == "invalid_input"


def test_default_registry_is_used_for_names_without_a_registry():
    default = parse_registry("http://127.0.0.1:5000")
    ref = parse_reference("team/app:1", default)
    assert ref.registry == default
    assert ref.repository == "team/app"
    # one component stays as it is away from Docker Hub
    assert parse_reference("app", default).repository == "app"
    # an explicit registry wins over the default
    assert parse_reference("other.io/app", default).registry == Registry("other.io")


def test_reference_property_and_replacements():
    ref = parse_reference("host.io/app")
    assert ref.reference == "latest"
    assert ref.with_tag("2").reference == "2"
    pinned = parse_reference("host.io/app:1").with_digest(DIGEST)
    assert pinned.tag is None and pinned.reference == DIGEST
    assert str(pinned) == "host.io/app@" + DIGEST
    assert pinned.with_tag("3") == ImageReference(Registry("host.io"), "app", "3", None)
    with pytest.raises(InvalidInput):
        ref.with_tag("bad tag")
    with pytest.raises(InvalidInput):
        ref.with_digest("sha256:nothex")


@pytest.mark.parametrize("value,host,scheme,base_url,config_key,display", [
    ("registry.example.com", "registry.example.com", "https", "https://registry.example.com",
     "registry.example.com", "registry.example.com"),
    ("localhost:5000", "localhost:5000", "https", "https://localhost:5000", "localhost:5000", "localhost:5000"),
    ("https://localhost:5000/", "localhost:5000", "https", "https://localhost:5000", "localhost:5000",
     "localhost:5000"),
    ("http://127.0.0.1:5201", "127.0.0.1:5201", "http", "http://127.0.0.1:5201", "127.0.0.1:5201",
     "http://127.0.0.1:5201"),
    ("HTTP://LocalHost:5000", "localhost:5000", "http", "http://localhost:5000", "localhost:5000",
     "http://localhost:5000"),
    ("docker.io", DOCKER_HUB, "https", "https://" + DOCKER_HUB, "https://index.docker.io/v1/", "docker.io"),
    ("index.docker.io", DOCKER_HUB, "https", "https://" + DOCKER_HUB, "https://index.docker.io/v1/", "docker.io"),
    ("https://index.docker.io/v1/", DOCKER_HUB, "https", "https://" + DOCKER_HUB,
     "https://index.docker.io/v1/", "docker.io"),
    ("registry-1.docker.io", DOCKER_HUB, "https", "https://" + DOCKER_HUB, "https://index.docker.io/v1/",
     "docker.io"),
    ("[::1]:5000", "[::1]:5000", "https", "https://[::1]:5000", "[::1]:5000", "[::1]:5000"),
    ("host:0443", "host:443", "https", "https://host:443", "host:443", "host:443"),
])
def test_parse_registry(value, host, scheme, base_url, config_key, display):
    registry = parse_registry(value)
    assert registry.host == host
    assert registry.scheme == scheme
    assert registry.base_url == base_url
    assert registry.config_key == config_key
    assert registry.display == display == str(registry)
    assert registry.is_docker_hub == (host == DOCKER_HUB)


@pytest.mark.parametrize("value,message", [
    ("", "it is empty"),
    ("ftp://host", "the scheme must be https:// or http://"),
    ("host/path", "unexpected path '/path'"),
    ("https://host/v2/x", "unexpected path"),
    ("host:", "invalid port ''"),
    ("host:0", "invalid port '0'"),
    ("ho st", "invalid registry host"),
    ("https://", "the host name is empty"),
    ("[zz]:5000", "not a valid IPv6 address"),
])
def test_parse_registry_invalid(value, message):
    with pytest.raises(InvalidInput) as exc:
        parse_registry(value)
    assert message in str(exc.value)


def test_validators_and_is_digest():
    assert validate_repository("a/b-c") == "a/b-c"
    assert validate_tag("latest") == "latest"
    assert is_digest(DIGEST)
    assert is_digest("sha512:" + "0" * 128)
    assert not is_digest("sha256:" + "0" * 63)
    assert not is_digest("latest")
    assert not is_digest("")


def test_repository_items_names_and_dicts():
    items = ["team/app", {"name": "team/db", "latest": 2}]
    assert list(repository_items(items, ("name", "latest"))) == [
        (0, {"name": "team/app"}, "team/app"),
        (1, {"name": "team/db", "latest": 2}, "team/db"),
    ]
    assert list(repository_items(None, ("name",))) == []


@pytest.mark.parametrize("items, message", [
    ([["team/app"]], r"repositories\[0\] must be a repository name or a dictionary"),
    (["ok", {"name": "team/app", "colour": 1}], r"repositories\[1\] has unknown keys colour; allowed: name, latest"),
    ([{"latest": 1}], r"repositories\[0\] needs a name"),
    ([{"name": "Team/App"}], r"repositories\[0\] \(Team/App\): invalid repository name 'Team/App': must be lower case"),
])
def test_repository_items_errors_name_the_entry(items, message):
    with pytest.raises(InvalidInput, match=message):
        list(repository_items(items, ("name", "latest")))
