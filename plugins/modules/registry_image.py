#!/usr/bin/python
# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_image
short_description: Copy, tag, push, pull or delete one image in a container registry
version_added: 0.1.0
description:
  - Manages one image in a registry, named by O(name).
  - With O(source), copies another image (same registry or another one) registry to registry, without a
    Docker daemon, through the same engine as M(dockyard.registry.registry_sync) - manifests byte for byte
    (digests preserved), blobs streamed and verified, mounted within the registry when possible, the tag last.
  - With O(push), pushes an image from the local Docker engine (Docker SDK for Python).
  - O(tags) makes extra tags point at the same digest, server-side (the manifest is put again under each tag;
    nothing is pulled).
  - O(pull=true) pulls the image into the local Docker engine.
  - O(state=absent) deletes the image's manifest - by tag (the digest is resolved first) or by digest.
    Deleting a manifest removes every tag on it, so the module refuses when other tags share the digest,
    unless O(force=true); the error lists those tags.
  - Idempotent by digest comparison - nothing is written when the registry already has the wanted digest.
author:
  - dockyard.registry contributors (@dockyard)
extends_documentation_fragment:
  - dockyard.registry.attributes
  - dockyard.registry.attributes.ACTIONGROUP_REGISTRY
  - dockyard.registry.registry_connection
  - dockyard.registry.registry_connection.SOURCE
  - dockyard.registry.registry_connection.COMMON
  - dockyard.registry.ecr_repositories
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The digest of O(name) and of each extra tag, before and after.
  idempotent:
    support: full
