# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):
    # Kept in step with plugins/module_utils/_argspec.py (ecr_argument_spec); used by registry_sync
    # and registry_image. tests/unit/plugins/modules/test_documentation.py compares them.

    DOCUMENTATION = r"""
options:
  create_repositories:
    description:
      - Create missing destination repositories in Amazon ECR before copying, with O(repository_settings).
        ECR refuses a push into a repository that does not exist (C(name unknown)); other registries create
        repositories on the first push and need nothing.
      - Repositories that exist are left as they are (their settings are not changed; the
        M(community.aws.ecs_ecr) module or the role with O(dockyard.registry.registry#role:main:registry_type=ecr)
        manage those).
      - The destination must be an ECR host (C(<account>.dkr.ecr.<region>.amazonaws.com)), or O(ecr) must say
        which ECR API stands behind the address.
      - In check mode nothing is created; the result lists the repositories that would be
        (RV(created_repositories)).
      - Every name is checked against ECR's rules, and the AWS credentials and region with one read, before
        anything is created or copied. A repository whose lifecycle or repository policy ECR refuses is
        deleted again.
      - Needs the C(boto3) Python library on the managed node.
    type: bool
    default: false
  repository_settings:
    description:
      - Settings of the repositories O(create_repositories) creates, given once for all of them.
    type: dict
    suboptions:
      image_tag_mutability:
        description: V(immutable) refuses to overwrite a tag that exists.
        type: str
        choices: [mutable, immutable]
        default: mutable
      scan_on_push:
        description: Scan every pushed image for known vulnerabilities.
        type: bool
        default: false
      keep_last:
        description:
          - A lifecycle rule that expires all but the newest N images (tagged or not). At least 1.
        type: int
      expire_untagged_days:
        description:
          - A lifecycle rule that expires untagged images this many days after their push. At least 1.
        type: int
      lifecycle_policy:
        description:
          - A lifecycle policy document (a dictionary or JSON text) instead of O(repository_settings.keep_last) and
            O(repository_settings.expire_untagged_days). Checked against ECR's rules (unique C(rulePriority),
            C(tagStatus), C(countType) with C(countUnit), C(action)) before anything is created.
        type: raw
      policy:
        description:
          - A repository (permissions) policy document, a dictionary or JSON text.
        type: raw
  ecr:
    description:
      - How to reach the ECR API of the destination registry, for O(create_repositories).
      - For an ECR host name (C(<account>.dkr.ecr.<region>.amazonaws.com)) account and region come from the name;
        credentials default to the AWS environment (E(AWS_PROFILE), E(AWS_ACCESS_KEY_ID), an instance role).
    type: dict
    suboptions:
      region:
        description: AWS region. Defaults to the one in the host name, else the AWS configuration.
        type: str
      profile:
        description: AWS profile to take credentials and region from.
        type: str
      registry_id:
        description: The 12-digit AWS account id that owns the registry. Defaults to the one in the host name.
        type: str
      endpoint_url:
        description: URL of the ECR API, for VPC endpoints or a local test endpoint.
        type: str
      aws_access_key_id:
        description: AWS access key id.
        type: str
      aws_secret_access_key:
        description: AWS secret access key. Never returned or logged.
        type: str
      aws_session_token:
        description: AWS session token for temporary credentials. Never returned or logged.
        type: str
"""
