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
    (C(POST /blobs/uploads/?mount=&from=)) instead of uploaded again, with a fallback to upload when the
    registry refuses the mount.
  - Blobs are written before manifests, index children before the index, the tag last - an interrupted run
    never leaves a tag on a half-copied image, and running the task again finishes the job.
  - One bounded pool of O(concurrency) workers serves every image and blob of the run. Blob digests are
    de-duplicated in flight (one upload per digest per destination registry).
  - Requests are retried on connection errors, C(429) (honouring C(Retry-After)) and C(5xx); a blob body that
    breaks off is fetched and uploaded again.
  - A failure of one image does not stop the others unless O(fail_fast=true); the task then fails and
    RV(failed_images) lists exactly what failed and why, while RV(copied) lists what did succeed.
author:
  - dockyard.registry contributors (@dockyard)
extends_documentation_fragment:
  - dockyard.registry.attributes
  - dockyard.registry.attributes.ACTIONGROUP_REGISTRY
  - dockyard.registry.registry_connection.SOURCE_DESTINATION
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
        manifests keep theirs). Single-platform images are copied as they are.
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
      - Number of workers for the whole run (images and blobs together).
      - The default of V(4) keeps two CPU cores busy while requests to remote registries wait on the network;
        raise it for high-latency registries, lower it for slow or rate-limited ones.
    type: int
    default: 4
  fail_fast:
    description:
      - Stop at the first failure (work already running finishes, nothing new starts; prune does not run).
      - Images that were not copied because of it are listed in RV(failed_images) with C(error_kind=cancelled).
    type: bool
    default: false
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
"""

RETURN = r"""
copied:
  description: Destination references written (in check mode, that would be written).
  returned: always
  type: list
  elements: str
  sample: ["mirror.example.com:5000/team/app:1.4.2"]
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
"""

import time
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockyard.registry.plugins.module_utils._argspec import (
    client_from_params,
    connection_argument_spec,
    connection_required_together,
)
from ansible_collections.dockyard.registry.plugins.module_utils._copy import (
    CopyJob,
    execute,
    parse_platform,
    plan_copies,
    select_tags,
)
from ansible_collections.dockyard.registry.plugins.module_utils._errors import (
    InvalidInput,
    NotFound,
    RegistryError,
)
from ansible_collections.dockyard.registry.plugins.module_utils._reference import (
    ImageReference,
    parse_registry,
    validate_repository,
    validate_tag,
)

REPOSITORY_KEYS = ("name", "tags", "tag_regex", "exclude_regex", "semver", "latest", "destination")


def argument_spec() -> dict:
    spec = dict(
        source_registry=dict(type="str", required=True),
        destination_registry=dict(type="str", required=True),
        repositories=dict(type="list", elements="raw", required=True),
        destination_prefix=dict(type="str"),
        platforms=dict(type="list", elements="str", default=["all"]),
        prune=dict(type="bool", default=False),
        concurrency=dict(type="int", default=4),
        fail_fast=dict(type="bool", default=False),
    )
    spec.update(connection_argument_spec("source_"))
    spec.update(connection_argument_spec("destination_"))
    return spec


def normalise_repositories(items: list, prefix) -> list:
    """Each item as a dict with every key, names validated."""
    result = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict):
            raise InvalidInput("repositories[%d] must be a repository name or a dictionary" % index)
        unknown = sorted(set(item) - set(REPOSITORY_KEYS))
        if unknown:
            raise InvalidInput("repositories[%d] has unknown keys %s; allowed: %s"
                               % (index, ", ".join(unknown), ", ".join(REPOSITORY_KEYS)))
        if not item.get("name"):
            raise InvalidInput("repositories[%d] needs a name" % index)
        entry = dict((key, item.get(key)) for key in REPOSITORY_KEYS)
        entry["name"] = validate_repository(str(entry["name"]))
        destination = str(entry["destination"] or entry["name"])
        if prefix:
            destination = "%s/%s" % (prefix.strip("/"), destination)
        entry["destination"] = validate_repository(destination)
        if entry["tags"] is not None:
            if not isinstance(entry["tags"], list):
                raise InvalidInput("repositories[%d].tags must be a list" % index)
            entry["tags"] = [validate_tag(str(t)) for t in entry["tags"]]
        if entry["latest"] is not None:
            try:
                entry["latest"] = int(entry["latest"])
            except (TypeError, ValueError):
                raise InvalidInput("repositories[%d].latest must be an integer" % index)
        for key in ("tag_regex", "exclude_regex", "semver"):
            if entry[key] is not None:
                entry[key] = str(entry[key])
        # validate filters early, with the item named
        try:
            select_tags([], entry["tag_regex"], entry["exclude_regex"], entry["semver"], entry["latest"])
        except InvalidInput as exc:
            raise InvalidInput("repositories[%d] (%s): %s" % (index, entry["name"], exc))
        result.append(entry)
    return result


class RegistrySync:
    def __init__(self, params: dict, check_mode: bool = False, diff: bool = False) -> None:
        self.params = params
        self.check_mode = check_mode
        self.diff = diff

    def run(self) -> dict:
        started = time.monotonic()
        params = self.params
        concurrency = params["concurrency"]
        if concurrency < 1:
            raise InvalidInput("concurrency must be 1 or more")
        platforms = params["platforms"] or ["all"]
        if "all" in platforms:
            platforms = "all"
        else:
            for platform in platforms:
                parse_platform(platform)
        src_registry = parse_registry(params["source_registry"])
        dst_registry = parse_registry(params["destination_registry"])
        repositories = normalise_repositories(params["repositories"], params["destination_prefix"])
        src = client_from_params(params, src_registry, "source_")
        dst = client_from_params(params, dst_registry, "destination_")

        listing_failures = []
        selections = self._select(repositories, src, dst, listing_failures, concurrency)
        jobs = []
        prune = []
        seen = {}
        for entry, tags, dst_tags in selections:
            for tag in tags:
                destination = ImageReference(dst_registry, entry["destination"], tag)
                source = ImageReference(src_registry, entry["name"], tag)
                key = str(destination)
                if key in seen and seen[key] != str(source):
                    raise InvalidInput("%s would receive both %s and %s; give one of them another destination"
                                       % (key, seen[key], source))
                if key not in seen:
                    seen[key] = str(source)
                    jobs.append(CopyJob(source, destination))
            if params["prune"] and dst_tags:
                selected = set(tags)
                prune.extend(ImageReference(dst_registry, entry["destination"], t)
                             for t in dst_tags if t not in selected)

        plan = plan_copies(jobs, lambda r: src, lambda r: dst, platforms=platforms, prune=prune,
                           concurrency=concurrency)
        stop_early = params["fail_fast"] and listing_failures
        result = execute(plan, concurrency=concurrency, fail_fast=params["fail_fast"],
                         check_mode=self.check_mode or bool(stop_early))
        if stop_early:
            result.copied, result.pruned = [], []
        output = result.as_dict()
        # "failed" and "skipped" are task status keys for Ansible: a list there would mark the task
        output["failed_images"] = listing_failures + output.pop("failed")
        output["skipped_images"] = output.pop("skipped")
        output["duration"] = round(time.monotonic() - started, 3)
        output["changed"] = result.changed
        if self.diff:
            before, after = {}, {}
            for planned in plan.copies:
                if planned.reference in result.copied:
                    before[planned.reference] = planned.destination_digest
                    after[planned.reference] = planned.source_digest
            for planned in plan.prunes:
                ref = str(planned.reference)
                if ref in result.pruned:
                    before[ref] = planned.digest
                    after[ref] = None
            output["diff"] = {"before": before, "after": after}
        return output

    def _select(self, repositories: list, src, dst, failures: list, concurrency: int) -> list:
        """``[(entry, selected tags, destination tags or None)]``; listing errors go to ``failures``."""
        prune = self.params["prune"]

        def one(entry):
            try:
                tags = entry["tags"] if entry["tags"] is not None else src.tags(entry["name"])
                selected = select_tags(tags, entry["tag_regex"], entry["exclude_regex"], entry["semver"],
                                       entry["latest"])
            except RegistryError as exc:
                return entry, None, None, exc
            dst_tags = None
            if prune:
                try:
                    dst_tags = dst.tags(entry["destination"])
                except NotFound:
                    dst_tags = []
                except RegistryError as exc:
                    return entry, selected, None, exc
            return entry, selected, dst_tags, None

        workers = max(1, min(concurrency, len(repositories)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            answers = list(pool.map(one, repositories))
        selections = []
        for entry, selected, dst_tags, error in answers:
            if error is not None:
                failures.append({"reference": "%s/%s" % (self.params["source_registry"], entry["name"]),
                                 "error": str(error), "error_kind": error.kind})
                if selected is None:
                    continue
            selections.append((entry, selected, dst_tags))
        return selections


def main() -> None:
    required_together = connection_required_together("source_") + connection_required_together("destination_")
    module = AnsibleModule(argument_spec=argument_spec(), required_together=required_together,
                           supports_check_mode=True)
    try:
        result = RegistrySync(module.params, check_mode=module.check_mode, diff=module._diff).run()
    except RegistryError as err:
        module.fail_json(**err.to_result())
    failed = result["failed_images"]
    if failed:
        first = failed[0]
        module.fail_json(msg="%d image(s) failed to sync; first: %s: %s"
                         % (len(failed), first["reference"], first["error"]), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
