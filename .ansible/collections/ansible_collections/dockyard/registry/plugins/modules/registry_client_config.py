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
  - Files are written atomically, and a file that exists keeps its owner, mode and SELinux context; C(client.key) is
    mode C(0600). A file in the way that is a FIFO, a device or a directory is refused. O(registries[].state=absent)
    removes exactly the files and entries this module writes for that host.
  - Runs that change the same C(daemon.json), C(config.toml) or C(registries.conf.d) drop-in at the same time wait for
    each other (an advisory lock on C(<file>.lock) next to it, removed afterwards, waited for at most 30 seconds), so
    none of their entries is lost.
  - The CA itself is not checked here (PEM, expiry, CA flag); the role P(dockyard.registry.registry_client#role) does
    that on the controller before calling this module.
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
  - The role P(dockyard.registry.registry_client#role) is the usual way to use this module - it validates the CAs on
    the controller, calls this module and logs in (C(ansible-doc -t role dockyard.registry.registry_client)).
  - Runs on the managed node as root. Needs no Python library beyond the standard library; the C(registries.conf.d)
    syntax check needs Python 3.11 (C(tomllib)) or the C(tomli) library and is skipped with a warning otherwise.
seealso:
  - module: dockyard.registry.registry_login
    description: Log in to a registry this module made the host trust (the role P(dockyard.registry.registry_client#role)
      does both).
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockyard.registry.plugins.module_utils._client_config import registry_client_config
from ansible_collections.dockyard.registry.plugins.module_utils._module import run_backend


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


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    ok, result = run_backend(module, registry_client_config)
    (module.exit_json if ok else module.fail_json)(**result)


if __name__ == "__main__":
    main()
