# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""Image references and registry addresses: parse, normalise, validate.

The grammar is the one of the distribution ``reference`` package (what the docker CLI
uses); the split between registry and repository follows the docker CLI:

* the first path component is a registry when it contains ``.`` or ``:`` or is
  ``localhost``; otherwise the image lives on the default registry (Docker Hub);
* ``docker.io``, ``index.docker.io`` and ``registry-1.docker.io`` are one registry,
  and a one-component name on it gets ``library/`` (``alpine`` -> ``library/alpine``).

A registry address without a scheme means HTTPS; ``http://`` must be written out.
Every error names the part that is wrong and the whole input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Iterator, Sequence


from ansible_collections.dockyard.registry.plugins.module_utils._errors import InvalidInput

__all__ = [
    "DOCKER_HUB",
    "DOCKER_HUB_ALIASES",
    "DOCKER_HUB_CONFIG_KEY",
    "Registry",
    "ImageReference",
    "parse_registry",
    "parse_reference",
    "validate_repository",
    "repository_items",
    "validate_tag",
    "validate_digest",
    "is_digest",
    "host_without_port",
]

DOCKER_HUB = "registry-1.docker.io"
DOCKER_HUB_ALIASES = frozenset(["docker.io", "index.docker.io", "registry-1.docker.io"])
DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"
_HUB_DISPLAY = "docker.io"

NAME_TOTAL_LENGTH_MAX = 255

# distribution/reference/regexp.go
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*\Z")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = re.compile(r"%s(?:\.%s)*\Z" % (_DOMAIN_COMPONENT, _DOMAIN_COMPONENT))
_IPV6 = re.compile(r"\[[a-fA-F0-9:]+\]\Z")
_TAG = re.compile(r"[\w][\w.-]{0,127}\Z", re.ASCII)
_DIGEST = re.compile(r"([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)\Z")
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_HEX = re.compile(r"[a-f0-9]+\Z")
_SCHEMES = ("https://", "http://")
# Paths accepted after a registry address: what docker config.json keys and copied URLs carry.
_ACCEPTED_PATHS = ("", "/", "/v1", "/v1/", "/v2", "/v2/")


@dataclass(frozen=True)
class Registry:
    """A registry API endpoint: ``host[:port]`` plus the scheme it is spoken with."""

    host: str
    scheme: str = "https"

    @property
    def base_url(self) -> str:
        return "%s://%s" % (self.scheme, self.host)

    @property
    def is_docker_hub(self) -> bool:
        return self.host == DOCKER_HUB

    @property
    def config_key(self) -> str:
        """The key the docker CLI uses for this registry in ``config.json`` ``auths``."""
        return DOCKER_HUB_CONFIG_KEY if self.is_docker_hub else self.host

    @property
    def display(self) -> str:
        """How messages name the registry: ``docker.io``, ``host:port`` or ``http://host:port``."""
        if self.is_docker_hub:
            return _HUB_DISPLAY
        if self.scheme == "http":
            return self.base_url
        return self.host

    def __str__(self) -> str:
        return self.display


DEFAULT_REGISTRY = Registry(DOCKER_HUB)


def _split_scheme(value: str):
    lowered = value.lower()
    for prefix in _SCHEMES:
        if lowered.startswith(prefix):
            return prefix[:-3], value[len(prefix):]
    return None, value


def _validate_host(host: str, original: str) -> str:
    """Validate ``host[:port]`` and return it with the host name lower-cased."""
    if not host:
        raise InvalidInput("invalid registry address %r: the host name is empty" % original)
    port = None
    if host.startswith("["):
        end = host.find("]")
        name, rest = (host[:end + 1], host[end + 1:]) if end != -1 else (host, "")
        if rest:
            if not rest.startswith(":"):
                raise InvalidInput("invalid registry host %r in %r" % (host, original))
            port = rest[1:]
        if not _IPV6.match(name):
            raise InvalidInput("invalid registry host %r in %r: not a valid IPv6 address in brackets"
                               % (name, original))
    else:
        name, sep, port_text = host.partition(":")
        if sep:
            port = port_text
        if not _DOMAIN_NAME.match(name):
            raise InvalidInput("invalid registry host %r in %r: only letters, digits, '-' and '.' are allowed"
                               % (name, original))
    if port is not None:
        if not port.isdigit() or not port.isascii() or not 0 < int(port) < 65536:
            raise InvalidInput("invalid port %r in registry address %r: must be a number from 1 to 65535"
                               % (port, original))
        return "%s:%d" % (name.lower(), int(port))
    return name.lower()


