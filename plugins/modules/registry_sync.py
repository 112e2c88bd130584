#!/usr/bin/python
# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_sync
short_description: Copy repositories and tags from one registry to another without a Docker daemon
version_added: 0.1.0
description:
  - Copies the selected tags of the selected repositories from O(source_registry) to O(destination_registry),
    registry to registry, with manifests copied byte for byte so digests are preserved
    (C(docker pull host/repo@sha256:...) works on both sides with the same digest).
  - Plans from C(HEAD) requests alone - a tag whose destination digest already equals the source digest is
    skipped without fetching anything, so a no-op run costs two small requests per tag.
  - Blobs are streamed from the source to the destination in chunks (never held in memory or on disk as a
    whole) and their SHA-256 is verified while they pass. Blobs present in the destination repository are
    skipped; a blob copied to another repository of the destination during the run is mounted
    (C(POST /blobs/uploads/?mount=&from=), asked first, without a C(HEAD)) instead of uploaded again; when the
    registry declines the mount, the bytes go to the upload session its answer opened.
  - A destination repository whose first tag is missing is listed once (C(GET /tags/list)) instead of a C(HEAD)
    per tag; in a repository without tags, small blobs (up to 1 MiB) are uploaded without a C(HEAD) first.
  - Blobs are written before manifests, index children before the index, the tag last - an interrupted run
    never leaves a tag on a half-copied image, and running the task again finishes the job.
  - One bounded pool of O(concurrency) workers serves every image and blob of the run; the requests in flight
    to each registry adapt below that cap. Blob digests are
    de-duplicated in flight (one upload per digest per destination registry).
  - Requests are retried on connection errors, C(429) (honouring C(Retry-After)) and C(5xx); a blob body that
    breaks off is fetched and uploaded again.
  - A failure of one image does not stop the others unless O(fail_fast=true); the task then fails and
    RV(failed_images) lists exactly what failed and why, while RV(copied) lists what did succeed.
author:
  - dockyard.registry contributors (@dockyard)
extends_documentation_fragment:
  - dockyard.registry.attributes
  - dockyard.registry.attributes.ACTIONGROUP_NONE
  - dockyard.registry.registry_connection.SOURCE
  - dockyard.registry.registry_connection.DESTINATION
  - dockyard.registry.registry_connection.COMMON
  - dockyard.registry.ecr_repositories
attributes:
  check_mode:
    support: full
    details: Only the plan is made (C(HEAD) requests and tag lists); RV(copied), RV(skipped_images) and RV(pruned)
      tell what a real run would do.
  diff_mode:
    support: full
    details: The digest of every destination tag that changes, before and after.
  idempotent:
    support: full