options:
  name:
    description:
      - The image, as C(host[:port]/repository:tag) or C(host[:port]/repository@sha256:...).
      - C(http://host[:port]/repository:tag) talks plain HTTP; C(host[:port]) alone means HTTPS.
      - Without a tag or digest, the tag is C(latest).
    type: str
    required: true
  registry:
    description:
      - The registry for O(name) and O(source) when they do not name one (for example V(http://127.0.0.1:5000)).
      - Defaults to Docker Hub, as for the docker CLI.
    type: str
  state:
    description:
      - V(present) makes sure the image exists (copying it from O(source) or pushing O(push) when given).
      - V(absent) deletes it. Needs deletion enabled in the registry (C(storage.delete.enabled)).
    type: str
    choices: [present, absent]
    default: present
  source:
    description:
      - Another image reference to copy to O(name), on the same registry or another one.
      - When O(name) has a tag, the tag is moved to the source's digest if it points elsewhere.
      - The C(source_*) options are the connection options for the registry of O(source). When O(source) is on
        the registry of O(name) and no C(source_*) option is given, the connection options of O(name) serve both.
      - Mutually exclusive with O(push).
    type: str
  push:
    description:
      - A local image of the Docker engine (name, C(name:tag) or ID) to push as O(name).
      - Uses the Docker SDK for Python and the daemon's own C(push); the daemon must trust the registry
        (C(/etc/docker/certs.d/<host:port>/ca.crt) for a private CA, C(insecure-registries) for plain HTTP except
        on C(127.0.0.0/8)). The local image is tagged O(name) for the push and the temporary tag removed after.
      - Idempotent when the local image already carries the registry's digest for O(name) in its C(RepoDigests)
        (after an earlier push or pull); otherwise it is pushed, and the task reports a change only when the
        digest in the registry changed.
      - Mutually exclusive with O(source).
    type: str
  tags:
    description:
      - Extra tags in the same repository that must point at the digest of O(name), set server-side.
    type: list
    elements: str
    default: []
  pull:
    description:
      - Pull O(name) into the local Docker engine (Docker SDK for Python) unless it is there with the same digest.
    type: bool
    default: false
  force:
    description:
      - With O(state=absent), delete even when other tags share the digest (they are removed too and listed
        in RV(removed_tags)).
    type: bool
    default: false
  platforms:
    description:
      - With O(source), V(all) copies an index as it is (digest preserved); a list such as V([linux/amd64]) copies
        only those platforms (and BuildKit's attestation manifests of them) and writes a new index, with a different
        digest.
    type: list
    elements: str
    default: [all]
  concurrency:
    description:
      - Workers used to copy blobs with O(source), and to read the tags of the repository with O(state=absent).
      - Between V(1) and V(64).
    type: int
    default: 4
requirements:
  - Docker SDK for Python (C(docker)) only for O(push) and O(pull).
  - boto3 only for O(create_repositories).
notes:
  - A registry with deletion disabled answers a delete with C(405); the module then fails with
    C(error_kind=unsupported) and says how to enable it (C(storage.delete.enabled=true),
    C(REGISTRY_STORAGE_DELETE_ENABLED=true), or C(registry_delete_enabled=true) of the role P(dockyard.registry.registry#role)).
  - Deleting a manifest does not free disk space by itself; run the registry's garbage collector for that.
seealso:
  - module: dockyard.registry.registry_sync
    description: Copy many repositories and tags at once.
  - module: dockyard.registry.registry_info
    description: Inspect a tag, its digest and platforms.
  - module: dockyard.registry.registry_login
    description: Store the credentials this module finds in the docker C(config.json).
"""

EXAMPLES = r"""
- name: Promote a tested build to a release tag on the same registry (blobs are mounted, not copied)
  dockyard.registry.registry_image:
    name: registry.example.com/team/app:1.4.2
    source: registry.example.com/team/app:build-8812
    tags: [stable, "1.4"]

- name: Copy an image from another registry, with separate credentials for the source
  dockyard.registry.registry_image:
    name: mirror.example.com:5000/base/alpine:3.20
    ca_cert: /etc/pki/mirror-ca.crt
    username: pusher
    password: "{{ vault_pusher_password }}"
    source: registry.example.com/library/alpine:3.20
    source_username: reader
    source_password: "{{ vault_reader_password }}"

- name: Push a locally built image
  dockyard.registry.registry_image:
    name: http://127.0.0.1:5000/team/app:dev
    push: app:dev

- name: Copy an image into Amazon ECR, creating the repository first when it is missing
  dockyard.registry.registry_image:
    name: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app:1.4.2
    source: registry.example.com/team/app:1.4.2
    create_repositories: true
    repository_settings:
      image_tag_mutability: immutable
      keep_last: 30

- name: Pull a pinned image into the local Docker engine
  dockyard.registry.registry_image:
    name: registry.example.com/team/app@sha256:0f8c2b6d8f1cd6c1e4d4c4c0a3a4f0b9c5d1e7f2a3b4c5d6e7f8091a2b3c4d5e
    pull: true

- name: Delete a tag (fails when other tags share its digest)
  dockyard.registry.registry_image:
    name: registry.example.com/team/app:old
    state: absent

- name: Delete an image and every tag on it
  dockyard.registry.registry_image:
    name: registry.example.com/team/app:old
    state: absent
    force: true
"""

RETURN = r"""
created_repositories:
  description:
    - The ECR repository O(create_repositories) created (in check mode, would create); empty when it existed.
  returned: always
  type: list
  elements: str
  sample: ["team/app"]
digest:
  description:
    - Digest of O(name) after the task (before it, for O(state=absent)); null when it does not exist.
    - In check mode, the digest it would have.
  returned: always
  type: str
  sample: sha256:4c3d7a1f3a0ba6a6d0b0d40c8e3c2e0b6f7a1c2d3e4f5061728394a5b6c7d8e9
retries:
  description: Requests sent again (O(retries)) - C(count), C(statuses) (HTTP status - how many), C(network_errors)
    (connection errors, timeouts, cut bodies) and C(waited) (seconds). When C(count) is not 0 the module also warns.
  returned: always
  type: dict
  sample: {"count": 3, "statuses": {"429": 2, "503": 1}, "network_errors": 0, "waited": 2.5}
copied:
  description: Whether the image was copied from O(source) (or would be, in check mode).
  returned: always
  type: bool
pushed:
  description: Whether O(push) sent the image to the registry.
  returned: always
  type: bool
pulled:
  description: Whether O(pull) pulled the image.
  returned: always
  type: bool
tags_changed:
  description: Tags of O(tags) that were made to point at RV(digest).
  returned: always
  type: list
  elements: str
  sample: [stable]
removed_tags:
  description: With O(state=absent), every tag that pointed at the deleted manifest (and is gone with it).
  returned: always
  type: list
  elements: str
  sample: [old, old-alias]
shared_tags:
  description: Other tags on the digest when O(state=absent) refused to delete it (the task fails).
  returned: failure
  type: list
  elements: str
  sample: [v1, latest]
copy_stats:
  description: Counters of the copy engine for O(source).
  returned: when O(source) is given
  type: dict
  contains:
    bytes_copied:
      description: Bytes of blobs uploaded.
      type: int
    blobs_uploaded:
      description: Blobs uploaded.
      type: int
    blobs_mounted:
      description: Blobs mounted from another repository of the registry.
      type: int
    blobs_skipped:
      description: Blobs already present.
      type: int
    duration:
      description: Seconds spent.
      type: float
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockyard.registry.plugins.module_utils._argspec import (
    connection_argument_spec,
    connection_required_together,
    ecr_argument_spec,
    run_registry_module,
)
from ansible_collections.dockyard.registry.plugins.module_utils._image import registry_image


def argument_spec() -> dict:
    spec = connection_argument_spec()
    spec.update((k, v) for k, v in connection_argument_spec("source_").items() if k.startswith("source_"))
    spec.update(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        source=dict(type="str"),
        push=dict(type="str"),
        tags=dict(type="list", elements="str", default=[]),
        pull=dict(type="bool", default=False),
        force=dict(type="bool", default=False),
        platforms=dict(type="list", elements="str", default=["all"]),
        concurrency=dict(type="int", default=4),
    )
    spec.update(ecr_argument_spec())
    return spec


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[["source", "push"]],
        required_together=connection_required_together() + connection_required_together("source_"),
        supports_check_mode=True,
    )
    ok, result = run_registry_module(module, registry_image)
    (module.exit_json if ok else module.fail_json)(**result)


if __name__ == "__main__":
    main()
