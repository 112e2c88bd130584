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
        only those platforms and writes a new index, with a different digest.
    type: list
    elements: str
    default: [all]
  concurrency:
    description:
      - Workers used to copy blobs with O(source).
    type: int
    default: 4
  source_username:
    description:
      - User name for the registry of O(source) when it differs from the registry of O(name).
      - Without it, credentials are looked up in the docker C(config.json) (O(config_path)), else anonymous.
      - When O(source) is on the registry of O(name) and no C(source_*) option is given, the connection options
        of O(name) are used for both.
    type: str
  source_password:
    description:
      - Password or token for O(source_username).
    type: str
  source_ca_cert:
    description:
      - A PEM CA bundle that signed the TLS certificate of the source registry.
    type: path
  source_validate_certs:
    description:
      - Whether to verify the TLS certificate of the source registry.
    type: bool
    default: true
  source_client_cert:
    description:
      - PEM client certificate for mutual TLS with the source registry. Requires O(source_client_key).
    type: path
  source_client_key:
    description:
      - PEM private key for O(source_client_cert).
    type: path
requirements:
  - Docker SDK for Python (C(docker)) only for O(push) and O(pull).
notes:
  - A registry with deletion disabled answers a delete with C(405); the module then fails with
    C(error_kind=unsupported) and says how to enable it (C(storage.delete.enabled=true),
    C(REGISTRY_STORAGE_DELETE_ENABLED=true), or C(registry_delete_enabled=true) of the M(dockyard.registry.registry) role).
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
digest:
  description:
    - Digest of O(name) after the task (before it, for O(state=absent)); null when it does not exist.
    - In check mode, the digest it would have.
  returned: always
  type: str
  sample: sha256:4c3d7a1f3a0ba6a6d0b0d40c8e3c2e0b6f7a1c2d3e4f5061728394a5b6c7d8e9
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

import traceback
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.dockyard.registry.plugins.module_utils._argspec import (
    client_from_params,
    connection_argument_spec,
    connection_required_together,
    credentials_from_params,
)
from ansible_collections.dockyard.registry.plugins.module_utils._copy import (
    CopyJob,
    execute,
    parse_platform,
    plan_copies,
    retag,
)
from ansible_collections.dockyard.registry.plugins.module_utils._errors import (
    InvalidInput,
    MissingLibrary,
    NotFound,
    RegistryError,
    ServerError,
)
from ansible_collections.dockyard.registry.plugins.module_utils._reference import (
    parse_reference,
    parse_registry,
    validate_tag,
)

DOCKER_IMPORT_ERROR = None
try:
    import docker
    from docker.errors import APIError, DockerException, ImageNotFound
except ImportError:
    DOCKER_IMPORT_ERROR = traceback.format_exc()
    docker = None

SOURCE_OPTIONS = ("source_username", "source_password", "source_ca_cert", "source_client_cert",
                  "source_client_key")