options:
  source_registry:
    description:
      - The registry to copy from, as C(host[:port]) (HTTPS), C(https://host[:port]) or C(http://host[:port]).
    type: str
    required: true
  destination_registry:
    description:
      - The registry to copy to, in the same forms as O(source_registry). It may be the same registry
        (then blobs are mounted from the source repository rather than copied).
    type: str
    required: true
  repositories:
    description:
      - What to copy. Each item is either a repository name (every tag of it) or a dictionary.
      - The filters of a dictionary item apply in this order - O(repositories[].tags) (or every tag of the
        source repository), O(repositories[].tag_regex), O(repositories[].exclude_regex),
        O(repositories[].semver), O(repositories[].latest).
    type: list
    elements: raw
    required: true
    suboptions:
      name:
        description:
          - The source repository, for example C(library/alpine) or C(team/app).
        type: str
        required: true
      tags:
        description:
          - Copy these tags instead of listing the source repository. A tag missing from the source is reported
            in RV(failed_images).
          - Quote tags that look like numbers (V("1.10")); YAML would otherwise read C(1.10) as the number C(1.1).
        type: list
        elements: str
      tag_regex:
        description:
          - Keep tags matching this Python regular expression (C(re.search); anchor it with C(^...$) to match
            whole tags).
        type: str
      exclude_regex:
        description:
          - Drop tags matching this Python regular expression (C(re.search)).
        type: str
      semver:
        description:
          - Keep tags that are versions within this range, for example C(>=1.2 <2), C(^1.4), C(~2.1), C(1.x) or
            C(<1 || >=3).
          - Tags count as versions when they look like C(1), C(1.2), C(1.2.3) with an optional C(v) prefix,
            pre-release (C(-rc.1)) and build (C(+b5)) suffix; missing parts count as C(0), so C(1.2) is C(1.2.0).
          - Comparators separated by spaces must all hold. A partial version alone is a wildcard - C(1.2) means
            C(>=1.2.0 <1.3.0). Pre-releases never match a range.
        type: str
      latest:
        description:
          - Keep only the N highest versions (after the other filters). Tags that are not versions, and
            pre-releases, are dropped by it.
        type: int
      destination:
        description:
          - The repository name in the destination (before O(destination_prefix)). Defaults to O(repositories[].name).
        type: str
  destination_prefix:
    description:
      - Prepended, with a C(/), to every destination repository name, for example C(mirror) turns C(team/app)
        into C(mirror/team/app).
    type: str
  platforms:
    description:
      - V(all) copies indexes (multi-platform images, manifest lists) as they are, with their digest preserved.
      - A list such as V([linux/amd64, linux/arm64/v8]) copies only those platforms of an index. The index then
        has to be rewritten, so the destination index has a B(different digest) from the source one (the platform
        manifests keep theirs). BuildKit's attestation manifests (provenance, SBOM) of the platforms kept stay in the
        index. Single-platform images, and artifacts such as Helm charts and signatures, are copied as they are.
    type: list
    elements: str
    default: [all]
  prune:
    description:
      - Delete destination tags of the synced repositories that are not in the selection. Only the destination
        repositories this task writes to are touched.
      - A tag whose manifest is also what a selected tag points at is kept, since deleting a manifest removes
        every tag on it.
      - Needs deletion enabled in the destination registry (C(storage.delete.enabled)).
    type: bool
    default: false
  concurrency:
    description:
      - The most requests in flight to each registry, and the number of workers for the whole run (images and
        blobs together), so also the most connections opened to each registry.
      - Below this cap the number adapts, per registry. It starts at V(16) (or this value when lower), grows while
        the requests completed per second grow, halves when the registry answers C(429) or C(503), and shrinks
        when its latency collapses. RV(in_flight) reports where it ended.
      - Lower it for a registry that must not see more than this many requests at once; V(1) copies one request
        at a time.
      - Between V(1) and V(64).
    type: int
    default: 32
  fail_fast:
    description:
      - Stop at the first failure (work already running finishes, nothing new starts; prune does not run).
      - Images that were not copied because of it are listed in RV(failed_images) with C(error_kind=cancelled).
    type: bool
    default: false
requirements:
  - boto3 (only for O(create_repositories))
notes:
  - The copied manifests are byte-exact, so signatures and attestations that refer to a digest stay valid.
  - Docker schema 1 manifests cannot be copied with their digest and are reported as failures.
  - Unlike C(skopeo sync), a tag whose digest is already in the destination is not read again.
seealso:
  - module: dockyard.registry.registry_image
    description: Copy, tag, push, pull or delete one image.
  - module: dockyard.registry.registry_info
    description: Inspect repositories, tags and manifests.
  - module: dockyard.registry.registry_login
    description: Store credentials that this module finds in the docker C(config.json).
"""

EXAMPLES = r"""
- name: Mirror two repositories completely
  dockyard.registry.registry_sync:
    source_registry: registry.example.com
    destination_registry: mirror.example.com:5000
    destination_ca_cert: /etc/pki/mirror-ca.crt
    repositories:
      - team/app
      - team/worker

- name: Copy release tags of 1.x, the three newest, into a prefix, with separate credentials
  dockyard.registry.registry_sync:
    source_registry: registry.example.com
    source_username: reader
    source_password: "{{ vault_reader_password }}"
    destination_registry: mirror.example.com:5000
    destination_username: pusher
    destination_password: "{{ vault_pusher_password }}"
    destination_prefix: mirror
    repositories:
      - name: team/app
        semver: ">=1.0 <2"
        exclude_regex: "-debug$"
        latest: 3
      - name: library/alpine
        tags: ["3.19", "3.20"]
        destination: base/alpine

- name: Keep the mirror exactly in step (delete tags that are no longer selected)
  dockyard.registry.registry_sync:
    source_registry: registry.example.com
    destination_registry: http://127.0.0.1:5000
    repositories:
      - name: team/app
        tag_regex: "^v[0-9]"
    prune: true

- name: Only amd64 and arm64 of multi-platform images (changes the index digest)
  dockyard.registry.registry_sync:
    source_registry: registry.example.com
    destination_registry: edge.example.com
    repositories: [team/app]
    platforms:
      - linux/amd64
      - linux/arm64
    concurrency: 8
    fail_fast: true

- name: Sync from the private registry into Amazon ECR, creating the repositories that are missing
  dockyard.registry.registry_sync:
    source_registry: registry.example.com
    destination_registry: 123456789012.dkr.ecr.eu-west-1.amazonaws.com
    repositories:
      - name: team/app
        semver: ">=1.0"
      - team/worker
    create_repositories: true
    repository_settings:
      image_tag_mutability: immutable
      scan_on_push: true
      keep_last: 30
      expire_untagged_days: 7
"""

RETURN = r"""
created_repositories:
  description:
    - ECR repositories created by O(create_repositories) (in check mode, that would be created), in the order they
      were created. Empty when every destination repository existed.
  returned: always
  type: list
  elements: str
  sample: ["team/app"]
copied:
  description: Destination references written (in check mode, that would be written).
  returned: always
  type: list
  elements: str
  sample: ["mirror.example.com:5000/team/app:1.4.2"]
retries:
  description: Requests sent again (O(retries)) - C(count), C(statuses) (HTTP status - how many), C(network_errors)
    (connection errors, timeouts, cut bodies) and C(waited) (seconds). When C(count) is not 0 the module also warns.
  returned: always
  type: dict
  sample: {"count": 3, "statuses": {"429": 2, "503": 1}, "network_errors": 0, "waited": 2.5}
skipped_images:
  description:
    - Destination references that already had the source digest (nothing was read or written for them).
    - Not called C(skipped), which Ansible reads as the task status.
  returned: always
  type: list
  elements: str
  sample: ["mirror.example.com:5000/team/app:1.4.1"]
pruned:
  description: Destination tags deleted by O(prune) (in check mode, that would be deleted).
  returned: always
  type: list
  elements: str
  sample: ["mirror.example.com:5000/team/app:0.9"]
failed_images:
  description:
    - What failed, one entry per destination reference (or per source repository whose tags could not be listed).
    - The task fails when this is not empty; the entries are returned with the failure.
    - Not called C(failed), which Ansible reads as the task status.
  returned: always
  type: list
  elements: dict
  contains:
    reference:
      description: The destination reference (or the source repository).
      type: str
    source:
      description: The source reference.
      type: str
      returned: when known
    error:
      description: What went wrong (never contains a secret).
      type: str
    error_kind:
      description: >-
        The error class - V(unauthorized), V(denied), V(not_found), V(tls), V(unreachable), V(unsupported),
        V(server_error), V(digest_mismatch), V(invalid_input), V(cancelled).
      type: str
  sample: [{"reference": "mirror.example.com:5000/team/app:2.0", "source": "registry.example.com/team/app:2.0",
            "error": "manifest unknown", "error_kind": "not_found"}]
bytes_copied:
  description: Bytes of blobs uploaded to the destination (mounted and skipped blobs are not counted).
  returned: always
  type: int
  sample: 73400320
blobs_uploaded:
  description: Blobs streamed from the source to the destination.
  returned: always
  type: int
  sample: 12
blobs_mounted:
  description: Blobs mounted from another repository of the destination registry instead of uploaded.
  returned: always
  type: int
  sample: 30
blobs_skipped:
  description: Blobs the destination repository already had.
  returned: always
  type: int
  sample: 4
duration:
  description: Seconds spent planning and copying.
  returned: always
  type: float
  sample: 2.41
in_flight:
  description:
    - How many requests were allowed in flight to each registry (see O(concurrency)), per side.
    - V(final) is the limit at the end of the run, V(peak) the highest it reached, V(backoffs) how often it backed
      off (C(429)/C(503) answers or a latency collapse).
  returned: success
  type: dict
  sample: {"source": {"final": 12, "peak": 18, "backoffs": 0}, "destination": {"final": 8, "peak": 12, "backoffs": 1}}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockyard.registry.plugins.module_utils._argspec import (
    connection_argument_spec,
    connection_required_together,
    ecr_argument_spec,
    run_registry_module,
)
from ansible_collections.dockyard.registry.plugins.module_utils._sync import registry_sync


def argument_spec() -> dict:
    spec = dict(
        source_registry=dict(type="str", required=True),
        destination_registry=dict(type="str", required=True),
        repositories=dict(type="list", elements="raw", required=True),
        destination_prefix=dict(type="str"),
        platforms=dict(type="list", elements="str", default=["all"]),
        prune=dict(type="bool", default=False),
        concurrency=dict(type="int", default=32),
        fail_fast=dict(type="bool", default=False),
    )
    spec.update(connection_argument_spec("source_"))
    spec.update(connection_argument_spec("destination_"))
    spec.update(ecr_argument_spec())
    return spec


def main() -> None:
    required_together = connection_required_together("source_") + connection_required_together("destination_")
    module = AnsibleModule(argument_spec=argument_spec(), required_together=required_together,
                           supports_check_mode=True)
    ok, result = run_registry_module(module, registry_sync)
    (module.exit_json if ok else module.fail_json)(**result)


if __name__ == "__main__":
    main()