def _make_registry(host: str, scheme: str | None) -> Registry:
    if host in DOCKER_HUB_ALIASES:
        host = DOCKER_HUB
    return Registry(host, scheme or "https")


def parse_registry(value: str) -> Registry:
    """Parse ``host[:port]``, ``https://host[:port]`` or ``http://host[:port]``.

    A trailing ``/``, ``/v1/`` or ``/v2/`` is accepted (docker ``config.json`` keys carry
    them); any other path is an error. Docker Hub aliases become :data:`DOCKER_HUB`.
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("invalid registry address %r: it is empty" % (value,))
    original = value
    value = value.strip()
    scheme, rest = _split_scheme(value)
    if "://" in rest:
        raise InvalidInput("invalid registry address %r: the scheme must be https:// or http://" % original)
    host, slash, path = rest.partition("/")
    path = slash + path
    if path not in _ACCEPTED_PATHS:
        raise InvalidInput("invalid registry address %r: unexpected path %r (give host[:port] only)"
                           % (original, path))
    return _make_registry(_validate_host(host, original), scheme)


def host_without_port(host: str) -> str:
    """``host[:port]`` -> the lower-cased host name (an IPv6 literal keeps its brackets)."""
    host = host.lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if ":" in host else host


def is_digest(value: str) -> bool:
    """True when ``value`` is a well-formed content digest (``sha256:<64 hex>``...)."""
    try:
        validate_digest(value)
    except InvalidInput:
        return False
    return True


def validate_digest(digest: str, original: str | None = None) -> str:
    where = " in %r" % original if original is not None and original != digest else ""
    match = _DIGEST.match(digest or "")
    if not match:
        raise InvalidInput("invalid digest %r%s: expected algorithm:hex, e.g. sha256:<64 hex digits>"
                           % (digest, where))
    algorithm, encoded = match.group(1), match.group(2)
    expected = _DIGEST_HEX_LENGTHS.get(algorithm)
    if expected is None:
        raise InvalidInput("invalid digest %r%s: unsupported algorithm %r (sha256, sha384 or sha512)"
                           % (digest, where, algorithm))
    if len(encoded) != expected or not _HEX.match(encoded):
        raise InvalidInput("invalid digest %r%s: %s needs %d lower-case hex digits"
                           % (digest, where, algorithm, expected))
    return digest


def validate_tag(tag: str, original: str | None = None) -> str:
    """A tag is ``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``."""
    where = " in %r" % original if original is not None and original != tag else ""
    if not tag:
        raise InvalidInput("invalid tag %r%s: it is empty" % (tag, where))
    if len(tag) > 128:
        raise InvalidInput("invalid tag %r%s: longer than 128 characters" % (tag, where))
    if not _TAG.match(tag):
        raise InvalidInput("invalid tag %r%s: only letters, digits, '_', '.' and '-' are allowed, "
                           "and it cannot start with '.' or '-'" % (tag, where))
    return tag


def validate_repository(name: str, original: str | None = None) -> str:
    """A repository is ``/``-separated lower-case components (``[a-z0-9]`` joined by ``.``, ``_``, ``__`` or ``-``)."""
    where = " in %r" % original if original is not None and original != name else ""
    if not name:
        raise InvalidInput("invalid repository name %r%s: it is empty" % (name, where))
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidInput("invalid repository name %r%s: longer than %d characters"
                           % (name, where, NAME_TOTAL_LENGTH_MAX))
    if name != name.lower():
        raise InvalidInput("invalid repository name %r%s: must be lower case" % (name, where))
    for component in name.split("/"):
        if not component:
            raise InvalidInput("invalid repository name %r%s: empty path component (leading, trailing or "
                               "double '/')" % (name, where))
        if not _PATH_COMPONENT.match(component):
            raise InvalidInput("invalid repository name %r%s: component %r may only contain a-z, 0-9 and "
                               "single separators ('.', '_', '__' or '-') between them"
                               % (name, where, component))
    return name


def repository_items(items: Sequence[Any] | None, keys: Sequence[str]) -> Iterator[tuple[int, dict, str]]:
    """``(index, item, name)`` for each entry of a ``repositories`` option: a repository name or
    a dictionary of ``keys`` with a ``name``. A bare name becomes ``{"name": name}``; unknown
    keys, a missing name and an invalid name raise InvalidInput naming the entry."""
    for index, item in enumerate(items or []):
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict):
            raise InvalidInput("repositories[%d] must be a repository name or a dictionary" % index)
        unknown = sorted(set(item) - set(keys))
        if unknown:
            raise InvalidInput("repositories[%d] has unknown keys %s; allowed: %s"
                               % (index, ", ".join(unknown), ", ".join(keys)))
        if not item.get("name"):
            raise InvalidInput("repositories[%d] needs a name" % index)
        try:
            name = validate_repository(str(item["name"]))
        except InvalidInput as exc:
            raise InvalidInput("repositories[%d] (%s): %s" % (index, item["name"], exc)) from None
        yield index, item, name


@dataclass(frozen=True)
class ImageReference:
    """``registry/repository[:tag][@digest]``; both tag and digest may be None (= ``latest``)."""

    registry: Registry
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What goes into ``/v2/<repository>/manifests/<reference>``."""
        return self.digest or self.tag or "latest"

    @property
    def name(self) -> str:
        """``registry/repository`` as the docker CLI writes it (Hub as ``docker.io``)."""
        host = _HUB_DISPLAY if self.registry.is_docker_hub else self.registry.host
        return "%s/%s" % (host, self.repository)

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += ":" + self.tag
        if self.digest:
            text += "@" + self.digest
        return text

    def with_tag(self, tag: str) -> "ImageReference":
        """The same repository at ``tag`` (any digest is dropped)."""
        return replace(self, tag=validate_tag(tag), digest=None)

    def with_digest(self, digest: str) -> "ImageReference":
        """The same repository at ``digest`` (any tag is dropped)."""
        return replace(self, tag=None, digest=validate_digest(digest))


