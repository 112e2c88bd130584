# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Print what moto's ECR holds for repositories under a prefix, read with boto3 directly
(independent of the role and of community.aws): python ecr_state.py ENDPOINT REGION PREFIX"""
import json
import sys

import boto3


def main():
    endpoint, region, prefix = sys.argv[1:4]
    client = boto3.client("ecr", region_name=region, endpoint_url=endpoint,
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    state = {}
    for page in client.get_paginator("describe_repositories").paginate():
        for repo in page["repositories"]:
            name = repo["repositoryName"]
            if not name.startswith(prefix):
                continue
            entry = {"mutability": repo["imageTagMutability"],
                     "scan_on_push": repo["imageScanningConfiguration"]["scanOnPush"],
                     "lifecycle_policy": None, "policy": None}
            try:
                entry["lifecycle_policy"] = json.loads(
                    client.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"])
            except client.exceptions.LifecyclePolicyNotFoundException:
                pass
            try:
                entry["policy"] = json.loads(client.get_repository_policy(repositoryName=name)["policyText"])
            except client.exceptions.RepositoryPolicyNotFoundException:
                pass
            state[name] = entry
    print(json.dumps(state, sort_keys=True))


if __name__ == "__main__":
    main()
