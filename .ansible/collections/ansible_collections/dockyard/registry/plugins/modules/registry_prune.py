#!/usr/bin/python
# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_prune
short_description: Delete old tags from a container registry by retention rules
version_added: 0.2.0
description:
  - Deletes the tags of repositories that retention rules select - keep the newest N, delete what is older than a
    duration, only tags matching a regex, never tags matching another regex or on listed digests - through the OCI
    distribution API, without a Docker daemon.
  - B(Plans first, deletes second.) Every repository is listed and every tag's manifest read before anything is
    deleted; check mode and C(--diff) return that exact plan - per repository the tags and digests to delete,
    every kept tag with the rule that kept it, and the bytes of layers that would no longer be referenced.
  - Deleting a manifest removes every tag on it, so a manifest is deleted only when every tag on it is to be
    deleted; other tags on it are kept and reported in RV(kept_by_sharing). A manifest that a kept multi-platform
    index lists as one of its platforms is never deleted. When an index is deleted, its platform manifests that
    nothing kept uses are deleted with it (otherwise a garbage collection could not free their layers).
  - A safety cap, O(max_delete), refuses the whole run - deleting nothing anywhere - when the rules would delete
    more tags of a repository than it allows, and says what it would have deleted; O(force=true) passes it.
  - A repository whose tags or manifests cannot be read completely (a C(5xx) after the retries, a cut
    connection) is left untouched - never deleted from a partial view - and the task fails naming it after the
    other repositories are done. So does one whose tags change between the plan and the deletion.
  - Deleting tags frees no disk space by itself; the registry's garbage collector does (see the
    C(dockyard.registry.registry) role's C(gc) entry point and C(playbooks/garbage_collect.yml)).
author:
  - dockyard.registry contributors (@dockyard)
extends_documentation_fragment:
  - dockyard.registry.attributes
  - dockyard.registry.attributes.ACTIONGROUP_REGISTRY
  - dockyard.registry.registry_connection
  - dockyard.registry.registry_connection.COMMON
attributes:
  check_mode:
    support: full
    details: Lists and reads everything, deletes nothing; the result is the exact plan a real run would carry out
      (it fails the same way when O(max_delete) would refuse).
  diff_mode:
    support: full
    details: The tags of every repository that changes, before and after.
  idempotent:
    support: full
    details: Once the selected tags are gone, the same rules select nothing more - unless time passes and
      O(older_than) or new pushes select other tags.
