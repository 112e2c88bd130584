#!/usr/bin/python
# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_backend_check
short_description: Check the S3 bucket, Redis server and pull-through upstream a registry is about to use
version_added: 0.2.0
description:
  - Asks each service a registry depends on the one question that proves the registry will work with it, and fails
    with the cause and the fix when it would not. Never changes anything.
  - O(s3) - lists at most one key under the registry's root directory (C(ListObjectsV2), signed with AWS Signature
    Version 4). That needs the endpoint reachable, the credentials valid and the bucket there - the causes of a
    registry that crash-loops or answers C(503) on S3.
  - O(redis) - authenticates, selects the database and sends C(PING); returns the server's C(maxmemory-policy),
    and warns unless it is C(allkeys-lru) (what the distribution documentation asks for).
  - O(upstream) - reads the challenge of the upstream's C(/v2/). Registry 2.8.2's pull-through cache authenticates
    only to Bearer token upstreams, so a Basic (htpasswd) upstream is refused with that reason; with O(upstream.username)
    the credentials are tried at the upstream's token server.
  - The role P(dockyard.registry.registry#role) runs it before it replaces a registry's configuration, so a registry that
    was serving keeps serving when the new storage, cache or upstream is wrong.
  - Needs only the Python standard library on the target (no boto3, no redis-py).
author:
  - dockyard.registry contributors (@dockyard)
options:
  s3:
    description:
      - The S3 storage to check, as the registry's C(storage.s3) section would name it.
    type: dict
    suboptions:
      bucket:
        description: The bucket.
        type: str
        required: true
      region:
        description: The bucket's region (any value for S3-compatible stores that ignore it).
        type: str
        default: us-east-1
      endpoint:
        description:
          - An S3-compatible endpoint URL (C(regionendpoint)), for example V(https://minio.example.com:9000). Addressed
            path-style, as registry 2.8.2 does with an endpoint. Empty for AWS.
        type: str
        default: ""
      access_key:
        description:
          - Access key. Without O(s3.access_key) and O(s3.secret_key) the module uses C(AWS_ACCESS_KEY_ID)/C(AWS_SECRET_ACCESS_KEY)
            from its environment, else the instance profile (IMDSv2), like the registry; with none of them the check is
            skipped with a warning.
        type: str
        default: ""
      secret_key:
        description: Secret key of O(s3.access_key).
        type: str
        default: ""
      root_directory:
        description: The registry's root directory in the bucket (C(rootdirectory)); the listing is limited to it.
        type: str
        default: ""
      secure:
        description: Use HTTPS when O(s3.endpoint) has no scheme, and on AWS.
        type: bool
        default: true
      skip_verify:
        description: Do not verify the endpoint's TLS certificate (the registry's C(skipverify)).
        type: bool
        default: false
  redis:
    description:
      - The Redis server of the registry's blob descriptor cache.
    type: dict
    suboptions:
      address:
        description: V(host:port).
        type: str
        required: true
      password:
        description: Password (C(AUTH)); empty for none.
        type: str
        default: ""
      db:
        description: Database number.
        type: int
        default: 0
  upstream:
    description:
      - The upstream of a pull-through cache (C(proxy.remoteurl)).
    type: dict
    suboptions:
      url:
        description: V(https://host[:port]).
        type: str
        required: true
      username:
        description: User the cache pulls as; tried at the upstream's token server.
        type: str
        default: ""
      password:
        description: Password of O(upstream.username).
        type: str
        default: ""
  ca_cert:
    description:
      - PEM files of CAs to trust for HTTPS to S3 and the upstream, in addition to the system's.
    type: list
    elements: path
    default: []
  timeout:
    description: Seconds to wait for each connection and answer; more than V(0), at most V(3600).
    type: float
    default: 10
extends_documentation_fragment:
  - dockyard.registry.attributes
  - dockyard.registry.attributes.ACTIONGROUP_NONE
  - dockyard.registry.attributes.READ_ONLY
notes:
  - The checks run from the target host. A registry in a container on Docker's default bridge does not reach the
    host's C(127.0.0.1); the role refuses loopback addresses for S3 and Redis for that reason.
seealso:
  - name: Role dockyard.registry.registry
    description: >-
      Deploys registries on S3 with a Redis cache, and pull-through caches, after this check
      (C(ansible-doc -t role dockyard.registry.registry)).
    link: https://example.invalid/dockyard/registry/-/blob/main/roles/registry/README.md
  - name: Registry configuration reference (storage, redis, proxy)
    description: What the registry does with these services.
    link: https://distribution.github.io/distribution/about/configuration/
"""

EXAMPLES = r"""
- name: Check the bucket, Redis and credentials before switching the registry to them
  dockyard.registry.registry_backend_check:
    s3:
      bucket: acme-registry
      region: eu-central-1
      access_key: "{{ vault_s3_access_key }}"
      secret_key: "{{ vault_s3_secret_key }}"
      root_directory: /registry
    redis:
      address: redis.internal:6379
      password: "{{ vault_redis_password }}"

- name: Check an S3-compatible store with a private CA
  dockyard.registry.registry_backend_check:
    s3:
      bucket: registry
      endpoint: https://minio.internal:9000
      access_key: registry
      secret_key: "{{ vault_minio_secret }}"
    ca_cert: [/etc/pki/internal-ca.pem]

- name: Check that a pull-through cache can use its upstream
  dockyard.registry.registry_backend_check:
    upstream:
      url: https://registry-1.docker.io
      username: acme
      password: "{{ vault_hub_token }}"
"""

RETURN = r"""
s3:
  description: What the S3 check found.
  returned: when O(s3) is given
  type: dict
  contains:
    checked:
      description: Whether the bucket was listed (false when no credentials could be found to check with).
      type: bool
    bucket:
      description: The bucket.
      type: str
    prefix:
      description: The listed prefix (the root directory with a trailing C(/)).
      type: str
    empty:
      description: Whether nothing is stored under the prefix yet.
      type: bool
    credentials:
      description: Where the credentials came from - V(options), V(environment) or V(instance profile).
      type: str
  sample: {checked: true, bucket: acme-registry, prefix: registry/, empty: false, credentials: options}
redis:
  description: What the Redis check found.
  returned: when O(redis) is given
  type: dict
  contains:
    version:
      description: The server's C(redis_version).
      type: str
    maxmemory_policy:
      description: The server's C(maxmemory_policy).
      type: str
  sample: {address: redis.internal:6379, db: 0, version: 7.0.15, maxmemory_policy: allkeys-lru}
upstream:
  description: What the upstream asked for.
  returned: when O(upstream) is given
  type: dict
  contains:
    auth:
      description: V(none) (anonymous) or V(bearer).
      type: str
    realm:
      description: The token server, for V(bearer).
      type: str
  sample: {url: https://registry-1.docker.io, auth: bearer, realm: https://auth.docker.io/token, service: registry.docker.io}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockyard.registry.plugins.module_utils._argspec import run_registry_module
from ansible_collections.dockyard.registry.plugins.module_utils._backends import registry_backend_check


def argument_spec() -> dict:
    return dict(
        s3=dict(type="dict", options=dict(
            bucket=dict(type="str", required=True),
            region=dict(type="str", default="us-east-1"),
            endpoint=dict(type="str", default=""),
            access_key=dict(type="str", default="", no_log=False),
            secret_key=dict(type="str", default="", no_log=True),
            root_directory=dict(type="str", default=""),
            secure=dict(type="bool", default=True),
            skip_verify=dict(type="bool", default=False),
        )),
        redis=dict(type="dict", options=dict(
            address=dict(type="str", required=True),
            password=dict(type="str", default="", no_log=True),
            db=dict(type="int", default=0),
        )),
        upstream=dict(type="dict", options=dict(
            url=dict(type="str", required=True),
            username=dict(type="str", default=""),
            password=dict(type="str", default="", no_log=True),
        )),
        ca_cert=dict(type="list", elements="path", default=[]),
        timeout=dict(type="float", default=10),
    )


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    ok, result = run_registry_module(module, registry_backend_check, report_retries=False)
    (module.exit_json if ok else module.fail_json)(**result)


if __name__ == "__main__":
    main()
