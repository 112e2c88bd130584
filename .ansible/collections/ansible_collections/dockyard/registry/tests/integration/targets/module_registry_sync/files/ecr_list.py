# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What moto's ECR holds under a prefix, read with boto3 directly (not through the collection):
python ecr_list.py ENDPOINT REGION PREFIX -> {name: {mutability, lifecycle}}"""
import json
import sys

import boto3


def main():
    endpoint, region, prefix = sys.argv[1:4]
    client = boto3.client("ecr", region_name=region, endpoint_url=endpoint,
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    found = {}
    for page in client.get_paginator("describe_repositories").paginate():
        for repo in page["repositories"]:
            name = repo["repositoryName"]
            if not name.startswith(prefix + "/"):
                continue
            try:
                lifecycle = json.loads(client.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"])
            except client.exceptions.LifecyclePolicyNotFoundException:
                lifecycle = None
            found[name] = {"mutability": repo["imageTagMutability"], "lifecycle": lifecycle}
    print(json.dumps(found))


if __name__ == "__main__":
    main()
