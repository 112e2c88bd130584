#!/usr/bin/python
# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_client_config
short_description: Make Docker, containerd and Podman on a host trust, mirror and reach registries
version_added: 0.2.0
description:
  - Writes the client-side registry configuration of the container runtimes on the managed node, and
    reloads a runtime only when it does not read the changed file live.
  - Docker Engine - C(<docker_certs_dir>/<host:port>/ca.crt), C(client.cert) and C(client.key) (read on every
    connection), and the keys C(registry-mirrors) and C(insecure-registries) of O(docker_daemon_json), merged
    so that every other key and value stays as it was; Docker is reloaded (C(SIGHUP), or C(systemctl reload
    docker)) when that file changed, never restarted.
  - containerd - C(<containerd_certs_dir>/<host:port>/hosts.toml) with the server, the mirrors and the TLS
    settings, next to copies of the certificates (read on every pull). The CRI plugin reads that directory only
    when C(config_path) names it in O(containerd_config); when it does not, the module adds it, which needs one
    restart of containerd (done through systemd or O(containerd_restart_command), otherwise a warning says so).
  - Podman, CRI-O, skopeo and buildah (containers/image) - C(<containers_dir>/certs.d/<host:port>/) like Docker,
    and one drop-in C(<containers_dir>/registries.conf.d/<prefix><host_port>.conf) per host (read by every
    podman, skopeo and buildah run; CRI-O is reloaded through systemd when it runs there).
  - Everything is read and checked before anything is written - the existing C(daemon.json), C(config.toml)
    (through C(containerd config dump)) and the C(registries.conf.d) files must parse, a changed C(daemon.json)
    must pass C(dockerd --validate) where that exists, a changed C(config.toml) must load and give the intended
    C(config_path). On any problem the module fails and no file changes.
  - Files are written atomically; C(client.key) is mode C(0600). O(registries[].state=absent) removes exactly the
    files and entries this module writes for that host.
  - The CA itself is not checked here (PEM, expiry, CA flag); the role M(dockyard.registry.registry_client) does that
    on the controller before calling this module.
author:
  - dockyard.registry contributors (@dockyard)
