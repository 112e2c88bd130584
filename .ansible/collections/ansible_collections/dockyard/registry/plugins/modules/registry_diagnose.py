#!/usr/bin/python
# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_diagnose
short_description: Find out why this host cannot pull from (or push to) a registry, step by step, with the fix
version_added: 0.3.0
description:
  - Runs the debug checklist for a registry on the host where pulls fail and returns one entry per check in
    RV(checks) - its status (V(ok), V(warn), V(fail) or V(skip)), what was found and, when something is wrong,
    the fix.
  - The checks, in order - C(reference) (the image reference as the docker CLI reads it), C(resolve) (every address
    of the name), C(connect) (TCP to each address with a short timeout; the proxy variables in effect),
    C(tls) (TLS at all, protocol version, which trust store verifies the chain - system, O(ca_cert) or Docker's
    C(certs.d) for this host -, the names in the certificate, expiry within 30 days, self-signed),
    C(api) (C(GET /v2/) - status, API version header, the auth scheme and realm, the token realm reachable),
    C(clock) (skew against the registry's C(Date) header), C(credentials) (where they came from and whether the
    registry accepts them), C(image) (repository and tag exist, else the closest names), C(permissions) (pull,
    and push with O(check_push)) and C(engines) (whether Docker, containerd and Podman on this host trust the
    registry the way the checks found they must).
  - A check that cannot run because an earlier one failed is V(skip) with the reason. After a TLS failure the
    C(api) and C(clock) checks still run (anonymously), but no credentials are sent to a server whose
    certificate did not verify.
  - Read-only - nothing on the host or in the registry changes. The push check opens an upload session and
    cancels it at once.
  - No detail or fix holds a secret - credentials are named by their source, proxy URLs lose their user info.
author:
  - dockyard.registry contributors (@dockyard)
