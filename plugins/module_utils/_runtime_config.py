# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""Client-side registry configuration of container runtimes: what files say, as pure functions.

Docker Engine, containerd and the containers/image family (Podman, CRI-O, skopeo, buildah) each
read their own files to decide how to reach a registry:

* Docker: ``/etc/docker/certs.d/<host:port>/{ca.crt,client.cert,client.key}`` (read on every
  connection) and the ``registry-mirrors`` / ``insecure-registries`` keys of ``daemon.json``
  (read at start and on ``SIGHUP``).
* containerd: ``<certs.d>/<host:port>/hosts.toml`` (read on every pull) once the CRI plugin's
  ``config_path`` names that directory in ``config.toml`` (read at start only).
* containers/image: ``/etc/containers/certs.d/<host:port>/`` like Docker, and drop-in files in
  ``/etc/containers/registries.conf.d/`` (read by every podman/skopeo/buildah run, by CRI-O on
  ``SIGHUP``).

This file renders and merges those files as pure functions: it never touches the disk. Reading,
checking and writing them is ``_client_config``'s (through ``_io``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

from ansible_collections.dockyard.registry.plugins.module_utils._errors import InvalidInput

try:
    import tomllib as _toml  # Python 3.11+
except ImportError:  # pragma: no cover - depends on the managed node's Python
    try:
        import tomli as _toml  # type: ignore[no-redef]
    except ImportError:
        _toml = None  # type: ignore[assignment]

__all__ = [
    "MARKER",
    "DOCKER_HUB_UPSTREAM",
    "RegistryEntry",
    "MirrorEntry",
    "HostSettings",
    "normalise_host",
    "normalise_upstream",
    "parse_mirror",
    "host_settings",
    "render_hosts_toml",
    "render_registries_conf",
    "merge_daemon_json",
    "parse_daemon_json",
    "containerd_registry_table",
    "dump_config_path",
    "dump_legacy_registry_settings",
    "set_containerd_config_path",
    "path_covers",
    "file_name_for",
    "toml_parser",
]

MARKER = ("# Managed by dockyard.registry (role registry_client). Rewritten on every run;"
          " state=absent removes this file.")
DOCKER_HUB_UPSTREAM = "docker.io"
_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io")
_HUB_SERVER = "https://registry-1.docker.io"

_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = re.compile(r"(?P<name>%s(?:\.%s)*)(?::(?P<port>[0-9]{1,5}))?\Z" % (_LABEL, _LABEL))


@dataclass(frozen=True)
class RegistryEntry:
    """One item of ``registries``: how to reach ``host`` (``host[:port]``)."""

    host: str
    state: str = "present"
    ca: str | None = None            # PEM
    client_cert: str | None = None   # PEM
    client_key: str | None = None    # PEM, secret
    insecure: bool = False


@dataclass(frozen=True)
class MirrorEntry:
    """One item of ``mirrors``: pull-through mirrors (``(scheme, host)``) tried before ``upstream``."""

    upstream: str
    mirrors: tuple[tuple[str, str], ...] = ()
    state: str = "present"


@dataclass
class HostSettings:
    """Everything the present entries say about one host, for the files written per host."""

    host: str
    registry: RegistryEntry | None = None
    mirrors: list[tuple[str, str]] = field(default_factory=list)


def normalise_host(value: object, what: str) -> str:
    """``host[:port]`` lower-cased; a scheme, a path or a bad name raise InvalidInput naming ``what``."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("%s must be a registry host as host[:port], got %s" % (what, json.dumps(value)))
    text = value.strip()
    if "://" in text:
        raise InvalidInput(
            "%s %r has a scheme: give host[:port] only (for example %r) and set insecure: true for a"
            " plain-HTTP registry" % (what, text, text.split("://", 1)[1].split("/", 1)[0]))
    if "/" in text:
        raise InvalidInput("%s %r has a path: give host[:port] only (for example %r)"
                           % (what, text, text.split("/", 1)[0]))
    match = _HOST.match(text)
    if not match:
        raise InvalidInput("%s %r is not a valid host[:port] (letters, digits, dots and dashes, then an"
                           " optional :port)" % (what, text))
    port = match.group("port")
    if port is not None and not 0 < int(port) < 65536:
        raise InvalidInput("%s %r has port %s, which is not between 1 and 65535" % (what, text, port))
    return text.lower()


def normalise_upstream(value: object, what: str) -> str:
    """Like :func:`normalise_host`; every Docker Hub alias becomes ``docker.io``."""
    host = normalise_host(value, what)
    return DOCKER_HUB_UPSTREAM if host in _HUB_ALIASES else host


def parse_mirror(value: object, what: str) -> tuple[str, str]:
    """``host[:port]`` (HTTPS), ``https://host[:port]`` or ``http://host[:port]`` -> ``(scheme, host)``."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("%s must be a mirror as host[:port] or http(s)://host[:port], got %s"
                           % (what, json.dumps(value)))
    text = value.strip()
    scheme = "https"
    lowered = text.lower()
    for candidate in ("https://", "http://"):
        if lowered.startswith(candidate):
            scheme = candidate[:-3]
            text = text[len(candidate):]
            break
    else:
        if "://" in text:
            raise InvalidInput("%s %r: only http:// and https:// mirrors exist" % (what, value))
    text = text.rstrip("/")
    if "/" in text:
        raise InvalidInput("%s %r has a path: Docker Engine refuses mirror URLs with a path; give the"
                           " mirror's root URL (for example %r)" % (what, value, "%s://%s" % (scheme, text.split("/", 1)[0])))
    return scheme, normalise_host(text, what)