options:
  registries:
    description:
      - The registries this host must reach.
    type: list
    elements: dict
    default: []
    suboptions:
      host:
        description:
          - The registry as C(host[:port]), exactly as it appears in image names. No scheme, no path.
        type: str
        required: true
      state:
        description:
          - V(present) writes the files for O(registries[].host); V(absent) removes them and its
            C(insecure-registries) entry.
        type: str
        choices: [present, absent]
        default: present
      ca_content:
        description:
          - The CA certificate(s) (PEM) that signed the registry's certificate.
        type: str
      client_cert_content:
        description:
          - Client certificate (PEM) for registries that ask for mutual TLS. Needs O(registries[].client_key_content).
        type: str
      client_key_content:
        description:
          - Private key (PEM) of O(registries[].client_cert_content). Written with mode C(0600); never returned or shown.
        type: str
      insecure:
        description:
          - The registry speaks plain HTTP (or HTTPS with a certificate that cannot be verified).
          - Docker gets the host in C(insecure-registries), containerd tries HTTPS without verification then
            HTTP, Podman gets C(insecure = true).
        type: bool
        default: false
  mirrors:
    description:
      - Pull-through mirrors, tried in order before the upstream registry.
      - Docker Engine mirrors only Docker Hub (C(registry-mirrors)); mirrors of other upstreams reach containerd
        and Podman only, and the module warns about it when Docker is configured.
    type: list
    elements: dict
    default: []
    suboptions:
      upstream:
        description:
          - The registry being mirrored, as C(host[:port]); C(docker.io) (or C(index.docker.io),
            C(registry-1.docker.io)) for Docker Hub.
        type: str
        required: true
      mirrors:
        description:
          - Mirror URLs, C(https://host[:port]), C(http://host[:port]) or C(host[:port]) (HTTPS). No path.
          - The TLS settings of a mirror come from the O(registries) entry of the mirror's host.
          - With O(mirrors[].state=absent) these URLs are taken out of C(registry-mirrors).
        type: list
        elements: str
        default: []
      state:
        description:
          - V(absent) removes the mirror configuration of O(mirrors[].upstream).
        type: str
        choices: [present, absent]
        default: present
  runtimes:
    description:
      - Which runtimes to configure. V(auto) alone configures those found on the host. V(podman) stands for the
        whole containers/image family (Podman, CRI-O, skopeo, buildah), found when any of O(containers_commands) is.
      - A runtime listed explicitly but not installed fails the module before anything is written.
    type: list
    elements: str
    choices: [auto, docker, containerd, podman]
    default: [auto]
  docker_certs_dir:
    description: Docker's per-registry certificate directory. dockerd has no option to move it.
    type: path
    default: /etc/docker/certs.d
  docker_daemon_json:
    description: The dockerd configuration file (C(--config-file)).
    type: path
    default: /etc/docker/daemon.json
  docker_command:
    description: The dockerd binary; used to find Docker and to validate a changed C(daemon.json).
    type: str
    default: dockerd
  docker_reload:
    description:
      - V(auto) reloads dockerd after C(daemon.json) changed - C(systemctl reload) when systemd runs O(docker_service),
        otherwise C(SIGHUP) to the process in O(docker_pidfile). Nothing happens when no dockerd runs.
      - V(never) only reports that a reload is needed.
    type: str
    choices: [auto, never]
    default: auto
  docker_service:
    description: The systemd unit of dockerd.
    type: str
    default: docker
  docker_pidfile:
    description: dockerd's C(--pidfile), used when systemd does not run dockerd.
    type: path
    default: /var/run/docker.pid
  containerd_config:
    description: containerd's configuration file. A missing file is created with C(config_path) only.
    type: path
    default: /etc/containerd/config.toml
  containerd_certs_dir:
    description: The directory of C(<host:port>/hosts.toml) files; written into C(config_path).
    type: path
    default: /etc/containerd/certs.d
  containerd_command:
    description: The containerd binary; used to find containerd and to read and check O(containerd_config).
    type: str
    default: containerd
  containerd_manage_config_path:
    description:
      - Add O(containerd_certs_dir) to the CRI plugin's C(config_path) when it is not there. With V(false) the
        module only warns when containerd would not read the hosts files.
    type: bool
    default: true
  containerd_restart:
    description:
      - V(auto) restarts containerd after C(config_path) was added - with O(containerd_restart_command) when given,
        otherwise C(systemctl restart) when systemd runs O(containerd_service); otherwise it warns.
      - V(never) only warns. Running containers survive a containerd restart; on a Kubernetes node the kubelet
        sees the runtime go away for a moment.
    type: str
    choices: [auto, never]
    default: auto
  containerd_restart_command:
    description: A command (argument list) that restarts containerd, for hosts where systemd does not run it.
    type: list
    elements: str
    default: []
  containerd_service:
    description: The systemd unit of containerd.
    type: str
    default: containerd
  containers_dir:
    description:
      - The containers/image configuration directory (C(certs.d/), C(registries.conf.d/)). Rootless users have
        the same layout in C(~/.config/containers).
    type: path
    default: /etc/containers
  containers_conf_prefix:
    description: Prefix of the drop-in file names in C(registries.conf.d) (files load in lexical order).
    type: str
    default: 50-dockyard-
  containers_commands:
    description: The commands whose presence means the containers/image family is installed.
    type: list
    elements: str
    default: [podman, skopeo, buildah, crio]
  crio_service:
    description: The systemd unit of CRI-O, reloaded when it runs and a drop-in changed.
    type: str
    default: crio
  system_trust:
    description:
      - Also put the CA of each present registry into the system trust store and run O(system_trust_command).
      - Docker reads the system store only when it starts; it needs a restart for this to take effect (the
        C(certs.d) file works without).
      - Files this module put there are removed for absent registries whatever this option says.
    type: bool
    default: false
  system_trust_dir:
    description: The system trust anchors directory. Default - the first of C(/usr/local/share/ca-certificates)
      (Debian, Ubuntu) and C(/etc/pki/ca-trust/source/anchors) (EL, Fedora) that exists.
    type: path
  system_trust_command:
    description: The command that rebuilds the system store. Default - C(update-ca-certificates) or
      C(update-ca-trust extract), matching O(system_trust_dir).
    type: list
    elements: str
notes:
  - Runs on the managed node as root. Needs no Python library beyond the standard library; the C(registries.conf.d)
    syntax check needs Python 3.11 (C(tomllib)) or the C(tomli) library and is skipped with a warning otherwise.
seealso:
  - name: Role dockyard.registry.registry_client
    description: >-
      Validates the CAs, calls this module, logs in; the usual way to use it
      (C(ansible-doc -t role dockyard.registry.registry_client)).
    link: https://example.invalid/dockyard/registry/-/blob/main/roles/registry_client/README.md
  - name: Docker - verify repository client with certificates
    description: The certs.d layout.
    link: https://docs.docker.com/engine/security/certificates/
  - name: containerd registry host configuration
    description: hosts.toml and config_path.
    link: https://github.com/containerd/containerd/blob/main/docs/hosts.md
  - name: containers-registries.conf(5)
    description: The registries.conf.d drop-in format.
    link: https://github.com/containers/image/blob/main/docs/containers-registries.conf.5.md
extends_documentation_fragment:
  - dockyard.registry.attributes
  - dockyard.registry.attributes.ACTIONGROUP_NONE
attributes:
  check_mode:
    support: full
    details: Reads and checks everything, reports what would change and what would be reloaded; writes nothing.
  diff_mode:
    support: full
    details: One diff per file; a client key's content is never shown.
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Trust a private registry and use a Docker Hub mirror, for every runtime found on the host
  dockyard.registry.registry_client_config:
    registries:
      - host: registry.example.internal:5000
        ca_content: "{{ lookup('ansible.builtin.file', 'files/registry-ca.crt') }}"
      - host: build-cache.example.internal:5001
        insecure: true
    mirrors:
      - upstream: docker.io
        mirrors: [https://registry.example.internal:5000]

- name: Only containerd, and let an OpenRC host restart it
  dockyard.registry.registry_client_config:
    runtimes: [containerd]
    containerd_restart_command: [rc-service, containerd, restart]
    registries:
      - host: registry.example.internal:5000
        ca_content: "{{ registry_ca_pem }}"

- name: Stop using a registry
  dockyard.registry.registry_client_config:
    registries:
      - host: build-cache.example.internal:5001
        state: absent
"""

RETURN = r"""
runtimes:
  description: The runtimes that were configured.
  returned: always
  type: list
  elements: str
  sample: [docker, containerd, podman]
files:
  description: Every file the module manages for the given hosts, and what happened to it.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The file.
      type: str
    runtime:
      description: V(docker), V(containerd), V(podman) or V(system).
      type: str
    action:
      description: V(created), V(updated), V(removed) or V(unchanged) (in check mode - what would happen).
      type: str
  sample: [{path: /etc/docker/certs.d/registry.example.internal:5000/ca.crt, runtime: docker, action: created}]
reloads:
  description: What was (or, in check mode or with V(never), would have to be) reloaded or restarted.
  returned: always
  type: list
  elements: dict
  contains:
    runtime:
      description: V(docker), V(containerd), V(crio) or V(system).
      type: str
    action:
      description: V(reload), V(restart) or V(update) (system trust store).
      type: str
    done:
      description: Whether it was done.
      type: bool
    how:
      description: How it was done (or why not).
      type: str
  sample: [{runtime: docker, action: reload, done: true, how: SIGHUP to dockerd pid 4242}]
ca_files:
  description: For each present registry with a CA, the CA file written for it (for a later login's C(ca_cert)).
  returned: always
  type: dict
  sample: {"registry.example.internal:5000": /etc/docker/certs.d/registry.example.internal:5000/ca.crt}
client_files:
  description: For each present registry with a client certificate, the C(cert) and C(key) files written for it.
  returned: always
  type: dict
containerd_config_path:
  description: The CRI plugin's C(config_path) after the run (V(null) when containerd is not configured).
  returned: always
  type: str
pending:
  description: In check mode, the files that would change and so are not in place yet (a later task that needs
    them, such as a login that uses the CA, cannot run yet). Empty otherwise.
  returned: always
  type: list
  elements: str
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional, Tuple

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockyard.registry.plugins.module_utils._errors import InvalidInput, RegistryError
from ansible_collections.dockyard.registry.plugins.module_utils import _runtime_config as rc

try:
    import tomllib as _toml  # Python 3.11+
except ImportError:  # pragma: no cover - depends on the managed node's Python
    try:
        import tomli as _toml  # type: ignore[no-redef]
    except ImportError:
        _toml = None  # type: ignore[assignment]

_SEARCH_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
_CERT_NAMES = ("ca.crt", "client.cert", "client.key")


def argument_spec() -> dict:
    return dict(
        registries=dict(type="list", elements="dict", default=[], options=dict(
            host=dict(type="str", required=True),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            ca_content=dict(type="str"),
            client_cert_content=dict(type="str"),
            client_key_content=dict(type="str", no_log=True),
            insecure=dict(type="bool", default=False),
        )),
        mirrors=dict(type="list", elements="dict", default=[], options=dict(
            upstream=dict(type="str", required=True),
            mirrors=dict(type="list", elements="str", default=[]),
            state=dict(type="str", default="present", choices=["present", "absent"]),
        )),
        runtimes=dict(type="list", elements="str", default=["auto"],
                      choices=["auto", "docker", "containerd", "podman"]),
        docker_certs_dir=dict(type="path", default="/etc/docker/certs.d"),
        docker_daemon_json=dict(type="path", default="/etc/docker/daemon.json"),
        docker_command=dict(type="str", default="dockerd"),
        docker_reload=dict(type="str", default="auto", choices=["auto", "never"]),
        docker_service=dict(type="str", default="docker"),
        docker_pidfile=dict(type="path", default="/var/run/docker.pid"),
        containerd_config=dict(type="path", default="/etc/containerd/config.toml"),
        containerd_certs_dir=dict(type="path", default="/etc/containerd/certs.d"),
        containerd_command=dict(type="str", default="containerd"),
        containerd_manage_config_path=dict(type="bool", default=True),
        containerd_restart=dict(type="str", default="auto", choices=["auto", "never"]),
        containerd_restart_command=dict(type="list", elements="str", default=[]),
        containerd_service=dict(type="str", default="containerd"),
        containers_dir=dict(type="path", default="/etc/containers"),
        containers_conf_prefix=dict(type="str", default="50-dockyard-"),
        containers_commands=dict(type="list", elements="str", default=["podman", "skopeo", "buildah", "crio"]),
        crio_service=dict(type="str", default="crio"),
        system_trust=dict(type="bool", default=False),
        system_trust_dir=dict(type="path"),
        system_trust_command=dict(type="list", elements="str"),
    )


def find_command(name: str) -> Optional[str]:
    """``name`` on PATH or in the usual sbin/bin directories; an absolute path must exist."""
    if os.path.isabs(name):
        return name if os.access(name, os.X_OK) else None
    path = os.environ.get("PATH", "")
    extra = [d for d in _SEARCH_PATH if d not in path.split(os.pathsep)]
    return shutil.which(name, path=os.pathsep.join([p for p in [path] + extra if p]))


def _read(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise InvalidInput("%s is a directory, not a file: remove it or point the option at the file. Nothing"
                           " was changed." % path)


def _systemd_active(unit: str) -> bool:
    if not os.path.isdir("/run/systemd/system"):
        return False
    systemctl = find_command("systemctl")
    if not systemctl:
        return False
    return subprocess.run([systemctl, "is-active", "--quiet", unit], check=False).returncode == 0


class Change:
    """One file: what it holds now and what it should hold (``None``: absent)."""

    def __init__(self, path: str, runtime: str, before: Optional[bytes], after: Optional[bytes],
                 mode: int = 0o644, secret: bool = False, host_dir: bool = False) -> None:
        self.path = path
        self.host_dir = host_dir  # its directory belongs to one host: removed when left empty
        self.runtime = runtime
        self.before = before
        self.after = after
        self.mode = mode
        self.secret = secret
        self.mode_changed = False
        if before is not None and after is not None:
            try:
                self.mode_changed = (os.stat(path).st_mode & 0o7777) != mode
            except OSError:
                self.mode_changed = False

    @property
    def action(self) -> str:
        if self.before is None and self.after is None:
            return "unchanged"
        if self.before is None:
            return "created"
        if self.after is None:
            return "removed"
        if self.before != self.after or self.mode_changed:
            return "updated"
        return "unchanged"

    def diff(self) -> dict:
        def show(data: Optional[bytes]) -> str:
            if data is None:
                return ""
            if self.secret:
                return "(private key, %d bytes, not shown)\n" % len(data)
            return data.decode("utf-8", "replace")
        return {"before_header": self.path, "after_header": self.path,
                "before": show(self.before), "after": show(self.after)}


class RuntimeConfig:
    def __init__(self, params: dict, check_mode: bool = False) -> None:
        self.p = params
        self.check_mode = check_mode
        self.warnings: List[str] = []
        self.changes: List[Change] = []
        self.reloads: List[dict] = []
        self.ca_files: Dict[str, str] = {}
        self.client_files: Dict[str, dict] = {}
        self.containerd_config_path: Optional[str] = None
        self.docker_pid: Optional[int] = None
        self.daemon_json_change: Optional[Change] = None
        self.containerd_config_change: Optional[Change] = None

    # ---- input ------------------------------------------------------------------------------
    def entries(self) -> Tuple[List[rc.RegistryEntry], List[rc.MirrorEntry]]:
        registries: List[rc.RegistryEntry] = []
        seen = set()
        for index, item in enumerate(self.p["registries"]):
            what = "registries[%d].host" % index
            host = rc.normalise_host(item["host"], what)
            if host in seen:
                raise InvalidInput("%s: %s is listed twice; merge the two entries" % (what, host))
            seen.add(host)
            cert, key = item.get("client_cert_content"), item.get("client_key_content")
            if bool(cert) != bool(key):
                raise InvalidInput("registries[%d] (%s): client_cert and client_key must be given together"
                                   % (index, host))
            for name, value in (("ca", item.get("ca_content")), ("client_cert", cert)):
                if value and "-----BEGIN CERTIFICATE-----" not in value:
                    raise InvalidInput("registries[%d] (%s): %s is not a PEM certificate (no '-----BEGIN"
                                       " CERTIFICATE-----' line)" % (index, host, name))
            if key and "PRIVATE KEY-----" not in key:
                raise InvalidInput("registries[%d] (%s): client_key is not a PEM private key" % (index, host))
            registries.append(rc.RegistryEntry(
                host=host, state=item["state"], ca=_pem(item.get("ca_content")), client_cert=_pem(cert),
                client_key=_pem(key), insecure=bool(item.get("insecure"))))
        mirrors: List[rc.MirrorEntry] = []
        seen = set()
        for index, item in enumerate(self.p["mirrors"]):
            upstream = rc.normalise_upstream(item["upstream"], "mirrors[%d].upstream" % index)
            if upstream in seen:
                raise InvalidInput("mirrors[%d]: upstream %s is listed twice; put all its mirrors in one entry"
                                   % (index, upstream))
            seen.add(upstream)
            urls = tuple(rc.parse_mirror(url, "mirrors[%d].mirrors[%d]" % (index, n))
                         for n, url in enumerate(item.get("mirrors") or []))
            if item["state"] == "present" and not urls:
                raise InvalidInput("mirrors[%d] (%s): give at least one mirror URL, or state: absent"
                                   % (index, upstream))
            mirrors.append(rc.MirrorEntry(upstream=upstream, mirrors=urls, state=item["state"]))
        return registries, mirrors

    def runtimes(self) -> List[str]:
        wanted = self.p["runtimes"]
        found = {
            "docker": find_command(self.p["docker_command"]) is not None,
            "containerd": find_command(self.p["containerd_command"]) is not None,
            "podman": any(find_command(c) is not None for c in self.p["containers_commands"]),
        }
        if "auto" in wanted:
            if len(wanted) > 1:
                raise InvalidInput("runtimes: auto cannot be combined with explicit runtimes (%s); give either"
                                   " [auto] or the list" % ", ".join(w for w in wanted if w != "auto"))
            chosen = [name for name in ("docker", "containerd", "podman") if found[name]]
            if not chosen:
                self.warnings.append("No container runtime found (dockerd, containerd, %s): no runtime was"
                                     " configured" % ", ".join(self.p["containers_commands"]))
            return chosen
        missing = [name for name in wanted if not found[name]]
        if missing:
            hints = {
                "docker": "%s not found" % self.p["docker_command"],
                "containerd": "%s not found" % self.p["containerd_command"],
                "podman": "none of %s found" % ", ".join(self.p["containers_commands"]),
            }
            raise InvalidInput(
                "runtimes lists %s, but %s on this host: install it, or remove it from the list (or use"
                " [auto]). Nothing was changed." % (", ".join(missing), "; ".join(hints[m] for m in missing)))
        return [name for name in ("docker", "containerd", "podman") if name in wanted]

    # ---- planning ---------------------------------------------------------------------------
    def add(self, change: Change) -> None:
        if change.before is None and change.after is None:
            return
        self.changes.append(change)

    def plan_certs(self, runtime: str, root: str, registries: List[rc.RegistryEntry]) -> None:
        for entry in registries:
            directory = os.path.join(root, entry.host)
            wanted = {}
            if entry.state == "present":
                if entry.ca:
                    wanted["ca.crt"] = entry.ca
                if entry.client_cert and entry.client_key:
                    wanted["client.cert"] = entry.client_cert
                    wanted["client.key"] = entry.client_key
            for name in _CERT_NAMES:
                path = os.path.join(directory, name)
                content = wanted.get(name)
                self.add(Change(path, runtime, _read(path), content.encode() if content else None,
                                mode=0o600 if name == "client.key" else 0o644, secret=name == "client.key",
                                host_dir=True))
            if "ca.crt" in wanted:
                self.ca_files.setdefault(entry.host, os.path.join(directory, "ca.crt"))
            if "client.cert" in wanted:
                self.client_files.setdefault(entry.host, {"cert": os.path.join(directory, "client.cert"),
                                                          "key": os.path.join(directory, "client.key")})

    def plan_owned_file(self, runtime: str, path: str, content: Optional[str], host_dir: bool = False) -> None:
        before = _read(path)
        owned = before is None or before.decode("utf-8", "replace").startswith(rc.MARKER)
        if content is None and not owned:
            self.warnings.append("%s was not written by dockyard.registry (no marker line): left as it is" % path)
            return
        if content is not None and not owned:
            self.warnings.append("%s was not written by dockyard.registry: replaced (the diff shows the old"
                                 " content)" % path)
        self.add(Change(path, runtime, before, content.encode() if content is not None else None, host_dir=host_dir))

    def plan_docker(self, registries, mirrors, hosts) -> None:
        p = self.p
        self.plan_certs("docker", p["docker_certs_dir"], registries)
        for entry in mirrors:
            if entry.upstream != rc.DOCKER_HUB_UPSTREAM and entry.state == "present":
                self.warnings.append("Docker Engine mirrors Docker Hub only (registry-mirrors): the mirrors of %s"
                                     " reach containerd and Podman only" % entry.upstream)
        path = p["docker_daemon_json"]
        raw = _read(path)
        text = raw.decode("utf-8", "replace") if raw is not None else ""
        config = rc.parse_daemon_json(text, path)
        hub = [m for m in mirrors if m.upstream == rc.DOCKER_HUB_UPSTREAM]
        merged = rc.merge_daemon_json(config, registries, hub)
        self.docker_pid = self._docker_pid()
        if merged != config:
            self._check_docker_flags(merged, config)
            after = (json.dumps(merged, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
            mode = os.stat(path).st_mode & 0o7777 if raw is not None else 0o644
            change = Change(path, "docker", raw, after, mode=mode)
            self._validate_daemon_json(path, after)
            self.add(change)
            self.daemon_json_change = change

    def _docker_pid(self) -> Optional[int]:
        raw = _read(self.p["docker_pidfile"])
        if raw is None:
            return None
        try:
            pid = int(raw.decode().strip())
        except ValueError:
            return None
        return pid if os.path.exists("/proc/%d" % pid) else None

    def _check_docker_flags(self, merged: dict, config: dict) -> None:
        if self.docker_pid is None:
            return
        try:
            with open("/proc/%d/cmdline" % self.docker_pid, "rb") as handle:
                args = handle.read().decode("utf-8", "replace").split("\0")
        except OSError:
            return
        for key, flag in (("insecure-registries", "--insecure-registry"), ("registry-mirrors", "--registry-mirror")):
            if key in merged and any(a == flag or a.startswith(flag + "=") for a in args):
                raise InvalidInput(
                    "dockerd (pid %s) was started with %s, and Docker refuses a setting given both as a flag and"
                    " in %s: move the flag's values into %s under %r and drop the flag. Nothing was changed."
                    % (self.docker_pid, flag, self.p["docker_daemon_json"], self.p["docker_daemon_json"], key))
        for index, arg in enumerate(args):
            value = None
            if arg == "--config-file" and index + 1 < len(args):
                value = args[index + 1]
            elif arg.startswith("--config-file="):
                value = arg.split("=", 1)[1]
            if value and os.path.realpath(value) != os.path.realpath(self.p["docker_daemon_json"]):
                self.warnings.append("dockerd (pid %s) reads %s, not %s: set docker_daemon_json to it"
                                     % (self.docker_pid, value, self.p["docker_daemon_json"]))

    def _validate_daemon_json(self, path: str, data: bytes) -> None:
        dockerd = find_command(self.p["docker_command"])
        if not dockerd:
            return
        helptext = subprocess.run([dockerd, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  check=False).stdout.decode("utf-8", "replace")
        if "--validate" not in helptext:
            return  # dockerd before 23.0: the JSON checks above are what can be done
        fd, tmp = tempfile.mkstemp(prefix="daemon.json.validate.", suffix=".json")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            proc = subprocess.run([dockerd, "--validate", "--config-file", tmp], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, check=False)
        finally:
            os.unlink(tmp)
        if proc.returncode != 0:
            raise InvalidInput("dockerd --validate rejects %s as it would be written: %s. Fix the other keys of"
                               " the file, then run again. Nothing was changed."
                               % (path, proc.stdout.decode("utf-8", "replace").strip()))

    def _containerd_dump(self, path: Optional[str]) -> Tuple[int, str]:
        binary = find_command(self.p["containerd_command"])
        proc = subprocess.run([binary, "--config", path or os.devnull, "config", "dump"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, check=False)
        return proc.returncode, (proc.stdout if proc.returncode == 0 else proc.stderr).decode("utf-8", "replace")

    def plan_containerd(self, registries, mirrors, hosts) -> None:
        p = self.p
        root = p["containerd_certs_dir"]
        self.plan_certs("containerd", root, registries)
        by_host = {e.host: e for e in registries}
        managed = [e.host for e in registries] + [m.upstream for m in mirrors]
        for host in dict.fromkeys(managed):
            settings = hosts.get(host)
            content = rc.render_hosts_toml(settings, root, by_host) if settings else None
            self.plan_owned_file("containerd", os.path.join(root, host, "hosts.toml"), content, host_dir=True)
        path = p["containerd_config"]
        raw = _read(path)
        code, dump = self._containerd_dump(path if raw is not None else None)
        if code != 0:
            raise InvalidInput("containerd cannot load %s: %s. Fix the file (containerd --config %s config dump"
                               " shows what it reads), then run again. Nothing was changed." % (path, dump.strip(), path))
        current = rc.dump_config_path(dump)
        self.containerd_config_path = current
        if rc.path_covers(current, root) or not hosts:
            return
        if not p["containerd_manage_config_path"]:
            self.warnings.append("containerd's CRI plugin does not read %s (config_path is %r in %s): the hosts.toml"
                                 " files reach ctr --hosts-dir only" % (root, current or "", path))
            return
        legacy = rc.dump_legacy_registry_settings(dump)
        if legacy:
            raise InvalidInput(
                "%s configures registries the deprecated way (%s); containerd refuses those together with"
                " config_path. Move them into %s/<host>/hosts.toml files (or remove them), or set"
                " containerd_manage_config_path: false. Nothing was changed." % (path, ", ".join(legacy), root))
        wanted = root if not current else "%s:%s" % (root, current)
        text = raw.decode("utf-8", "replace") if raw is not None else ""
        candidate = rc.set_containerd_config_path(text, wanted)
        self._check_containerd_candidate(path, candidate, wanted)
        mode = os.stat(path).st_mode & 0o7777 if raw is not None else 0o644
        change = Change(path, "containerd", raw, candidate.encode("utf-8"), mode=mode)
        self.add(change)
        self.containerd_config_change = change
        self.containerd_config_path = wanted

    def _check_containerd_candidate(self, path: str, candidate: str, wanted: str) -> None:
        fd, tmp = tempfile.mkstemp(prefix="config.toml.validate.", suffix=".toml")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(candidate)
            code, dump = self._containerd_dump(tmp)
        finally:
            os.unlink(tmp)
        got = rc.dump_config_path(dump) if code == 0 else None
        if code != 0 or got != wanted:
            reason = dump.strip() if code != 0 else "containerd then reads config_path %r" % got
            raise InvalidInput(
                "Could not add config_path to %s automatically (%s). Add config_path = %r to the table [%s]"
                " by hand, then run again. Nothing was changed."
                % (path, reason, wanted, rc.containerd_registry_table(candidate)))

    def plan_podman(self, registries, mirrors, hosts) -> None:
        p = self.p
        root = os.path.join(p["containers_dir"], "certs.d")
        self.plan_certs("podman", root, registries)
        dropins = os.path.join(p["containers_dir"], "registries.conf.d")
        self._check_containers_files(dropins)
        by_host = {e.host: e for e in registries}
        managed = [e.host for e in registries] + [m.upstream for m in mirrors]
        for host in dict.fromkeys(managed):
            settings = hosts.get(host)
            content = rc.render_registries_conf(settings, by_host) if settings else None
            name = "%s%s.conf" % (p["containers_conf_prefix"], rc.file_name_for(host))
            self.plan_owned_file("podman", os.path.join(dropins, name), content)

    def _check_containers_files(self, dropins: str) -> None:
        files = [os.path.join(self.p["containers_dir"], "registries.conf")]
        if os.path.isdir(dropins):
            files += [os.path.join(dropins, n) for n in sorted(os.listdir(dropins)) if n.endswith(".conf")]
        if _toml is None:
            self.warnings.append("Python %s here has neither tomllib nor tomli: the syntax of %s and the files in %s"
                                 " was not checked" % (".".join(map(str, sys.version_info[:2])),
                                                       files[0], dropins))
            return
        for path in files:
            raw = _read(path)
            if raw is None:
                continue
            try:
                data = _toml.loads(raw.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise InvalidInput("%s does not parse as TOML (%s), and podman, skopeo and buildah refuse to run"
                                   " while it is there: fix or remove it, then run again. Nothing was changed."
                                   % (path, exc))
            if path == files[0] and "registries" in data and "registry" not in data:
                raise InvalidInput(
                    "%s uses the old v1 format ([registries.search] ...), which cannot be combined with the v2"
                    " [[registry]] drop-ins this role writes: convert it to v2 (see containers-registries.conf(5)),"
                    " then run again. Nothing was changed." % path)

    def plan_system_trust(self, registries) -> None:
        directory = self.p["system_trust_dir"] or self._default_trust_dir()
        if directory is None:
            if self.p["system_trust"]:
                raise InvalidInput("system_trust: no trust anchors directory found (/usr/local/share/ca-certificates"
                                   " or /etc/pki/ca-trust/source/anchors): set system_trust_dir. Nothing was changed.")
            return
        for entry in registries:
            path = os.path.join(directory, "dockyard-%s.crt" % rc.file_name_for(entry.host))
            wanted = entry.ca if (entry.state == "present" and self.p["system_trust"]) else None
            if wanted is None and not (entry.state == "absent"):
                continue  # system_trust off: files of present registries are left as they are
            self.add(Change(path, "system", _read(path), wanted.encode() if wanted else None))

    @staticmethod
    def _default_trust_dir() -> Optional[str]:
        for candidate in ("/usr/local/share/ca-certificates", "/etc/pki/ca-trust/source/anchors"):
            if os.path.isdir(candidate):
                return candidate
        return None

    def _trust_command(self) -> List[str]:
        if self.p["system_trust_command"]:
            return self.p["system_trust_command"]
        directory = self.p["system_trust_dir"] or self._default_trust_dir() or ""
        if directory.startswith("/etc/pki/"):
            return ["update-ca-trust", "extract"]
        return ["update-ca-certificates"]

    # ---- applying ---------------------------------------------------------------------------
    def apply(self) -> None:
        """Write every change; when one fails, put back the files already written, then re-raise."""
        done: List[Change] = []
        try:
            for change in self.changes:
                if change.action == "unchanged":
                    continue
                self._put(change.path, change.after, change.mode, change.host_dir)
                done.append(change)
        except BaseException:
            for change in reversed(done):
                try:
                    self._put(change.path, change.before, change.mode, change.host_dir)
                except OSError:
                    pass
            raise

    @staticmethod
    def _put(path: str, data: Optional[bytes], mode: int, host_dir: bool) -> None:
        if data is None:
            if os.path.lexists(path):
                os.unlink(path)
            if host_dir:
                try:
                    os.rmdir(os.path.dirname(path))  # only succeeds when nothing else is left in it
                except OSError:
                    pass
            return
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o755)
        current = _read(path)
        if current == data:
            os.chmod(path, mode)
        else:
            rc.write_file(path, data, mode)

    def changed_runtimes(self) -> set:
        return {c.runtime for c in self.changes if c.action != "unchanged"}

    def _run(self, argv: List[str]) -> Tuple[bool, str]:
        binary = find_command(argv[0])
        if binary is None:
            return False, "%s not found" % argv[0]
        proc = subprocess.run([binary] + argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
        out = proc.stdout.decode("utf-8", "replace").strip()
        return proc.returncode == 0, out

    def reload(self) -> None:
        p = self.p
        changed = self.changed_runtimes()
        if self.daemon_json_change is not None and self.daemon_json_change.action != "unchanged":
            self.reloads.append(self._reload_docker())
        if self.containerd_config_change is not None and self.containerd_config_change.action != "unchanged":
            self.reloads.append(self._restart_containerd())
        if "podman" in changed and find_command("crio") and _systemd_active(p["crio_service"]):
            self.reloads.append(self._do("crio", "reload", ["systemctl", "reload", p["crio_service"]],
                                         "systemctl reload %s" % p["crio_service"]))
        if "system" in changed:
            command = self._trust_command()
            self.reloads.append(self._do("system", "update", command, " ".join(command)))
            self.warnings.append("The system trust store changed: Docker Engine reads it only when it starts (restart"
                                 " it for that to matter; the certs.d files work without a restart)")

    def _do(self, runtime: str, action: str, argv: List[str], how: str) -> dict:
        if self.check_mode:
            return {"runtime": runtime, "action": action, "done": False, "how": "check mode: would run %s" % how}
        ok, out = self._run(argv)
        if not ok:
            raise RegistryError("%s failed after the files were written: %s. The files are in place; run it by"
                                " hand once the cause is fixed." % (how, out))
        return {"runtime": runtime, "action": action, "done": True, "how": how}

    def _reload_docker(self) -> dict:
        p = self.p
        if p["docker_reload"] == "never":
            self.warnings.append("%s changed: reload dockerd (systemctl reload docker, or kill -HUP its pid) for"
                                 " it to take effect" % p["docker_daemon_json"])
            return {"runtime": "docker", "action": "reload", "done": False, "how": "docker_reload=never"}
        if _systemd_active(p["docker_service"]):
            return self._do("docker", "reload", ["systemctl", "reload", p["docker_service"]],
                            "systemctl reload %s" % p["docker_service"])
        pid = self.docker_pid
        if pid is None:
            return {"runtime": "docker", "action": "reload", "done": False,
                    "how": "no running dockerd (no live pid in %s): it reads the file when it starts"
                           % p["docker_pidfile"]}
        how = "SIGHUP to dockerd pid %s" % pid
        if self.check_mode:
            return {"runtime": "docker", "action": "reload", "done": False, "how": "check mode: would send " + how}
        os.kill(pid, signal.SIGHUP)
        return {"runtime": "docker", "action": "reload", "done": True, "how": how}

    def _restart_containerd(self) -> dict:
        p = self.p
        note = ("containerd must restart once for its CRI plugin to read config_path (%s): running containers"
                " keep running, a kubelet sees the runtime go away for a moment" % self.containerd_config_path)
        if p["containerd_restart"] == "never":
            self.warnings.append(note + "; containerd_restart=never: restart it yourself")
            return {"runtime": "containerd", "action": "restart", "done": False, "how": "containerd_restart=never"}
        if p["containerd_restart_command"]:
            command = p["containerd_restart_command"]
            result = self._do("containerd", "restart", command, " ".join(command))
        elif _systemd_active(p["containerd_service"]):
            result = self._do("containerd", "restart", ["systemctl", "restart", p["containerd_service"]],
                              "systemctl restart %s" % p["containerd_service"])
        else:
            self.warnings.append(note + "; systemd does not run %s here and no containerd_restart_command was given:"
                                 " restart it yourself" % p["containerd_service"])
            return {"runtime": "containerd", "action": "restart", "done": False,
                    "how": "not under systemd and no containerd_restart_command"}
        self.warnings.append(note + ": restarted (%s)" % result["how"] if result["done"] else note)
        return result

    def plan(self) -> List[str]:
        """Read and check everything; decide every file's content. Writes nothing."""
        registries, mirrors = self.entries()
        runtimes = self.runtimes()
        hosts = rc.host_settings(registries, mirrors)
        if "docker" in runtimes:
            self.plan_docker(registries, mirrors, hosts)
        if "containerd" in runtimes:
            self.plan_containerd(registries, mirrors, hosts)
        if "podman" in runtimes:
            self.plan_podman(registries, mirrors, hosts)
        self.plan_system_trust(registries)
        return runtimes

    def run(self) -> dict:
        try:
            runtimes = self.plan()
        except RegistryError as err:
            if "Nothing was changed" not in err.message:
                err.message = err.message.rstrip(". ") + ". Nothing was changed."
            raise
        changed = any(c.action != "unchanged" for c in self.changes)
        if changed and not self.check_mode:
            self.apply()
        self.reload()
        return {
            "changed": changed,
            "runtimes": runtimes,
            "files": [{"path": c.path, "runtime": c.runtime, "action": c.action} for c in self.changes],
            "reloads": self.reloads,
            "ca_files": self.ca_files,
            "client_files": self.client_files,
            "containerd_config_path": self.containerd_config_path,
            "pending": [c.path for c in self.changes if c.action != "unchanged"] if self.check_mode else [],
            "diff": [c.diff() for c in self.changes if c.action != "unchanged"],
        }


def _pem(value: Optional[str]) -> Optional[str]:
    if not value:
        return None
    return value.strip() + "\n"


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    runner = RuntimeConfig(module.params, check_mode=module.check_mode)
    try:
        result = runner.run()
    except RegistryError as err:
        module.fail_json(**err.to_result())
    except OSError as err:
        module.fail_json(msg="%s: %s" % (getattr(err, "filename", None) or "file operation", err.strerror or err))
    for warning in runner.warnings:
        module.warn(warning)
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