options:
  registry:
    description:
      - The registry, as C(host[:port]) (HTTPS), C(https://host[:port]) or C(http://host[:port]).
      - Deletion must be enabled in the registry (C(storage.delete.enabled); the C(dockyard.registry.registry)
        role's C(registry_delete_enabled)).
    type: str
    required: true
  repositories:
    description:
      - The repositories to prune - names, or dictionaries with a O(repositories[].name) and any of the rule options
        (O(keep_latest), O(order), O(keep_regex), O(delete_regex), O(older_than), O(keep_digests),
        O(delete_undated), O(max_delete)), which replace the task's own for that repository.
      - A repository listed here that does not exist fails the task before anything is deleted.
      - Give either O(repositories) or O(include).
    type: list
    elements: raw
    suboptions:
      name:
        description: The repository, for example C(team/app).
        type: str
        required: true
  include:
    description:
      - Prune every repository of the registry's catalog that matches one of these Python regular expressions
        (C(re.search); V(.) matches all), with the task's rules.
      - Listing the catalog needs a registry that offers C(/v2/_catalog) and, with token authentication, the
        C(registry:catalog:*) scope.
    type: list
    elements: str
  exclude:
    description:
      - With O(include) - leave out the repositories that match one of these regular expressions.
    type: list
    elements: str
  keep_latest:
    description:
      - Keep the N newest images (distinct manifests; every tag on them stays) of the tags the other rules would
        delete, newest by O(order). V(1) or more.
      - Tags that O(order) cannot place are kept - with O(order=semver) tags that are not versions (C(latest),
        C(main)), with O(order=created) images without a C(created) date.
    type: int
  order:
    description:
      - How O(keep_latest) finds the newest.
      - V(semver) - by version (C(v1.10.0) after C(1.9.2); pre-releases before their release).
      - V(created) - by the C(created) time of the image configuration (of the newest platform for an index).
      - V(name) - by tag name, larger first (date-stamped tags such as C(20240501-1)).
    type: str
    choices: [semver, created, name]
    default: semver
  keep_regex:
    description:
      - Never delete tags matching this Python regular expression (C(re.search); anchor it with C(^...$)).
    type: str
  delete_regex:
    description:
      - Only tags matching this Python regular expression are candidates for deletion; every other tag is kept.
      - Without O(keep_latest) and O(older_than), every matching tag is deleted (within O(max_delete)).
    type: str
  older_than:
    description:
      - Only delete images created longer ago than this - a number and a unit, C(s), C(m), C(h), C(d) or C(w), for
        example V(30d), V(12h), V(2w), V(1d12h) - by the C(created) time in the image configuration.
      - Images without a C(created) date are kept and reported, unless O(delete_undated=true).
    type: str
  keep_digests:
    description:
      - Never delete manifests with these digests (and so none of their tags).
    type: list
    elements: str
  delete_undated:
    description:
      - With O(older_than) - also delete images whose configuration has no C(created) date.
    type: bool
    default: false
  max_delete:
    description:
      - The most tags one run may delete in a repository - a number of tags (V(20)) or a percentage of the
        repository's tags (V(50%)). Above it the task fails before deleting anything anywhere and lists what it
        would have deleted.
      - The default, V(50%), lets a schedule trim a repository but stops a wrong regex, or an O(older_than) on a
        repository nobody pushed to for a while, from emptying it. A first run on a backlog usually needs a higher
        value or O(force=true); run it in check mode first.
    type: str
    default: 50%
  force:
    description:
      - Delete what the rules select even above O(max_delete).
    type: bool
    default: false
  concurrency:
    description:
      - Requests at once while reading tags and manifests (and connections to the registry). Between V(1) and V(64).
    type: int
    default: 4
notes:
  - Without O(username) and O(password) the credentials the docker CLI would use for the registry are taken from
    O(config_path); with token authentication the credentials need the C(delete) action (and C(pull)).
seealso:
  - module: dockyard.registry.registry_info
    description: List repositories and tags, inspect an image before deleting it.
  - module: dockyard.registry.registry_image
    description: Delete one image by tag or digest.
  - name: The registry role's README - garbage collection
    description: Free the disk space of deleted images safely (read-only window, cache flush, restart).
    link: https://example.invalid/dockyard/registry/-/blob/main/roles/registry/README.md
  - name: Retention and garbage collection
    description: The policy and GC walk-through with measured disk usage.
    link: https://example.invalid/dockyard/registry/-/blob/main/docs/retention-and-gc.md
"""

EXAMPLES = r"""
- name: Keep the 10 newest releases of team/app, never the "stable" or "latest" tags
  dockyard.registry.registry_prune:
    registry: registry.example.com:5000
    repositories: [team/app]
    keep_latest: 10
    order: semver
    keep_regex: ^(stable|latest)$

- name: Delete CI builds older than 30 days, keeping the 5 newest of them, in every ci/ repository
  dockyard.registry.registry_prune:
    registry: registry.example.com:5000
    include: ["^ci/"]
    exclude: ["^ci/base$"]
    delete_regex: ^(pr-|sha-)
    older_than: 30d
    keep_latest: 5
    order: created
  register: pruned

- name: Show what was deleted and what it will free after a garbage collection
  ansible.builtin.debug:
    msg: "{{ pruned.deleted_tags | length }} tags deleted, about {{ pruned.bytes_unreferenced | human_readable }} to collect"

- name: Per-repository rules, checked first (run the play with --check --diff to see the plan)
  dockyard.registry.registry_prune:
    registry: registry.example.com:5000
    username: janitor
    password: "{{ vault_janitor_password }}"
    keep_latest: 20
    repositories:
      - team/app
      - name: team/nightly
        order: name
        keep_latest: 7
      - name: team/legacy
        older_than: 52w
        keep_digests:
          - sha256:6d2e1c4a9b8f7e6d5c4b3a291807f6e5d4c3b2a19080706f5e4d3c2b1a090807

- name: A first run on a repository with a long backlog (the cap would refuse it)
  dockyard.registry.registry_prune:
    registry: registry.example.com:5000
    repositories: [team/app]
    keep_latest: 10
    max_delete: 100%
"""

RETURN = r"""
registry:
  description: The registry that was pruned.
  returned: always
  type: str
  sample: registry.example.com:5000
deleted_tags:
  description: The tags deleted (in check mode - that would be deleted), as C(repository:tag).
  returned: always
  type: list
  elements: str
  sample: ["team/app:1.0.0", "team/app:1.0.1"]
deleted_digests:
  description:
    - The manifests deleted (in check mode - that would be deleted), as C(repository@digest) - the manifests of
      RV(deleted_tags) and the platform manifests of deleted indexes that nothing kept uses.
  returned: always
  type: list
  elements: str
  sample: ["team/app@sha256:6d2e1c4a9b8f7e6d5c4b3a291807f6e5d4c3b2a19080706f5e4d3c2b1a090807"]
kept_by_sharing:
  description:
    - Tags the rules selected that were kept because their manifest also carries a kept tag, or is a platform of a
      kept index, as C(repository:tag).
  returned: always
  type: list
  elements: str
  sample: ["team/app:build-812"]
bytes_unreferenced:
  description:
    - Bytes of layers, configurations and manifests that the deleted manifests reference and no kept manifest of
      the repositories in this run does - about what a garbage collection will free. An estimate - layers that
      repositories outside this run use are counted, though the collector keeps them.
  returned: always
  type: int
  sample: 73400320
failed_repositories:
  description: Repositories that could not be listed, read or pruned; nothing was deleted from them.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The repository.
      type: str
    error:
      description: What went wrong.
      type: str
    error_kind:
      description: The kind of error (C(server_error), C(unreachable), C(concurrent_change), ...).
      type: str
repositories:
  description: The plan and outcome of every repository.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The repository.
      type: str
    status:
      description:
        - V(pruned) - its manifests were deleted; V(planned) - check mode, or not run because another repository
          was refused; V(unchanged) - nothing to delete; V(refused) - above O(max_delete); V(failed) - see
          RV(repositories[].error).
      type: str
    tags_total:
      description: The number of tags it had.
      type: int
    delete_tags:
      description: The tags to delete.
      type: list
      elements: str
    delete_digests:
      description: The manifests to delete, in the order they are deleted (indexes before their platforms).
      type: list
      elements: str
    deleted_digests:
      description: The manifests actually deleted by this run.
      type: list
      elements: str
    kept:
      description: Every tag that stays, with the digest, the rule that kept it and why.
      type: list
      elements: dict
      contains:
        tag:
          description: The tag.
          type: str
        digest:
          description: Its manifest's digest.
          type: str
        rule:
          description:
            - V(not_selected) (O(delete_regex) does not match), V(keep_regex), V(keep_digests), V(keep_latest),
              V(unordered) (O(order) cannot place it), V(newer) (within O(older_than)), V(undated) (no C(created)
              date), V(shared) (its manifest carries a kept tag), V(index_child) (a platform of a kept index).
          type: str
        reason:
          description: The same in words.
          type: str
    kept_by_sharing:
      description: The kept tags with rule V(shared) or V(index_child).
      type: list
      elements: str
    bytes_unreferenced:
      description: Bytes the deleted manifests reference that no kept manifest of this repository does.
      type: int
    max_delete:
      description: How many tags O(max_delete) allows to delete here.
      type: int
    rules:
      description: The rules applied to this repository.
      type: dict
    error:
      description: What went wrong.
      type: str
      returned: when RV(repositories[].status=failed)
    error_kind:
      description: The kind of error.
      type: str
      returned: when RV(repositories[].status=failed)
  sample:
    - name: team/app
      status: pruned
      tags_total: 12
      delete_tags: ["1.0.0", "1.0.1"]
      delete_digests: ["sha256:0f2b..."]
      deleted_digests: ["sha256:0f2b..."]
      kept:
        - {tag: "1.2.0", digest: "sha256:9c3a...", rule: keep_latest, reason: "one of the 10 newest images (order semver)"}
        - {tag: latest, digest: "sha256:9c3a...", rule: keep_regex, reason: "matches keep_regex '^(stable|latest)$'"}
      kept_by_sharing: []
      bytes_unreferenced: 3623807
      max_delete: 6
      rules: {keep_latest: 10, order: semver, keep_regex: "^(stable|latest)$", delete_regex: null, older_than: null,
              keep_digests: [], delete_undated: false, max_delete: 50%}
duration:
  description: Seconds the module took.
  returned: always
  type: float
  sample: 1.42
retries:
  description: Requests sent again (O(retries)) - C(count), C(statuses), C(network_errors) and C(waited) (seconds).
  returned: always
  type: dict
  sample: {"count": 0, "statuses": {}, "network_errors": 0, "waited": 0.0}
diff:
  description: With C(--diff) - the tags of every repository that changes, before and after.
  returned: when diff mode is on
  type: dict
  sample: {"before": {"team/app": ["1.0.0", "1.2.0"]}, "after": {"team/app": ["1.2.0"]}}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockyard.registry.plugins.module_utils._argspec import (
    connection_argument_spec,
    connection_required_together,
    run_registry_module,
)
from ansible_collections.dockyard.registry.plugins.module_utils._prune import DEFAULT_MAX_DELETE, registry_prune


def argument_spec() -> dict:
    spec = connection_argument_spec()
    spec["registry"] = dict(type="str", required=True)
    spec.update(
        repositories=dict(type="list", elements="raw"),
        include=dict(type="list", elements="str"),
        exclude=dict(type="list", elements="str"),
        keep_latest=dict(type="int"),
        order=dict(type="str", choices=["semver", "created", "name"], default="semver"),
        keep_regex=dict(type="str"),
        delete_regex=dict(type="str"),
        older_than=dict(type="str"),
        keep_digests=dict(type="list", elements="str"),
        delete_undated=dict(type="bool", default=False),
        max_delete=dict(type="str", default=DEFAULT_MAX_DELETE),
        force=dict(type="bool", default=False),
        concurrency=dict(type="int", default=4),
    )
    return spec


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_together=connection_required_together(),
        required_one_of=[["repositories", "include"]],
        mutually_exclusive=[["repositories", "include"], ["repositories", "exclude"]],
        supports_check_mode=True,
    )
    ok, result = run_registry_module(module, registry_prune)
    (module.exit_json if ok else module.fail_json)(**result)


if __name__ == "__main__":
    main()