def file_name_for(host: str) -> str:
    """A file name for ``host``: the colon of a port becomes an underscore."""
    return host.replace(":", "_")


def host_settings(registries: list[RegistryEntry], mirrors: list[MirrorEntry]) -> dict[str, HostSettings]:
    """The per-host view of the present entries (absent ones contribute nothing)."""
    hosts: dict[str, HostSettings] = {}
    for entry in registries:
        if entry.state == "present":
            hosts.setdefault(entry.host, HostSettings(entry.host)).registry = entry
    for entry in mirrors:
        if entry.state == "present":
            settings = hosts.setdefault(entry.upstream, HostSettings(entry.upstream))
            for mirror in entry.mirrors:
                if mirror not in settings.mirrors:
                    settings.mirrors.append(mirror)
    return hosts


def _toml_string(value: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes, \\uXXXX included).
    return json.dumps(value)


def _tls_lines(entry: RegistryEntry | None, host_dir: str, indent: str) -> list[str]:
    lines = []
    if entry is None:
        return lines
    if entry.ca:
        lines.append("%sca = %s" % (indent, _toml_string(os.path.join(host_dir, "ca.crt"))))
    if entry.client_cert and entry.client_key:
        cert = _toml_string(os.path.join(host_dir, "client.cert"))
        key = _toml_string(os.path.join(host_dir, "client.key"))
        lines.append("%sclient = [[%s, %s]]" % (indent, cert, key))
    if entry.insecure:
        lines.append("%sskip_verify = true" % indent)
    return lines


def render_hosts_toml(settings: HostSettings, certs_dir: str, registries: dict[str, RegistryEntry]) -> str:
    """containerd's ``hosts.toml`` for one host.

    Mirrors come first (pull and resolve only), then the host itself. The host gets an explicit
    ``[host."..."]`` table as well as ``server``: containerd 1.6 ignores a hosts.toml without any
    ``host`` table. TLS settings of a mirror come from the registry entry of the mirror's host,
    because containerd reads only the upstream's hosts.toml. An insecure host is tried over HTTPS
    without verification, then over plain HTTP, as Docker and Podman do.
    """
    host = settings.host
    entry = settings.registry
    lines = [MARKER]
    if host == DOCKER_HUB_UPSTREAM:
        server = _HUB_SERVER
    elif entry is not None and entry.insecure:
        server = "http://%s" % host
    else:
        server = "https://%s" % host
    lines.append("server = %s" % _toml_string(server))
    own_dir = os.path.join(certs_dir, host)
    lines.extend(_tls_lines(entry, own_dir, ""))
    for scheme, mirror in settings.mirrors:
        lines.append("")
        lines.append("[host.%s]" % _toml_string("%s://%s" % (scheme, mirror)))
        lines.append('  capabilities = ["pull", "resolve"]')
        mirror_entry = registries.get(mirror)
        if mirror_entry is not None and mirror_entry.state == "present":
            lines.extend(_tls_lines(mirror_entry, os.path.join(certs_dir, mirror), "  "))
    if host != DOCKER_HUB_UPSTREAM:
        targets = ["https://%s" % host]
        if entry is not None and entry.insecure:
            targets.append("http://%s" % host)
        for target in targets:
            lines.append("")
            lines.append("[host.%s]" % _toml_string(target))
            lines.append('  capabilities = ["pull", "resolve", "push"]')
            if target.startswith("https://"):
                lines.extend(_tls_lines(entry, own_dir, "  "))
    elif not settings.mirrors:
        lines.append("")
        lines.append("[host.%s]" % _toml_string(_HUB_SERVER))
        lines.append('  capabilities = ["pull", "resolve", "push"]')
    return "\n".join(lines) + "\n"