def _is_registry_component(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost" or component.startswith("[")


def parse_reference(value: str, default_registry: Registry | None = None) -> ImageReference:
    """Parse an image reference the way the docker CLI does.

    ``alpine`` -> Hub ``library/alpine``; ``host:5000/team/app:1.0``; ``app@sha256:...``;
    ``http://127.0.0.1:5000/app:1`` (an explicit scheme forces the first component to be
    the registry). A name without a registry component lives on ``default_registry``
    (Docker Hub when None). Raises :class:`InvalidInput` naming the bad part.
    """
    if not isinstance(value, str) or not value:
        raise InvalidInput("invalid image reference %r: it is empty" % (value,))
    original = value
    if value != value.strip() or any(ch.isspace() for ch in value):
        raise InvalidInput("invalid image reference %r: it contains white space" % original)
    scheme, rest = _split_scheme(value)

    digest = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        validate_digest(digest, original)

    tag = None
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        rest, tag = rest[:colon], rest[colon + 1:]
        validate_tag(tag, original)

    first, slash, remainder = rest.partition("/")
    if scheme is not None:
        if not slash or not first:
            raise InvalidInput("invalid image reference %r: a reference with %s:// needs "
                               "host[:port]/repository" % (original, scheme))
        registry = _make_registry(_validate_host(first, original), scheme)
        repository = remainder
    elif slash and _is_registry_component(first):
        registry = _make_registry(_validate_host(first, original), None)
        repository = remainder
    else:
        registry = default_registry or DEFAULT_REGISTRY
        repository = rest

    validate_repository(repository, original)
    if registry.is_docker_hub and "/" not in repository:
        repository = "library/" + repository
    if len(registry.host) + 1 + len(repository) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidInput("invalid image reference %r: the name is longer than %d characters"
                           % (original, NAME_TOTAL_LENGTH_MAX))
    return ImageReference(registry=registry, repository=repository, tag=tag, digest=digest)
