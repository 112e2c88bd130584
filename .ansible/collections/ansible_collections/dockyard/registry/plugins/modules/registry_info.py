#!/usr/bin/python
# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_info
short_description: List repositories and tags of a container registry and inspect image manifests
version_added: 0.1.0
description:
  - Reads from a container registry over the OCI distribution API, without a Docker daemon. Never changes anything.
  - With only O(registry) - the repositories in the registry's catalog (RV(repositories)).
  - With O(repository) - its tags (RV(tags)).
  - With O(repository) and O(reference) (a tag or a digest) - the manifest - RV(digest), RV(media_type), RV(size),
    RV(platforms), and from the image configuration RV(created) and RV(labels). A missing tag or digest gives
    RV(exists=false) instead of a failure.
  - Catalog and tag lists follow C(Link) pagination, so repositories with more tags than one page hold are
    listed completely.
author:
  - dockyard.registry contributors (@dockyard)
options:
  registry:
    description:
      - The registry, as C(host[:port]) (HTTPS), C(https://host[:port]) or C(http://host[:port]).
      - C(docker.io), C(index.docker.io) and C(registry-1.docker.io) all name Docker Hub.
    type: str
    required: true
  repository:
    description:
      - A repository in the registry, for example V(team/app). On Docker Hub a one-component name gets
        C(library/) like the docker CLI does (V(alpine) is C(library/alpine)).
      - Without it the module lists the registry's catalog.
    type: str
  reference:
    description:
      - A tag (V(1.2.0)) or a digest (V(sha256:...)) in O(repository), whose manifest is inspected.
      - Without it the module lists the tags of O(repository).
    type: str
extends_documentation_fragment:
  - dockyard.registry.attributes
  - dockyard.registry.attributes.ACTIONGROUP_REGISTRY
  - dockyard.registry.registry_connection
  - dockyard.registry.registry_connection.COMMON
  - dockyard.registry.attributes.READ_ONLY
notes:
  - Without O(username) and O(password) the credentials the docker CLI would use for the registry are taken from
    O(config_path) (see M(dockyard.registry.registry_login)); without any, requests are anonymous.
  - Listing the catalog needs a registry that offers C(/v2/_catalog) and, with token authentication, a token
    with the C(registry:catalog:*) scope.
seealso:
  - module: dockyard.registry.registry_login
    description: Store credentials that this module then uses.
  - module: dockyard.registry.registry_image
    description: Copy, tag or delete an image in a registry.
  - name: OCI distribution specification
    description: The API this module speaks.
    link: https://github.com/opencontainers/distribution-spec/blob/main/spec.md
"""

EXAMPLES = r"""
- name: List the repositories of a private registry
  dockyard.registry.registry_info:
    registry: registry.example.com:5000
    ca_cert: /etc/pki/registry-ca.crt
  register: catalog

- name: List the tags of a repository (credentials from the docker config.json)
  dockyard.registry.registry_info:
    registry: registry.example.com:5000
    repository: team/app
  register: app_tags

- name: Inspect a tag
  dockyard.registry.registry_info:
    registry: registry.example.com:5000
    repository: team/app
    reference: "1.4.2"
    username: reader
    password: "{{ vault_reader_password }}"
  register: app

- name: Fail early when the release image is missing
  ansible.builtin.assert:
    that: app.exists
    fail_msg: team/app:1.4.2 has not been pushed yet

- name: Show the platforms of a multi-arch image
  ansible.builtin.debug:
    msg: "{{ app.platforms | map(attribute='architecture') | list }}"

- name: Inspect an image by digest on a plain-HTTP test registry
  dockyard.registry.registry_info:
    registry: http://127.0.0.1:5000
    repository: team/app
    reference: sha256:0f2ba0a8d3e5e4d8b7c6a5f4e3d2c1b0a9f8e7d6c5b4a3928170f6e5d4c3b2a1
"""

RETURN = r"""
registry:
  description: The registry that was read (Docker Hub shown as C(docker.io)).
  returned: always
  type: str
  sample: registry.example.com:5000
retries:
  description: Requests sent again (O(retries)) - C(count), C(statuses) (HTTP status - how many), C(network_errors)
    (connection errors, timeouts, cut bodies) and C(waited) (seconds). When C(count) is not 0 the module also warns.
  returned: always
  type: dict
  sample: {"count": 3, "statuses": {"429": 2, "503": 1}, "network_errors": 0, "waited": 2.5}
repositories:
  description: Every repository in the catalog, in the order the registry lists them.
  returned: when O(repository) is not given
  type: list
  elements: str
  sample: [library/alpine, team/app]
repository:
  description: The repository that was read (with C(library/) added on Docker Hub).
  returned: when O(repository) is given
  type: str
  sample: team/app
tags:
  description: Every tag of O(repository). Empty when the repository does not exist.
  returned: when O(repository) is given and O(reference) is not
  type: list
  elements: str
  sample: ["1.4.1", "1.4.2", latest]
exists:
  description:
    - Whether O(repository) exists (when listing tags) or the manifest O(reference) exists (when inspecting).
  returned: when O(repository) is given
  type: bool
  sample: true
reference:
  description: The tag or digest that was inspected.
  returned: when O(reference) is given
  type: str
  sample: "1.4.2"
digest:
  description: Digest of the manifest (of the index for a multi-platform image).
  returned: when O(reference) is given and RV(exists=true)
  type: str
  sample: sha256:6d2e1c4a9b8f7e6d5c4b3a291807f6e5d4c3b2a19080706f5e4d3c2b1a090807
media_type:
  description: Media type of the manifest (OCI or Docker, image manifest or index / manifest list).
  returned: when O(reference) is given and RV(exists=true)
  type: str
  sample: application/vnd.oci.image.index.v1+json
size:
  description:
    - Bytes the image takes in the registry - the manifest, its configuration and its layers.
    - For an index or manifest list - the index, every child manifest present in the registry, and every
      distinct blob they refer to, each counted once (layers shared between platforms are counted once).
  returned: when O(reference) is given and RV(exists=true)
  type: int
  sample: 3623807
platforms:
  description:
    - The platforms of the image. For an index or manifest list, one entry per child manifest, in index order.
      For a single-platform image, one entry from its configuration (RV(platforms[].digest) is the
      manifest's own digest). Empty for artifacts whose configuration is not an image configuration.
  returned: when O(reference) is given and RV(exists=true)
  type: list
  elements: dict
  contains:
    os:
      description: Operating system, for example C(linux).
      type: str
    architecture:
      description: CPU architecture, for example C(amd64) or C(arm64).
      type: str
    variant:
      description: CPU variant, for example C(v8); V(null) when there is none.
      type: str
    digest:
      description: Digest of the platform's manifest.
      type: str
  sample:
    - {os: linux, architecture: amd64, variant: null, digest: "sha256:1f0b..."}
    - {os: linux, architecture: arm64, variant: v8, digest: "sha256:9c3a..."}
created:
  description:
    - The C(created) timestamp of the image configuration; V(null) for an index or manifest list (each
      platform has its own) and for images without one.
  returned: when O(reference) is given and RV(exists=true)
  type: str
  sample: "2024-05-01T12:00:00Z"
labels:
  description: The labels of the image configuration (C(config.Labels)); empty for an index or manifest list.
  returned: when O(reference) is given and RV(exists=true)
  type: dict
  sample: {org.opencontainers.image.version: "1.4.2"}
manifest:
  description: The manifest document itself.
  returned: when O(reference) is given and RV(exists=true)
  type: dict
  sample: {schemaVersion: 2, mediaType: application/vnd.oci.image.manifest.v1+json, config: {}, layers: []}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockyard.registry.plugins.module_utils._argspec import (
    connection_argument_spec,
    connection_required_together,
    run_registry_module,
)
from ansible_collections.dockyard.registry.plugins.module_utils._info import registry_info


def argument_spec() -> dict:
    spec = connection_argument_spec()
    spec["registry"] = dict(type="str", required=True)
    spec.update(
        repository=dict(type="str"),
        reference=dict(type="str"),
    )
    return spec


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_together=connection_required_together(),
        required_by={"reference": "repository"},
        supports_check_mode=True,
    )
    ok, result = run_registry_module(module, registry_info)
    (module.exit_json if ok else module.fail_json)(**result)


if __name__ == "__main__":
    main()