def render_registries_conf(settings: HostSettings, registries: dict[str, RegistryEntry]) -> str:
    """A registries.conf.d drop-in (containers-registries.conf(5), v2 format) for one host."""
    entry = settings.registry
    lines = [MARKER, "", "[[registry]]", "location = %s" % _toml_string(settings.host)]
    lines.append("insecure = %s" % ("true" if entry is not None and entry.insecure else "false"))
    for scheme, mirror in settings.mirrors:
        mirror_entry = registries.get(mirror)
        insecure = scheme == "http" or (mirror_entry is not None and mirror_entry.state == "present"
                                        and mirror_entry.insecure)
        lines.append("")
        lines.append("[[registry.mirror]]")
        lines.append("location = %s" % _toml_string(mirror))
        lines.append("insecure = %s" % ("true" if insecure else "false"))
    return "\n".join(lines) + "\n"


def parse_daemon_json(text: str, path: str) -> dict:
    """The existing daemon.json as a dict; InvalidInput naming the file when Docker would refuse it."""
    if not text.strip():
        return {}
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise InvalidInput("%s is not valid JSON (%s): fix or remove it, then run again. Nothing was changed."
                           % (path, exc))
    if not isinstance(config, dict):
        raise InvalidInput("%s must hold a JSON object ({...}), not %s: fix it, then run again. Nothing was"
                           " changed." % (path, type(config).__name__))
    for key in ("registry-mirrors", "insecure-registries"):
        value = config.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise InvalidInput("%s: %r must be a list of strings, not %s: fix it, then run again. Nothing was"
                               " changed." % (path, key, json.dumps(value)))
    return config


def _mirror_key(url: str) -> str:
    return url.strip().rstrip("/").lower()


def merge_daemon_json(config: dict, registries: list[RegistryEntry], hub_mirrors: list[MirrorEntry]) -> dict:
    """daemon.json with our keys merged in; every other key and value stays as it was.

    ``insecure-registries`` gains the present insecure hosts and loses present secure hosts and
    absent hosts. ``registry-mirrors`` (Docker Hub only) gains the mirrors of present Docker Hub
    entries, after the ones already there, and loses the mirrors named by absent ones. A key
    that was there stays, as ``[]`` when it ends empty: dockerd's reload keeps the old value of
    a key that disappeared from the file (seen with 20.10), so only ``[]`` clears it. A key that
    was not there is not added empty.
    """
    result = dict(config)
    insecure = list(config.get("insecure-registries") or [])
    for entry in registries:
        wanted = entry.state == "present" and entry.insecure
        if wanted and entry.host not in insecure:
            insecure.append(entry.host)
        elif not wanted:
            insecure = [h for h in insecure if h.lower() != entry.host]
    mirrors = list(config.get("registry-mirrors") or [])
    for entry in hub_mirrors:
        for scheme, host in entry.mirrors:
            url = "%s://%s" % (scheme, host)
            present = [_mirror_key(m) for m in mirrors]
            if entry.state == "present" and _mirror_key(url) not in present:
                mirrors.append(url)
            elif entry.state == "absent":
                mirrors = [m for m in mirrors if _mirror_key(m) != _mirror_key(url)]
    for key, value in (("insecure-registries", insecure), ("registry-mirrors", mirrors)):
        if value or key in config:
            result[key] = value
    return result


# ---- containerd config.toml -------------------------------------------------------------------

_CRI_TABLES = {
    1: 'plugins.cri.registry',
    2: 'plugins."io.containerd.grpc.v1.cri".registry',
    3: 'plugins."io.containerd.cri.v1.images".registry',
}
_DUMP_REGISTRY = re.compile(r'^\s*\[plugins\."io\.containerd\.(?:grpc\.v1\.cri|cri\.v1\.images)"\.registry\]\s*$')
_DUMP_LEGACY = re.compile(
    r'^\s*\[plugins\."io\.containerd\.(?:grpc\.v1\.cri|cri\.v1\.images)"\.registry\.'
    r'(?:mirrors\.(?P<mirror>"[^"]*"|[^.\]]+)|configs\.(?P<config>"[^"]*"|[^.\]]+)\.tls)\]\s*$')
