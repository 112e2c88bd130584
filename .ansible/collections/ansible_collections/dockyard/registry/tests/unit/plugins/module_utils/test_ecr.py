# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""ECR names, settings and lifecycle policies (pure), and repository creation against a real
moto server (the moto_endpoint fixture in ../conftest.py)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.dockyard.registry.plugins.module_utils._ecr import (
    EcrRepositories,
    ecr_target,
    lifecycle_policy,
    normalise_settings,
    repositories_from_params,
    validate_lifecycle_policy,
    validate_region,
    validate_repository_name,
)
from ansible_collections.dockyard.registry.plugins.module_utils._errors import InvalidInput, Unauthorized
from ansible_collections.dockyard.registry.plugins.module_utils._reference import parse_registry


# --- names, regions, targets --------------------------------------------------------------------

@pytest.mark.parametrize("name", ["ab", "team/app", "team/app-api", "a.b_c-d/e", "x" * 256])
def test_names_ecr_accepts(name):
    assert validate_repository_name(name) == name


@pytest.mark.parametrize("name", ["a", "Team/app", "team//app", "team/app_", "team/-app", "team/a__b",
                                  "x" * 257, "/app"])
def test_names_ecr_refuses(name):
    with pytest.raises(InvalidInput, match="ECR does not accept the repository name"):
        validate_repository_name(name)


def test_regions():
    validate_region("eu-west-1", None, ["eu-west-1"])
    validate_region("us-moon-1", "http://127.0.0.1:1", ["eu-west-1"])  # a private endpoint: not checked
    with pytest.raises(InvalidInput, match="no AWS region"):
        validate_region(None)
    with pytest.raises(InvalidInput, match="not an AWS region name"):
        validate_region("EU_WEST")
    with pytest.raises(InvalidInput, match="ECR has no region 'us-moon-1'.*endpoint_url"):
        validate_region("us-moon-1", None, ["eu-west-1", "us-east-1"])


def test_ecr_target_from_host_and_options():
    assert ecr_target(None, "localhost:5000") is None
    assert ecr_target({}, "123456789012.dkr.ecr.eu-west-1.amazonaws.com") == {
        "registry_id": "123456789012", "region": "eu-west-1"}
    # explicit options win over the host name; empty ones are dropped
    assert ecr_target({"region": "us-east-1", "profile": None, "endpoint_url": "http://x"},
                      "123456789012.dkr.ecr.eu-west-1.amazonaws.com") == {
        "registry_id": "123456789012", "region": "us-east-1", "endpoint_url": "http://x"}
    with pytest.raises(InvalidInput, match="12-digit"):
        ecr_target({"registry_id": "12"}, "localhost:5000")


def test_create_repositories_needs_an_ecr_destination():
    params = {"create_repositories": True, "ecr": None, "repository_settings": None}
    with pytest.raises(InvalidInput, match="not an ECR registry host"):
        repositories_from_params(params, parse_registry("localhost:5000"))
    assert repositories_from_params(dict(params, create_repositories=False), parse_registry("localhost:5000")) is None


# --- lifecycle policies ---------------------------------------------------------------------------

def test_generated_policy():
    policy = lifecycle_policy(keep_last=10, expire_untagged_days=7)
    assert policy == {"rules": [
        {"rulePriority": 1, "description": "Expire untagged images 7 day(s) after their push",
         "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days",
                       "countNumber": 7},
         "action": {"type": "expire"}},
        {"rulePriority": 2, "description": "Keep the last 10 image(s)",
         "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 10},
         "action": {"type": "expire"}},
    ]}
    assert validate_lifecycle_policy(policy) is policy  # what we generate passes our own check
    assert lifecycle_policy() is None
    assert lifecycle_policy(keep_last=3)["rules"][0]["rulePriority"] == 1


def test_raw_policy_as_text_or_dict():
    selection = {"tagStatus": "tagged", "tagPrefixList": ["v"], "countType": "imageCountMoreThan", "countNumber": 5}
    raw = {"rules": [{"rulePriority": 1, "selection": selection, "action": {"type": "expire"}}]}
    assert lifecycle_policy(raw=raw) == raw
    assert lifecycle_policy(raw=json.dumps(raw)) == raw
    with pytest.raises(InvalidInput, match="not both"):
        lifecycle_policy(keep_last=1, raw=raw)
    with pytest.raises(InvalidInput, match="not valid JSON"):
        lifecycle_policy(raw="{rules")


def _rule(priority=1, **selection):
    base = {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1}
    base.update(selection)
    return {"rulePriority": priority, "selection": base, "action": {"type": "expire"}}