options:
  registry:
    description:
      - The registry, as C(host[:port]) (HTTPS), C(https://host[:port]) or C(http://host[:port]).
      - Optional when O(image) names its registry. When O(image) has no registry part, it is looked for in
        O(registry) and the C(reference) check warns that the docker CLI would read it as a Docker Hub image.
    type: str
  image:
    description:
      - An image reference as given to C(docker pull), for example V(registry.example.com:5000/team/app:1.4)
        or V(alpine). Without it, the C(image) and C(permissions) checks are skipped.
    type: str
  check_push:
    description:
      - Also check that the account may push to the repository of O(image) - an upload session is opened and
        cancelled, nothing is written.
    type: bool
    default: false
  fail_on:
    description:
      - V(never) - the task succeeds whatever the checks found; read RV(ok) and RV(checks).
      - V(fail) - the task fails when a check failed.
      - V(warn) - the task fails when a check failed or warned.
    type: str
    choices: [fail, warn, never]
    default: never
  runtimes:
    description:
      - The engines the C(engines) check looks at. V(auto) alone looks at those installed on the host (Docker when
        C(docker) or C(dockerd) is found or O(docker_daemon_json) exists, containerd when C(containerd) is found,
        Podman when C(podman), C(skopeo), C(buildah) or C(crio) is found). An empty list skips the check.
    type: list
    elements: str
    choices: [auto, docker, containerd, podman]
    default: [auto]
  docker_certs_dir:
    description: Docker's per-registry certificate directory (the C(tls) check also tries the CA it holds for the registry).
    type: path
    default: /etc/docker/certs.d
  docker_daemon_json:
    description: The dockerd configuration file, for C(insecure-registries).
    type: path
    default: /etc/docker/daemon.json
  containerd_config:
    description: containerd's C(config.toml), for the CRI plugin's C(config_path) (read through C(containerd config dump)).
    type: path
    default: /etc/containerd/config.toml
  containerd_certs_dir:
    description: The directory of containerd's C(<host:port>/hosts.toml) files.
    type: path
    default: /etc/containerd/certs.d
  containers_dir:
    description: The containers/image configuration directory (C(certs.d), C(registries.conf), C(registries.conf.d)).
    type: path
    default: /etc/containers
extends_documentation_fragment:
  - dockyard.registry.attributes
  - dockyard.registry.attributes.ACTIONGROUP_REGISTRY
  - dockyard.registry.registry_connection
  - dockyard.registry.registry_connection.COMMON
attributes:
  check_mode:
    support: full
    details: The module only reads, so it runs the same in check mode.
  diff_mode:
    support: N/A
    details: The module never changes anything.
  idempotent:
    support: full
notes:
  - Without O(username) and O(password) the credentials the docker CLI would use are taken from O(config_path)
    (C(credHelpers), then C(credsStore), then C(auths)), as the other modules do.
  - O(validate_certs=false) lets the checks after a failed TLS verification run with credentials; the C(tls) check
    still fails.
  - The module runs with the environment of the Ansible connection; the Docker daemon has its own (its proxy
    settings, for instance, come from its service definition).
  - Old TLS versions are probed with OpenSSL security level 0, only to name the version the server speaks.
  - The playbook C(dockyard.registry.diagnose) (C(ansible-playbook dockyard.registry.diagnose -e registry=...
    [-e image=...] [-e target=hosts])) runs this module and prints the checklist per host.
seealso:
  - module: dockyard.registry.registry_login
    description: The fix for refused or missing credentials.
  - module: dockyard.registry.registry_client_config
    description: What the role registry_client runs to make the engines trust a registry.
"""

EXAMPLES = r"""
- name: Why can this host not pull the release image?
  dockyard.registry.registry_diagnose:
    image: registry.example.com:5000/team/app:1.4
  register: diagnosis

- name: Show what failed, with the fix
  ansible.builtin.debug:
    msg: "{{ diagnosis.checks | selectattr('status', 'equalto', 'fail') | list }}"

- name: Check a login and push permission, fail the task on any failed check
  dockyard.registry.registry_diagnose:
    registry: registry.example.com:5000
    image: team/app:1.4
    username: ci
    password: "{{ vault_registry_password }}"
    ca_cert: /etc/pki/registry-ca.crt
    check_push: true
    fail_on: fail

- name: A plain-HTTP test registry, only Docker's trust checked
  dockyard.registry.registry_diagnose:
    registry: http://10.0.0.5:5000
    runtimes: [docker]
"""

RETURN = r"""
ok:
  description: True when no check failed (warnings allowed).
  returned: always
  type: bool
  sample: false
checks:
  description: One entry per check, in the order they ran.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: >-
        The check - V(reference), V(resolve), V(connect), V(tls), V(api), V(clock), V(credentials), V(image),
        V(permissions) or V(engines).
      type: str
    status:
      description: V(ok), V(warn), V(fail), or V(skip) (with the reason in RV(checks[].detail)).
      type: str
    detail:
      description: What the check found.
      type: str
    fix:
      description: What to do about a warning or failure; V(null) when there is nothing to do.
      type: str
  sample:
    - {name: resolve, status: ok, detail: "registry.example.com resolves to 192.0.2.10", fix: null}
    - {name: tls, status: fail, detail: "the certificate expired on 2025-01-01 00:00 UTC: TLSv1.3; ...",
       fix: "renew the registry's certificate ..."}
summary:
  description: The checks as text, one line per check and one more for each fix - what the playbook prints.
  returned: always
  type: list
  elements: str
  sample: ["OK    resolve      registry.example.com resolves to 192.0.2.10"]
registry:
  description: The registry that was checked (C(http://...) for a plain-HTTP one, Docker Hub as C(docker.io)).
  returned: always
  type: str
  sample: registry.example.com:5000
image:
  description: O(image) as the docker CLI reads it (registry, C(library/) and C(:latest) added).
  returned: always
  type: str
  sample: registry.example.com:5000/team/app:1.4
retries:
  description: Requests sent again (O(retries)) - C(count), C(statuses), C(network_errors), C(waited).
  returned: always
  type: dict
  sample: {"count": 0, "statuses": {}, "network_errors": 0, "waited": 0.0}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockyard.registry.plugins.module_utils._argspec import (
    connection_argument_spec,
    connection_required_together,
    run_registry_module,
)
from ansible_collections.dockyard.registry.plugins.module_utils._diagnose import registry_diagnose


def argument_spec() -> dict:
    spec = connection_argument_spec()
    spec.update(
        image=dict(type="str"),
        check_push=dict(type="bool", default=False),
        fail_on=dict(type="str", choices=["fail", "warn", "never"], default="never"),
        runtimes=dict(type="list", elements="str", choices=["auto", "docker", "containerd", "podman"],
                      default=["auto"]),
        docker_certs_dir=dict(type="path", default="/etc/docker/certs.d"),
        docker_daemon_json=dict(type="path", default="/etc/docker/daemon.json"),
        containerd_config=dict(type="path", default="/etc/containerd/config.toml"),
        containerd_certs_dir=dict(type="path", default="/etc/containerd/certs.d"),
        containers_dir=dict(type="path", default="/etc/containers"),
    )
    return spec


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_together=connection_required_together(),
        required_one_of=[["registry", "image"]],
        supports_check_mode=True,
    )
    ok, result = run_registry_module(module, registry_diagnose)
    (module.exit_json if ok else module.fail_json)(**result)


if __name__ == "__main__":
    main()
