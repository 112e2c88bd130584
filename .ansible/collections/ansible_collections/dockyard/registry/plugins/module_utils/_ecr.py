# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""Amazon ECR: AWS sessions, repository names and settings, lifecycle policies, and creating
the destination repositories of a copy (ECR answers ``name unknown`` to a push into a
repository that does not exist).

- :func:`aws_session` / :func:`boto_error`: one boto3 session from the usual options and one
  mapping of botocore's exceptions to ``RegistryError`` (used by ``_providers.ecr_login`` too).
- :func:`lifecycle_policy`: the policy document generated from ``keep_last`` and
  ``expire_untagged_days``, or a raw one, validated rule by rule against ECR's documented
  rules *before* anything is created (moto stores any policy; ECR refuses a bad one only after
  the repository exists).
- :class:`EcrRepositories`: ``prepare(registry, repository)`` is ``_plan.plan_copies``'s
  ``prepare_destination`` hook: it creates a missing repository with the given settings (or,
  in check mode, only records that it would), and is a no-op for one that exists. A repository
  whose settings cannot be applied after it was created is deleted again, so nothing is left
  half-made.

The role (``registry_type: ecr``) manages repositories through ``community.aws.ecs_ecr``; it
uses :func:`lifecycle_policy` through the ``dockyard.registry.ecr_lifecycle_policy`` filter, so
the generated document is the same in both places.
"""

from __future__ import annotations

import difflib
import json
import re
import threading
import traceback

from ansible_collections.dockyard.registry.plugins.module_utils._errors import (
    Denied,
    InvalidInput,
    MissingLibrary,
    RegistryError,
    TLSError,
    Unauthorized,
    Unreachable,
)
from ansible_collections.dockyard.registry.plugins.module_utils._reference import host_without_port

try:
    import boto3
    import botocore.exceptions
    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
    BOTO_ERRORS: tuple = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)
except ImportError:
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = traceback.format_exc()
    BOTO_ERRORS = ()

__all__ = [
    "AWS_OPTIONS",
    "BOTO3_IMPORT_ERROR",
    "BOTO_ERRORS",
    "ECR_HOST",
    "EcrRepositories",
    "HAS_BOTO3",
    "SETTINGS_KEYS",
    "aws_session",
    "boto_error",
    "ecr_host_parts",
    "ecr_target",
    "lifecycle_policy",
    "normalise_settings",
    "repositories_from_params",
    "require_boto3",
    "validate_lifecycle_policy",
    "validate_region",
    "validate_repository_name",
]

ECR_HOST = re.compile(
    r"^(?P<account>[0-9]{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")
# https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_CreateRepository.html
_NAME = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-[0-9]+$")
_ACCOUNT = re.compile(r"^[0-9]{12}$")

AWS_OPTIONS = ("region", "profile", "registry_id", "endpoint_url", "aws_access_key_id",
               "aws_secret_access_key", "aws_session_token")
SETTINGS_KEYS = ("image_tag_mutability", "scan_on_push", "keep_last", "expire_untagged_days",
                 "lifecycle_policy", "policy")

_AUTH_CODES = ("UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException",
               "InvalidClientTokenId", "AuthFailure", "SignatureDoesNotMatch")
_DENIED_CODES = ("AccessDeniedException", "AccessDenied")


def require_boto3(what: str) -> None:
    if not HAS_BOTO3:
        raise MissingLibrary("%s needs the boto3 Python library on the managed node" % what,
                             hint="Install boto3 (pip install boto3).", library="boto3",
                             import_error=BOTO3_IMPORT_ERROR)


def ecr_host_parts(host: str) -> tuple | None:
    """``(account_id, region)`` for an ECR registry host, else None."""
    match = ECR_HOST.match(host_without_port(host))
    if not match:
        return None
    return match.group("account"), match.group("region")


# --------------------------------------------------------------------------------------------
# Input: names, regions, settings, lifecycle policies
# --------------------------------------------------------------------------------------------

def validate_repository_name(name: str) -> str:
    """ECR's rule for repository names (stricter than the distribution's)."""
    if not 2 <= len(name) <= 256 or not _NAME.match(name):
        raise InvalidInput(
            "ECR does not accept the repository name %r: 2 to 256 characters, lower-case letters and digits "
            "in components separated by \"/\", with single \".\", \"_\" or \"-\" between them "
            "(for example team/app-api)" % name)
    return name


def validate_region(region: str | None, endpoint_url: str | None = None, known: list | None = None) -> None:
    """A region name ECR could have. Without ``endpoint_url`` it must be one botocore knows
    (``known``, from the session), because the API host is derived from it."""
    if not region:
        raise InvalidInput("no AWS region for ECR: give region (or AWS_REGION / AWS_DEFAULT_REGION, or a "
                           "registry host <account>.dkr.ecr.<region>.amazonaws.com)")
    if not _REGION.match(region):
        raise InvalidInput("%r is not an AWS region name (like eu-west-1): check the region" % region)
    if not endpoint_url and known and region not in known:
        close = difflib.get_close_matches(region, sorted(set(known)), n=3)
        raise InvalidInput("ECR has no region %r%s: check the region, or give endpoint_url for a region newer than "
                           "this botocore or a private endpoint"
                           % (region, " (did you mean %s?)" % " or ".join(close) if close else ""))


def _as_int(value, what: str, lowest: int = 1) -> int:
    if isinstance(value, bool):
        raise InvalidInput("%s must be an integer of at least %d (got %r)" % (what, lowest, value))
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidInput("%s must be an integer of at least %d (got %r)" % (what, lowest, value)) from None
    if number < lowest or str(number) != str(value).strip():
        raise InvalidInput("%s must be an integer of at least %d (got %r)" % (what, lowest, value))
    return number


def _json_document(value, what: str) -> dict | None:
    if value is None or value == "" or value == {}:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise InvalidInput("%s is not valid JSON (%s)" % (what, exc)) from None
    if not isinstance(value, dict):
        raise InvalidInput("%s must be a JSON object (a dictionary)" % what)
    return value or None


def validate_lifecycle_policy(document: dict, what: str = "lifecycle_policy") -> dict:
    """Check a lifecycle policy against ECR's rules; InvalidInput naming the rule and the fix.

    https://docs.aws.amazon.com/AmazonECR/latest/userguide/LifecyclePolicies.html
    """
    rules = document.get("rules")
    if not isinstance(rules, list) or not rules:
        raise InvalidInput("%s needs a non-empty list \"rules\"" % what)
    unknown = sorted(set(document) - {"rules"})
    if unknown:
        raise InvalidInput("%s has unknown keys %s; only \"rules\" is allowed" % (what, ", ".join(unknown)))
    priorities = {}
    any_priority = None
    for index, rule in enumerate(rules):
        where = "%s rule %d" % (what, index + 1)
        if not isinstance(rule, dict):
            raise InvalidInput("%s must be a dictionary" % where)
        priority = _as_int(rule.get("rulePriority"), "%s: rulePriority" % where)
        if priority in priorities:
            raise InvalidInput("%s: rulePriority %d is also the priority of rule %d; every rule needs its own"
                               % (where, priority, priorities[priority] + 1))
        priorities[priority] = index
        selection = rule.get("selection")
        if not isinstance(selection, dict):
            raise InvalidInput("%s needs a \"selection\" dictionary" % where)
        status = selection.get("tagStatus")
        if status not in ("tagged", "untagged", "any"):
            raise InvalidInput("%s: selection.tagStatus must be tagged, untagged or any (got %r)" % (where, status))
        prefixes = selection.get("tagPrefixList")
        patterns = selection.get("tagPatternList")
        if status == "tagged":
            if not prefixes and not patterns:
                raise InvalidInput("%s: tagStatus tagged needs tagPrefixList or tagPatternList" % where)
            if prefixes and patterns:
                raise InvalidInput("%s: give tagPrefixList or tagPatternList, not both" % where)
            for key, items in (("tagPrefixList", prefixes), ("tagPatternList", patterns)):
                if items is not None and (not isinstance(items, list) or not all(isinstance(i, str) and i
                                                                                 for i in items)):
                    raise InvalidInput("%s: %s must be a list of non-empty strings" % (where, key))
        elif prefixes or patterns:
            raise InvalidInput("%s: tagPrefixList and tagPatternList only go with tagStatus tagged" % where)
        count_type = selection.get("countType")
        if count_type == "sinceImagePushed":
            if selection.get("countUnit") != "days":
                raise InvalidInput("%s: countType sinceImagePushed needs countUnit \"days\"" % where)
        elif count_type == "imageCountMoreThan":
            if "countUnit" in selection:
                raise InvalidInput("%s: countType imageCountMoreThan takes no countUnit" % where)
        else:
            raise InvalidInput("%s: selection.countType must be imageCountMoreThan or sinceImagePushed (got %r)"
                               % (where, count_type))
        _as_int(selection.get("countNumber"), "%s: selection.countNumber" % where)
        action = rule.get("action")
        if not isinstance(action, dict) or action.get("type") != "expire":
            raise InvalidInput("%s: action must be {\"type\": \"expire\"}" % where)
        if status == "any":
            any_priority = priority
    if any_priority is not None and any_priority != max(priorities):
        raise InvalidInput("%s: the rule with tagStatus any must have the highest rulePriority (it has %d, another "
                           "rule has %d)" % (what, any_priority, max(priorities)))
    return document


def lifecycle_policy(keep_last=None, expire_untagged_days=None, raw=None, what: str = "repository settings") -> dict | None:
    """The lifecycle policy document: ``raw`` (JSON text or a dict) validated, or one generated from
    ``expire_untagged_days`` (rule 1) and ``keep_last`` (rule 2, every image); None for neither."""
    document = _json_document(raw, "%s: lifecycle_policy" % what)
    if document is not None:
        if keep_last is not None or expire_untagged_days is not None:
            raise InvalidInput("%s: give lifecycle_policy or keep_last/expire_untagged_days, not both" % what)
        return validate_lifecycle_policy(document, "%s: lifecycle_policy" % what)
    rules = []
    if expire_untagged_days is not None:
        days = _as_int(expire_untagged_days, "%s: expire_untagged_days" % what)
        rules.append({
            "rulePriority": len(rules) + 1,
            "description": "Expire untagged images %d day(s) after their push" % days,
            "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days",
                          "countNumber": days},
            "action": {"type": "expire"},
        })
    if keep_last is not None:
        count = _as_int(keep_last, "%s: keep_last" % what)
        rules.append({
            "rulePriority": len(rules) + 1,
            "description": "Keep the last %d image(s)" % count,
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": count},
            "action": {"type": "expire"},
        })
    return {"rules": rules} if rules else None


def normalise_settings(settings: dict | None, what: str = "repository_settings") -> dict:
    """``{image_tag_mutability, scan_on_push, lifecycle_policy (document | None), policy (document | None)}``."""
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(SETTINGS_KEYS))
    if unknown:
        raise InvalidInput("%s has unknown keys %s; allowed: %s" % (what, ", ".join(unknown), ", ".join(SETTINGS_KEYS)))
    mutability = (settings.get("image_tag_mutability") or "MUTABLE").upper()
    if mutability not in ("MUTABLE", "IMMUTABLE"):
        raise InvalidInput("%s: image_tag_mutability must be mutable or immutable (got %r)"
                           % (what, settings.get("image_tag_mutability")))
    scan = settings.get("scan_on_push", False)
    if not isinstance(scan, bool):
        raise InvalidInput("%s: scan_on_push must be true or false (got %r)" % (what, scan))
    return {
        "image_tag_mutability": mutability,
        "scan_on_push": scan,
        "lifecycle_policy": lifecycle_policy(settings.get("keep_last"), settings.get("expire_untagged_days"),
                                             settings.get("lifecycle_policy"), what),
        "policy": _json_document(settings.get("policy"), "%s: policy" % what),
    }


# --------------------------------------------------------------------------------------------
# AWS sessions and errors
# --------------------------------------------------------------------------------------------

def aws_session(region: str | None = None, profile: str | None = None, aws_access_key_id: str | None = None,
                aws_secret_access_key: str | None = None, aws_session_token: str | None = None, **_ignored):
    """A boto3 session from the options, falling back to the AWS environment (variables, profile, role)."""
    require_boto3("Amazon ECR")
    try:
        return boto3.session.Session(profile_name=profile or None, region_name=region or None,
                                     aws_access_key_id=aws_access_key_id or None,
                                     aws_secret_access_key=aws_secret_access_key or None,
                                     aws_session_token=aws_session_token or None)
    except botocore.exceptions.BotoCoreError as exc:
        raise boto_error(exc, "the AWS API", "setting up the AWS session")


def boto_error(exc: Exception, endpoint: str, operation: str) -> RegistryError:
    """One RegistryError for what botocore raised; the message says what to fix, never a secret."""
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return Unauthorized("no AWS credentials found for %s: give profile or aws_access_key_id/"
                            "aws_secret_access_key, or configure the AWS environment (AWS_PROFILE, "
                            "AWS_ACCESS_KEY_ID, an instance role)" % operation, registry=endpoint)
    if isinstance(exc, botocore.exceptions.PartialCredentialsError):
        return InvalidInput("incomplete AWS credentials for %s: %s (give aws_access_key_id together with "
                            "aws_secret_access_key)" % (operation, exc))
    if isinstance(exc, botocore.exceptions.NoRegionError):
        return InvalidInput("no AWS region for %s: give region (or AWS_REGION / AWS_DEFAULT_REGION, or a "
                            "registry host <account>.dkr.ecr.<region>.amazonaws.com)" % operation)
    if isinstance(exc, botocore.exceptions.ProfileNotFound):
        return InvalidInput("AWS profile not found: %s; check profile or AWS_PROFILE" % exc)
    if isinstance(exc, botocore.exceptions.SSLError):
        return TLSError("TLS verification failed talking to the ECR API at %s during %s: %s"
                        % (endpoint, operation, exc), registry=endpoint)
    if isinstance(exc, botocore.exceptions.EndpointConnectionError):
        return Unreachable("the ECR API is unreachable at %s during %s: %s; check the region and endpoint_url"
                           % (endpoint, operation, exc), registry=endpoint)
    if isinstance(exc, botocore.exceptions.ParamValidationError):
        return InvalidInput("ECR %s: %s" % (operation, exc))
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        message = "ECR %s failed: %s: %s" % (operation, code, error.get("Message", ""))
        if code in _AUTH_CODES:
            return Unauthorized(message + " (AWS did not accept the credentials: check aws_access_key_id, "
                                "aws_secret_access_key, aws_session_token or the profile)", registry=endpoint)
        if code in _DENIED_CODES:
            return Denied(message + " (the AWS identity lacks this ECR permission)", registry=endpoint)
        if code in ("InvalidParameterException", "ValidationException", "LifecyclePolicyNotFoundException",
                    "InvalidTagParameterException", "RepositoryPolicyNotFoundException"):
            return InvalidInput(message, registry=endpoint)
        return RegistryError(message, registry=endpoint)
    return RegistryError("ECR %s failed: %s" % (operation, exc), registry=endpoint)


def ecr_target(options: dict | None, host: str | None = None) -> dict | None:
    """The AWS options for the ECR registry at ``host``: ``options`` (the modules' ``ecr``) with the
    account and region of an ECR host name as defaults; None when neither says this is ECR."""
    options = dict((k, v) for k, v in (options or {}).items() if v not in (None, ""))
    parts = ecr_host_parts(host) if host else None
    if not options and parts is None:
        return None
    if parts is not None:
        options.setdefault("registry_id", parts[0])
        options.setdefault("region", parts[1])
    registry_id = options.get("registry_id")
    if registry_id is not None and not _ACCOUNT.match(str(registry_id)):
        raise InvalidInput("ecr.registry_id must be a 12-digit AWS account id (got %r)" % (registry_id,))
    return options


# --------------------------------------------------------------------------------------------
# Repositories
# --------------------------------------------------------------------------------------------

class EcrRepositories:
    """Create missing ECR repositories before a copy (``_plan.plan_copies``'s ``prepare_destination``).

    ``created`` lists the repositories created (or, in check mode, that would be); ``existing``
    the ones that were there. Thread-safe: the planner may call from several threads.
    """

    def __init__(self, options: dict, settings: dict | None = None, check_mode: bool = False,
                 client=None) -> None:
        self.options = dict(options)
        self.settings = normalise_settings(settings)
        self.check_mode = check_mode
        self.endpoint = self.options.get("endpoint_url") or "the AWS ECR API"
        self.registry_id = self.options.get("registry_id")
        self.created: list[str] = []
        self.existing: list[str] = []
        self._known: dict[str, bool] = {}
        self._lock = threading.Lock()
        self._client = client

    @property
    def client(self):
        if self._client is None:
            session = aws_session(**self.options)
            region = self.options.get("region") or session.region_name
            validate_region(region, self.options.get("endpoint_url"),
                            session.get_available_regions("ecr") + session.get_available_regions("ecr", "aws-cn")
                            + session.get_available_regions("ecr", "aws-us-gov"))
            try:
                self._client = session.client("ecr", region_name=region,
                                              endpoint_url=self.options.get("endpoint_url") or None)
            except (botocore.exceptions.BotoCoreError, ValueError) as exc:
                raise InvalidInput("cannot make an ECR client: %s" % exc) from None
        return self._client

    def _ids(self) -> dict:
        return {"registryId": str(self.registry_id)} if self.registry_id else {}

    def check_access(self) -> None:
        """One cheap read, so that bad credentials or a bad region fail before anything is planned."""
        try:
            self.client.describe_repositories(maxResults=1, **self._ids())
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise boto_error(exc, self.endpoint, "describe_repositories") from None

    def check_names(self, names) -> None:
        """Every repository name ECR would refuse, in one error, before anything is created."""
        problems = []
        for name in sorted(set(names)):
            try:
                validate_repository_name(name)
            except InvalidInput as exc:
                problems.append(str(exc))
        if problems:
            raise InvalidInput("%s. Nothing was created or copied." % "; ".join(problems))

    def exists(self, name: str) -> bool:
        try:
            self.client.describe_repositories(repositoryNames=[name], **self._ids())
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "RepositoryNotFoundException":
                return False
            raise boto_error(exc, self.endpoint, "describe_repositories for %s" % name) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise boto_error(exc, self.endpoint, "describe_repositories for %s" % name) from None
        return True

    def prepare(self, registry, repository: str) -> None:
        """Make sure ``repository`` exists (the ``prepare_destination`` hook; ``registry`` is unused:
        the AWS options say which ECR registry this is)."""
        with self._lock:
            if repository in self._known:
                return
            validate_repository_name(repository)
            if self.exists(repository):
                self._known[repository] = True
                self.existing.append(repository)
                return
            if not self.check_mode:
                self._create(repository)
            self._known[repository] = True
            self.created.append(repository)

    __call__ = prepare

    def _create(self, name: str) -> None:
        settings = self.settings
        operation = "create_repository for %s" % name
        try:
            self.client.create_repository(
                repositoryName=name, imageTagMutability=settings["image_tag_mutability"],
                imageScanningConfiguration={"scanOnPush": settings["scan_on_push"]}, **self._ids())
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "RepositoryAlreadyExistsException":
                return  # created meanwhile by someone else: what we wanted
            raise boto_error(exc, self.endpoint, operation) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise boto_error(exc, self.endpoint, operation) from None
        try:
            if settings["lifecycle_policy"] is not None:
                operation = "put_lifecycle_policy for %s" % name
                self.client.put_lifecycle_policy(repositoryName=name,
                                                 lifecyclePolicyText=json.dumps(settings["lifecycle_policy"]),
                                                 **self._ids())
            if settings["policy"] is not None:
                operation = "set_repository_policy for %s" % name
                self.client.set_repository_policy(repositoryName=name, policyText=json.dumps(settings["policy"]),
                                                  **self._ids())
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            error = boto_error(exc, self.endpoint, operation)
            # Nothing half-made: the repository is new and empty, so it goes again.
            try:
                self.client.delete_repository(repositoryName=name, **self._ids())
                error.message += "; the new repository %s was deleted again" % name
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
                error.message += "; the new repository %s could not be deleted again, remove it by hand" % name
            raise error from None


def repositories_from_params(params: dict, registry, check_mode: bool = False) -> EcrRepositories | None:
    """The ``EcrRepositories`` for a module's ``create_repositories``, ``repository_settings`` and
    ``ecr`` options (None when repositories are not to be created); settings and options are
    checked here, before anything is contacted."""
    if not params.get("create_repositories"):
        return None
    target = ecr_target(params.get("ecr"), registry.host)
    if target is None:
        raise InvalidInput(
            "create_repositories creates Amazon ECR repositories, but %s is not an ECR registry host "
            "(<account>.dkr.ecr.<region>.amazonaws.com): use an ECR destination, or give the ecr option "
            "(region, registry_id, endpoint_url) for an ECR API in front of this address" % registry.display)
    return EcrRepositories(target, params.get("repository_settings"), check_mode=check_mode)