class SharedDigest(InvalidInput):
    """Deleting the manifest would remove other tags too."""

    def __init__(self, message: str, tags: list, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.tags = tags


def argument_spec() -> dict:
    spec = connection_argument_spec()
    source = connection_argument_spec("source_")
    spec.update((k, v) for k, v in source.items() if k.startswith("source_"))
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
    return spec


def _with_default_tag(ref):
    return ref if (ref.tag or ref.digest) else ref.with_tag("latest")


class RegistryImage:
    def __init__(self, params: dict, check_mode: bool = False, diff: bool = False) -> None:
        self.params = params
        self.check_mode = check_mode
        self.diff = diff
        default = parse_registry(params["registry"]) if params.get("registry") else None
        self.default_registry = default
        self.ref = _with_default_tag(parse_reference(params["name"], default))
        self.client = client_from_params(params, self.ref.registry)
        self.result = {"changed": False, "digest": None, "copied": False, "pushed": False, "pulled": False,
                       "tags_changed": [], "removed_tags": []}

    # -- helpers ---------------------------------------------------------------------------
    def _head(self, reference: str):
        desc = self.client.manifest_head(self.ref.repository, reference)
        return desc.digest if desc is not None else None

    def _docker(self):
        if docker is None:
            raise MissingLibrary("the Docker SDK for Python (docker) is needed for push and pull")
        try:
            return docker.from_env()
        except DockerException as exc:
            raise InvalidInput("cannot talk to the Docker engine: %s" % exc)

    def _auth_config(self):
        credentials = credentials_from_params(self.params, self.ref.registry)
        if credentials is not None and credentials.username and credentials.password:
            return {"username": credentials.username, "password": credentials.password}
        return None

    # -- present ---------------------------------------------------------------------------
    def present(self) -> dict:
        params = self.params
        before = self._head(self.ref.reference)
        after = before
        if params["source"]:
            after = self._copy(before)
        elif params["push"]:
            after = self._push(before)
        elif before is None:
            raise NotFound("%s does not exist; give source or push to create it" % self.ref,
                           registry=self.ref.registry.display, reference=str(self.ref))
        self.result["digest"] = after

        tags = [validate_tag(t) for t in params["tags"] or []]
        tag_before = {}
        if tags:
            if self.ref.digest is None and self.ref.tag in tags:
                tags = [t for t in tags if t != self.ref.tag]
            for tag in tags:
                tag_before[tag] = self._head(tag)
            if self.check_mode and after != before:
                changed_tags = [t for t in tags if tag_before[t] != after]
            else:
                changed_tags = retag(self.client, self.ref.repository, after, tags, check_mode=self.check_mode)
            self.result["tags_changed"] = changed_tags

        if params["pull"]:
            self._pull(after)

        self.result["changed"] = (after != before or self.result["pushed"] or bool(self.result["tags_changed"])
                                  or self.result["pulled"])
        if self.diff:
            self.result["diff"] = {
                "before": dict({"digest": before}, **dict(("tag %s" % t, tag_before[t]) for t in tag_before)),
                "after": dict({"digest": after}, **dict(("tag %s" % t, after) for t in tag_before)),
            }
        return self.result

    def _copy(self, before):
        params = self.params
        source = _with_default_tag(parse_reference(params["source"], self.default_registry))
        same = source.registry == self.ref.registry and not any(params.get(k) for k in SOURCE_OPTIONS)
        src_client = self.client if same else client_from_params(params, source.registry, "source_")
        platforms = params["platforms"] or ["all"]
        if "all" in platforms:
            platforms = "all"
        else:
            for platform in platforms:
                parse_platform(platform)
        plan = plan_copies([CopyJob(source, self.ref)], lambda r: src_client, lambda r: self.client,
                           platforms=platforms, concurrency=params["concurrency"])
        result = execute(plan, concurrency=params["concurrency"], check_mode=self.check_mode)
        if result.errors:
            raise result.errors[0]
        counters = result.as_dict()
        keys = ("bytes_copied", "blobs_uploaded", "blobs_mounted", "blobs_skipped", "duration")
        self.result["copy_stats"] = dict((k, counters[k]) for k in keys)
        self.result["copied"] = bool(result.copied)
        return plan.copies[0].source_digest or before

    def _push(self, before):
        if self.ref.digest:
            raise InvalidInput("push needs a tag in name, not a digest: %s" % self.ref)
        client = self._docker()
        try:
            image = client.images.get(self.params["push"])
        except ImageNotFound:
            raise NotFound("local image %s not found in the Docker engine" % self.params["push"])
        except (APIError, DockerException) as exc:
            raise ServerError("the Docker engine failed to look up %s: %s" % (self.params["push"], exc))
        repository = self.ref.name
        if before and "%s@%s" % (repository, before) in (image.attrs.get("RepoDigests") or []):
            return before
        if self.check_mode:
            # the digest a push would produce is only known after pushing
            self.result["pushed"] = True
            return before
        target = "%s:%s" % (repository, self.ref.tag)
        added_tag = target not in (image.tags or [])
        try:
            if added_tag:
                image.tag(repository, self.ref.tag)
            pushed = None
            for line in client.api.push(repository, tag=self.ref.tag, auth_config=self._auth_config(),
                                        stream=True, decode=True):
                if line.get("error"):
                    raise ServerError("the Docker engine failed to push %s: %s" % (target, line["error"]),
                                      registry=self.ref.registry.display, reference=target)
                aux = line.get("aux") or {}
                if aux.get("Digest"):
                    pushed = aux["Digest"]
        except (APIError, DockerException) as exc:
            raise ServerError("the Docker engine failed to push %s: %s" % (target, exc),
                              registry=self.ref.registry.display, reference=target)
        finally:
            if added_tag:
                try:
                    client.images.remove(target, noprune=True)
                except (APIError, DockerException):
                    pass
        after = self._head(self.ref.reference) or pushed
        self.result["pushed"] = after != before
        return after

    def _pull(self, digest) -> None:
        client = self._docker()
        repository = self.ref.name
        wanted = "%s@%s" % (repository, digest)
        local = self.ref.tag and "%s:%s" % (repository, self.ref.tag) or wanted
        try:
            image = client.images.get(local)
            if wanted in (image.attrs.get("RepoDigests") or []):
                return
        except ImageNotFound:
            pass
        except (APIError, DockerException) as exc:
            raise ServerError("the Docker engine failed to look up %s: %s" % (local, exc))
        self.result["pulled"] = True
        if self.check_mode:
            return
        try:
            for line in client.api.pull(repository, tag=self.ref.tag or digest, auth_config=self._auth_config(),
                                        stream=True, decode=True):
                if line.get("error"):
                    raise ServerError("the Docker engine failed to pull %s: %s" % (local, line["error"]),
                                      registry=self.ref.registry.display, reference=local)
        except (APIError, DockerException) as exc:
            raise ServerError("the Docker engine failed to pull %s: %s" % (local, exc),
                              registry=self.ref.registry.display, reference=local)

    # -- absent ----------------------------------------------------------------------------
    def absent(self) -> dict:
        params = self.params
        for option in ("source", "push"):
            if params[option]:
                raise InvalidInput("%s cannot be used with state=absent" % option)
        if params["tags"] or params["pull"]:
            raise InvalidInput("tags and pull cannot be used with state=absent")
        digest = self._head(self.ref.reference)
        self.result["digest"] = digest
        if digest is None:
            return self.result
        sharing = self._tags_on(digest)
        others = sorted(t for t in sharing if t != self.ref.tag or self.ref.digest)
        if others and not params["force"]:
            raise SharedDigest(
                "refusing to delete %s: its manifest %s also carries the tag(s) %s, and deleting a manifest "
                "removes every tag on it; set force=true to delete them all" % (self.ref, digest, ", ".join(others)),
                others, registry=self.ref.registry.display, reference=str(self.ref))
        if not self.check_mode:
            self.client.manifest_delete(self.ref.repository, digest)
        self.result["changed"] = True
        self.result["removed_tags"] = sorted(sharing)
        if self.diff:
            self.result["diff"] = {"before": {"digest": digest, "tags": sorted(sharing)},
                                   "after": {"digest": None, "tags": []}}
        return self.result

    def _tags_on(self, digest: str) -> list:
        try:
            tags = self.client.tags(self.ref.repository)
        except NotFound:
            return []
        if self.ref.tag and self.ref.tag not in tags and not self.ref.digest:
            tags.append(self.ref.tag)
        workers = max(1, min(self.params["concurrency"], len(tags)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            digests = list(pool.map(self._head, tags))
        return [t for t, d in zip(tags, digests) if d == digest]

    def run(self) -> dict:
        if self.params["concurrency"] < 1:
            raise InvalidInput("concurrency must be 1 or more")
        if self.params["state"] == "absent":
            return self.absent()
        return self.present()


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[["source", "push"]],
        required_together=connection_required_together() + connection_required_together("source_"),
        supports_check_mode=True,
    )
    try:
        result = RegistryImage(module.params, check_mode=module.check_mode, diff=module._diff).run()
    except SharedDigest as err:
        module.fail_json(shared_tags=err.tags, **err.to_result())
    except MissingLibrary as err:
        module.fail_json(msg=missing_required_lib("docker"), exception=DOCKER_IMPORT_ERROR, error_kind=err.kind)
    except RegistryError as err:
        module.fail_json(**err.to_result())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
