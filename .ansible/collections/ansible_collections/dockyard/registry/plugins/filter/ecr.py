# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filters for the registry role's ECR type: the lifecycle policy document and the region check,
from the same code registry_sync and registry_image use (module_utils/_ecr.py), so that the
role and the modules generate and accept the same things. Documented in ecr_lifecycle_policy.yml
and ecr_region.yml."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.dockyard.registry.plugins.module_utils._ecr import (
    lifecycle_policy,
    validate_region,
)
from ansible_collections.dockyard.registry.plugins.module_utils._errors import InvalidInput

try:
    import boto3
    HAS_BOTO3 = True
except ImportError:
    HAS_BOTO3 = False


def ecr_lifecycle_policy(entry, what: str = "repository"):
    """An ECR repository entry's lifecycle policy document, or None."""
    if not isinstance(entry, dict):
        raise AnsibleFilterError("ecr_lifecycle_policy expects a dictionary (a repository entry), got %s"
                                 % type(entry).__name__)
    try:
        return lifecycle_policy(entry.get("keep_last"), entry.get("expire_untagged_days"),
                                entry.get("lifecycle_policy"), what)
    except InvalidInput as exc:
        raise AnsibleFilterError(str(exc)) from None


def ecr_region(region, endpoint_url=None):
    """The region, when ECR has it (botocore's list on the controller, when boto3 is installed)."""
    known = None
    if HAS_BOTO3 and not endpoint_url:
        session = boto3.session.Session()
        known = []
        for partition in session.get_available_partitions():
            known.extend(session.get_available_regions("ecr", partition))
    try:
        validate_region(region or None, endpoint_url or None, known)
    except InvalidInput as exc:
        raise AnsibleFilterError(str(exc)) from None
    return region


class FilterModule(object):
    def filters(self):
        return {"ecr_lifecycle_policy": ecr_lifecycle_policy, "ecr_region": ecr_region}