_HEADER = re.compile(r"^\s*\[")
_VERSION = re.compile(r"^\s*version\s*=\s*(\d+)\s*(?:#.*)?$", re.MULTILINE)
_CONFIG_PATH_LINE = re.compile(r'^\s*config_path\s*=')


def dump_config_path(dump: str) -> str | None:
    """The CRI plugin's effective ``registry.config_path`` in ``containerd config dump`` output."""
    inside = False
    for line in dump.splitlines():
        if _HEADER.match(line):
            inside = bool(_DUMP_REGISTRY.match(line))
            continue
        if inside:
            match = re.match(r'^\s*config_path\s*=\s*"((?:[^"\\]|\\.)*)"\s*$', line)
            if match:
                return json.loads('"%s"' % match.group(1))
    return None


def dump_legacy_registry_settings(dump: str) -> list[str]:
    """Deprecated ``registry.mirrors`` / ``registry.configs.<host>.tls`` tables that forbid ``config_path``."""
    found = []
    for line in dump.splitlines():
        match = _DUMP_LEGACY.match(line)
        if match:
            found.append(line.strip())
    return found


def path_covers(config_path: str | None, certs_dir: str) -> bool:
    """Whether containerd's ``config_path`` (``:``-separated) includes ``certs_dir``."""
    if not config_path:
        return False
    wanted = os.path.normpath(certs_dir)
    return any(os.path.normpath(p) == wanted for p in config_path.split(":") if p)


def containerd_registry_table(text: str) -> str:
    """The table that holds the CRI registry settings for this file's config ``version``."""
    match = _VERSION.search(text)
    version = int(match.group(1)) if match else (2 if not text.strip() else 1)
    if version not in _CRI_TABLES:
        raise InvalidInput("containerd config version %d is unknown (1, 2 and 3 exist)" % version)
    return _CRI_TABLES[version]


def _header_pattern(table: str) -> re.Pattern[str]:
    parts = []
    for part in re.findall(r'"[^"]*"|[^.]+', table):
        if part.startswith('"'):
            name = part[1:-1]
            bare = "|%s" % re.escape(name) if re.match(r"^[A-Za-z0-9_-]+$", name) else ""
            parts.append(r'(?:"%s"|\'%s\'%s)' % (re.escape(name), re.escape(name), bare))
        else:
            parts.append(r'(?:%s|"%s")' % (re.escape(part), re.escape(part)))
    return re.compile(r"^\s*\[\s*%s\s*\]\s*(?:#.*)?$" % r"\s*\.\s*".join(parts))


def set_containerd_config_path(text: str, config_path: str) -> str:
    """``text`` (a config.toml, possibly empty) with the CRI registry ``config_path`` set.

    A line-level edit that keeps every other line as it was: the ``config_path`` line of the
    registry table is replaced, or added under the table's header, or the table is appended.
    The caller checks the result with ``containerd config dump``: a file that defines the table
    in another way (inline or dotted keys) then fails to load or keeps the old value, and the
    caller stops instead of writing it.
    """
    table = containerd_registry_table(text)
    value_line = "config_path = %s" % _toml_string(config_path)
    lines = text.splitlines()
    header = _header_pattern(table)
    for index, line in enumerate(lines):
        if not header.match(line):
            continue
        indent = re.match(r"^(\s*)", line).group(1) + "  "
        end = index + 1
        while end < len(lines) and not _HEADER.match(lines[end]):
            if _CONFIG_PATH_LINE.match(lines[end]):
                current = re.match(r"^(\s*)", lines[end]).group(1)
                lines[end] = current + value_line
                return "\n".join(lines) + "\n"
            end += 1
        lines.insert(index + 1, indent + value_line)
        return "\n".join(lines) + "\n"
    prefix = []
    if not text.strip():
        prefix = ["version = 2"]
    elif lines and lines[-1].strip():
        lines.append("")
    lines.extend(prefix + [
        "# Added by dockyard.registry (role registry_client): containerd's CRI plugin reads registry hosts",
        "# (hosts.toml) from these directories.",
        "[%s]" % table,
        "  " + value_line,
    ])
    return "\n".join(lines) + "\n"


def toml_parser():
    """The TOML parser of this Python (``tomllib`` from 3.11, ``tomli`` before it when installed),
    or None when it has neither; its ``loads`` raises a ``ValueError`` on bad TOML."""
    return _toml