@pytest.mark.parametrize("document, message", [
    ({}, "non-empty list \"rules\""),
    ({"rules": [], "x": 1}, "non-empty list"),
    ({"rules": [_rule()], "x": 1}, "unknown keys x"),
    ({"rules": [_rule(0)]}, "rule 1: rulePriority must be an integer of at least 1"),
    ({"rules": [_rule(1), _rule(1)]}, "rule 2: rulePriority 1 is also the priority of rule 1"),
    ({"rules": [_rule(tagStatus="old")]}, "tagStatus must be tagged, untagged or any"),
    ({"rules": [_rule(tagStatus="tagged")]}, "tagStatus tagged needs tagPrefixList or tagPatternList"),
    ({"rules": [_rule(tagPrefixList=["v"])]}, "only go with tagStatus tagged"),
    ({"rules": [_rule(countType="sinceImagePushed")]}, "needs countUnit \"days\""),
    ({"rules": [_rule(countUnit="days")]}, "imageCountMoreThan takes no countUnit"),
    ({"rules": [_rule(countType="daily")]}, "countType must be imageCountMoreThan or sinceImagePushed"),
    ({"rules": [_rule(countNumber=0)]}, "countNumber must be an integer of at least 1"),
    ({"rules": [dict(_rule(), action={"type": "delete"})]}, "action must be"),
    ({"rules": [_rule(1, tagStatus="any"), _rule(2)]}, "tagStatus any must have the highest rulePriority"),
])
def test_invalid_policies_name_the_rule(document, message):
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(")):
        validate_lifecycle_policy(document)


def test_settings():
    settings = normalise_settings({"image_tag_mutability": "immutable", "scan_on_push": True, "keep_last": 2,
                                   "expire_untagged_days": None, "lifecycle_policy": None, "policy": "{}"})
    assert settings["image_tag_mutability"] == "IMMUTABLE"
    assert settings["lifecycle_policy"]["rules"][0]["selection"]["countNumber"] == 2
    assert settings["policy"] is None
    assert normalise_settings(None)["image_tag_mutability"] == "MUTABLE"
    with pytest.raises(InvalidInput, match="unknown keys colour"):
        normalise_settings({"colour": "blue"})
    with pytest.raises(InvalidInput, match="keep_last must be an integer"):
        normalise_settings({"keep_last": -1})


# --- against moto ---------------------------------------------------------------------------------

ACCOUNT = "123456789012"


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    return tmp_path


def _options(moto_endpoint, region):
    return {"region": region, "registry_id": ACCOUNT, "endpoint_url": moto_endpoint,
            "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def test_creates_missing_repositories_with_settings(moto_endpoint, aws_env):
    boto3 = pytest.importorskip("boto3")
    options = _options(moto_endpoint, "eu-north-1")
    client = boto3.client("ecr", region_name="eu-north-1", endpoint_url=moto_endpoint,
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_repository(repositoryName="u1/there")
    statement = {"Sid": "pull", "Effect": "Allow", "Principal": "*", "Action": ["ecr:BatchGetImage"]}
    policy = {"Version": "2012-10-17", "Statement": [statement]}
    settings = {"image_tag_mutability": "immutable", "scan_on_push": True, "keep_last": 5,
                "expire_untagged_days": 3, "policy": policy}

    checking = EcrRepositories(options, settings, check_mode=True)
    checking.check_access()
    for name in ("u1/there", "u1/new", "u1/new"):
        checking.prepare(None, name)
    assert (checking.created, checking.existing) == (["u1/new"], ["u1/there"])
    names = [r["repositoryName"] for r in client.describe_repositories()["repositories"]]
    assert "u1/new" not in names  # check mode created nothing

    repos = EcrRepositories(options, settings)
    repos.prepare(None, "u1/there")
    repos.prepare(None, "u1/new")
    assert repos.created == ["u1/new"]
    found = client.describe_repositories(repositoryNames=["u1/new"])["repositories"][0]
    assert found["imageTagMutability"] == "IMMUTABLE"
    assert found["imageScanningConfiguration"] == {"scanOnPush": True}
    stored = json.loads(client.get_lifecycle_policy(repositoryName="u1/new")["lifecyclePolicyText"])
    assert stored == lifecycle_policy(keep_last=5, expire_untagged_days=3)
    assert json.loads(client.get_repository_policy(repositoryName="u1/new")["policyText"]) == policy

    again = EcrRepositories(options, settings)
    again.prepare(None, "u1/new")
    assert again.created == [] and again.existing == ["u1/new"]


def test_bad_names_fail_together_before_anything(moto_endpoint, aws_env):
    pytest.importorskip("boto3")
    repos = EcrRepositories(_options(moto_endpoint, "eu-north-1"), None)
    with pytest.raises(InvalidInput) as caught:
        repos.check_names(["ok/one", "Bad/One", "x"])
    assert "'Bad/One'" in str(caught.value) and "'x'" in str(caught.value)
    assert "Nothing was created" in str(caught.value)


def test_missing_credentials_and_unknown_region(moto_endpoint, aws_env):
    pytest.importorskip("boto3")
    with pytest.raises(Unauthorized, match="no AWS credentials") as caught:
        EcrRepositories({"region": "eu-west-1", "endpoint_url": moto_endpoint}, None).check_access()
    assert "testing" not in str(caught.value)
    with pytest.raises(InvalidInput, match="ECR has no region 'us-moon-1'"):
        EcrRepositories({"region": "us-moon-1", "aws_access_key_id": "a", "aws_secret_access_key": "s3cr3t"},
                        None).check_access()


def test_refused_policy_deletes_the_new_repository(moto_endpoint, aws_env):
    boto3 = pytest.importorskip("boto3")
    options = _options(moto_endpoint, "eu-north-1")
    client = boto3.client("ecr", region_name="eu-north-1", endpoint_url=moto_endpoint,
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    # moto refuses a repository policy that is not a policy document: the new repository goes again
    repos = EcrRepositories(options, {"policy": {"not": "a policy"}})
    with pytest.raises(InvalidInput, match="set_repository_policy for u2/half.*was deleted again"):
        repos.prepare(None, "u2/half")
    names = [r["repositoryName"] for r in client.describe_repositories()["repositories"]]
    assert "u2/half" not in names
