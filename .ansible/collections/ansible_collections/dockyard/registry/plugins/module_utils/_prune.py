# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""registry_prune's work: retention rules -> a plan per repository -> deletions by digest.

Three steps, in this order, so that nothing is deleted from a partial or wrong view:

1. Rules are checked (:class:`Rules`): regexes, counts, durations, orderings, digests, the cap.
   Bad input fails here, before any request.
2. Every repository is planned (:func:`plan_repository`): its tags listed, every tag's manifest
   read (and, where a rule needs it, the image configuration's ``created``), then
   :func:`decide` - a pure function - says which tags go and why the others stay. A listing or
   reading error makes that repository ``failed``: nothing of it is deleted. A repository named
   explicitly that does not exist, and a repository above its ``max_delete`` cap (unless
   ``force``), fail the whole task before anything anywhere is deleted.
3. Unless in check mode, each planned repository's tag list is read once more (a tag pushed
   meanwhile aborts that repository) and its manifests are deleted by digest: indexes, then
   their platform manifests that nothing kept uses, then single images.

Deleting a manifest removes every tag on it, so a digest is deleted only when every tag on it
is to be deleted (the others are kept "by sharing"), and never when a kept index lists it.
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable, Mapping, Sequence

from ansible_collections.dockyard.registry.plugins.module_utils._argspec import client_from_params
from ansible_collections.dockyard.registry.plugins.module_utils._client import RetryStats
from ansible_collections.dockyard.registry.plugins.module_utils._errors import (
    ConcurrentChange,
    InvalidInput,
    NotFound,
    RegistryError,
)
from ansible_collections.dockyard.registry.plugins.module_utils._manifest import inspect_image
from ansible_collections.dockyard.registry.plugins.module_utils._pool import parallel_map
from ansible_collections.dockyard.registry.plugins.module_utils._reference import (
    parse_registry,
    repository_items,
    validate_digest,
)
from ansible_collections.dockyard.registry.plugins.module_utils._tags import (
    ORDERS,
    compile_regex,
    order_newest_first,
    parse_created,
)

__all__ = [
    "DEFAULT_MAX_DELETE",
    "RULE_KEYS",
    "Decision",
    "ImageFacts",
    "RegistryPrune",
    "RepositoryPlan",
    "Rules",
    "decide",
    "format_duration",
    "parse_duration",
    "parse_max_delete",
    "plan_repository",
    "registry_prune",
]

# A wrong regex or an old repository nobody pushed to for a month must not empty it: by default a
# run may delete at most half of the tags of a repository; a first run on a backlog says so.
DEFAULT_MAX_DELETE = "50%"
RULE_KEYS = ("keep_latest", "order", "keep_regex", "delete_regex", "older_than", "keep_digests",
             "delete_undated", "max_delete")
REPOSITORY_KEYS = ("name",) + RULE_KEYS
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_RE = re.compile(r"^(?:\s*(\d+)\s*([smhdw]))+\s*$")
_DURATION_PART_RE = re.compile(r"(\d+)\s*([smhdw])")

# Why a tag stays (``kept[].rule``).
NOT_SELECTED = "not_selected"      # delete_regex does not match it
KEEP_REGEX = "keep_regex"
KEEP_DIGESTS = "keep_digests"
KEEP_LATEST = "keep_latest"        # among the keep_latest newest images
UNORDERED = "unordered"            # keep_latest cannot place it (not a version / no created date)
NEWER = "newer"                    # created within older_than
UNDATED = "undated"                # older_than, but the image has no created date
SHARED = "shared"                  # its manifest carries a kept tag
INDEX_CHILD = "index_child"        # its manifest is a platform of a kept index


def parse_duration(value: Any, option: str = "older_than") -> float:
    """``30d``, ``12h``, ``2w``, ``1d12h``, ``90m``, ``3600s`` -> seconds (> 0); InvalidInput otherwise."""
    text = str(value).strip().lower() if value is not None else ""
    if not _DURATION_RE.match(text):
        raise InvalidInput("%s must be a duration such as 30d, 12h, 2w or 1d12h (units s, m, h, d, w); got %r"
                           % (option, value))
    seconds = sum(int(n) * _UNITS[u] for n, u in _DURATION_PART_RE.findall(text))
    if seconds <= 0:
        raise InvalidInput("%s must be longer than 0 (got %r)" % (option, value))
    return float(seconds)


def format_duration(seconds: float) -> str:
    for unit, size in (("w", _UNITS["w"]), ("d", _UNITS["d"]), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return "%d%s" % (seconds // size, unit)
    return "%ds" % seconds


def parse_max_delete(value: Any, option: str = "max_delete") -> tuple:
    """``10`` -> (10, None); ``"50%"`` -> (None, 50.0). Counts from 1, percentages in (0, 100]."""
    text = str(value).strip() if value is not None else ""
    match = re.match(r"^(\d+(?:\.\d+)?)\s*%$", text)
    if match:
        percent = float(match.group(1))
        if not 0 < percent <= 100:
            raise InvalidInput("%s as a percentage must be above 0%% and at most 100%% (got %r)" % (option, value))
        return None, percent
    if re.match(r"^\d+$", text) and not isinstance(value, bool):
        count = int(text)
        if count < 1:
            raise InvalidInput("%s must be 1 or more tags, or a percentage such as 50%% (got %r); to delete "
                               "nothing, run in check mode" % (option, value))
        return count, None
    raise InvalidInput("%s must be a number of tags (10) or a percentage of a repository's tags (50%%); got %r"
                       % (option, value))


class Rules:
    """One repository's rules, validated (every error names the option, with ``where``)."""

    def __init__(self, values: Mapping[str, Any], where: str = "", complete: bool = True) -> None:
        prefix = where + "." if where else ""
        self.where = where
        latest = values.get("keep_latest")
        if latest is not None:
            if isinstance(latest, bool) or not re.match(r"^-?\d+$", str(latest).strip()):
                raise InvalidInput("%skeep_latest must be a whole number of 1 or more (got %r)" % (prefix, latest))
            latest = int(str(latest).strip())
            if latest < 1:
                raise InvalidInput("%skeep_latest must be 1 or more (got %d); to keep nothing, leave keep_latest out"
                                   % (prefix, latest))
        self.keep_latest: int | None = latest
        self.order = values.get("order") or "semver"
        if self.order not in ORDERS:
            raise InvalidInput("%sorder must be one of %s (got %r)" % (prefix, ", ".join(ORDERS), self.order))
        self.keep_regex = compile_regex(values.get("keep_regex"), prefix + "keep_regex")
        self.delete_regex = compile_regex(values.get("delete_regex"), prefix + "delete_regex")
        older = values.get("older_than")
        self.older_than: float | None = parse_duration(older, prefix + "older_than") if older not in (None, "") else None
        digests = values.get("keep_digests") or []
        if not isinstance(digests, (list, tuple)):
            raise InvalidInput("%skeep_digests must be a list of digests" % prefix)
        try:
            self.keep_digests = set(validate_digest(str(d).strip()) for d in digests)
        except InvalidInput as exc:
            raise InvalidInput("%skeep_digests: %s" % (prefix, exc)) from None
        self.delete_undated = bool(values.get("delete_undated"))
        max_delete = values.get("max_delete")
        self.max_delete_text = str(max_delete if max_delete not in (None, "") else DEFAULT_MAX_DELETE).strip()
        self.max_count, self.max_percent = parse_max_delete(self.max_delete_text, prefix + "max_delete")
        if complete and self.keep_latest is None and self.older_than is None and self.delete_regex is None:
            raise InvalidInput("%sno rule selects anything to delete: give keep_latest, older_than or delete_regex "
                               "(keep_regex and keep_digests only protect tags)" % (where + ": " if where else ""))

    @property
    def needs_created(self) -> bool:
        return self.older_than is not None or (self.keep_latest is not None and self.order == "created")

    def limit(self, total: int) -> int:
        """How many of ``total`` tags may be deleted."""
        if self.max_count is not None:
            return self.max_count
        return int(total * self.max_percent / 100.0 + 1e-9)

    def describe(self) -> dict:
        return {"keep_latest": self.keep_latest, "order": self.order,
                "keep_regex": self.keep_regex.pattern if self.keep_regex else None,
                "delete_regex": self.delete_regex.pattern if self.delete_regex else None,
                "older_than": format_duration(self.older_than) if self.older_than else None,
                "keep_digests": sorted(self.keep_digests), "delete_undated": self.delete_undated,
                "max_delete": self.max_delete_text}


class ImageFacts:
    """What the decision needs of one manifest: its created time (a timestamp, the newest platform's
    for an index), the digests of an index's platform manifests, and the bytes it references."""

    def __init__(self, digest: str, created: float | None = None, children: Sequence[str] = (),
                 blobs: Mapping[str, int] | None = None, size: int = 0, created_text: str | None = None) -> None:
        self.digest = digest
        self.created = created
        self.created_text = created_text
        self.children = list(children)
        self.blobs = dict(blobs or {})   # every blob and manifest (children, itself) -> size
        self.size = size

    @property
    def is_index(self) -> bool:
        return bool(self.children)


class Decision:
    """The result of :func:`decide` for one repository."""

    def __init__(self) -> None:
        self.delete: dict[str, str] = {}          # tag -> digest
        self.kept: list[dict] = []                # {tag, digest, rule, reason}
        self.delete_digests: list[str] = []       # tagged manifests and orphaned platform manifests
        self.orphaned_children: list[str] = []    # platform manifests of deleted indexes, deleted too


def _kept(decision: Decision, tag: str, digest: str, rule: str, reason: str) -> None:
    decision.kept.append({"tag": tag, "digest": digest, "rule": rule, "reason": reason})


def decide(tags: Mapping[str, str], images: Mapping[str, ImageFacts], rules: Rules, now: float) -> Decision:
    """Which of ``tags`` (tag -> digest) to delete under ``rules`` at time ``now``; a pure function.

    In this order: ``delete_regex`` (only matching tags are candidates), ``keep_regex`` and
    ``keep_digests`` (never deleted), ``keep_latest`` (the N newest images among the remaining
    candidates - distinct digests, so a second tag on one image costs nothing; tags the order
    cannot place are kept), ``older_than`` (only older images go; undated ones stay unless
    ``delete_undated``). Then the manifest rules: a digest goes only when every tag on it goes,
    and never while a kept index lists it as a platform.
    """
    decision = Decision()
    reasons: dict[str, tuple] = {}
    names = sorted(tags)
    for tag in names:
        digest = tags[tag]
        if rules.delete_regex is not None and not rules.delete_regex.search(tag):
            reasons[tag] = (NOT_SELECTED, "does not match delete_regex %r" % rules.delete_regex.pattern)
        elif rules.keep_regex is not None and rules.keep_regex.search(tag):
            reasons[tag] = (KEEP_REGEX, "matches keep_regex %r" % rules.keep_regex.pattern)
        elif digest in rules.keep_digests:
            reasons[tag] = (KEEP_DIGESTS, "its digest is in keep_digests")
    remaining = [t for t in names if t not in reasons]

    if rules.keep_latest is not None:
        ordered = order_newest_first(remaining, rules.order, _as_created(images, tags, remaining),
                                     prereleases=True)
        newest_digests: list[str] = []
        for tag in ordered:
            if tags[tag] not in newest_digests:
                if len(newest_digests) == rules.keep_latest:
                    break
                newest_digests.append(tags[tag])
        placed = set(ordered)
        for tag in remaining:
            if tag not in placed:
                reasons[tag] = (UNORDERED, "keep_latest cannot place it: %s" % (
                    "not a version" if rules.order == "semver" else "the image has no created date"))
            elif tags[tag] in newest_digests:
                reasons[tag] = (KEEP_LATEST, "one of the %d newest images (order %s)" % (rules.keep_latest, rules.order))
        remaining = [t for t in remaining if t not in reasons]

    if rules.older_than is not None:
        cutoff = now - rules.older_than
        for tag in remaining:
            facts = images.get(tags[tag])
            stamp = facts.created if facts is not None else None
            if stamp is None:
                if not rules.delete_undated:
                    reasons[tag] = (UNDATED, "older_than %s, but the image has no created date (delete_undated is false)"
                                    % format_duration(rules.older_than))
            elif stamp > cutoff:
                reasons[tag] = (NEWER, "created %s, within older_than %s" % (
                    facts.created_text or stamp, format_duration(rules.older_than)))
        remaining = [t for t in remaining if t not in reasons]

    # Manifest rules, repeated until nothing changes (keeping one digest can keep an index's platform).
    going = set(remaining)
    while True:
        kept_digests = set(tags[t] for t in names if t not in going)
        protected_children: dict[str, str] = {}
        for tag in names:
            if tag in going:
                continue
            facts = images.get(tags[tag])
            for child in (facts.children if facts is not None else []):
                protected_children.setdefault(child, tag)
        moved = False
        for tag in sorted(going):
            digest = tags[tag]
            if digest in kept_digests:
                sharing = sorted(t for t in names if tags[t] == digest and t not in going)
                reasons[tag] = (SHARED, "its manifest %s also carries the kept tag(s) %s" % (digest, ", ".join(sharing)))
            elif digest in protected_children:
                reasons[tag] = (INDEX_CHILD, "its manifest is a platform of the kept index tag %s"
                                % protected_children[digest])
            else:
                continue
            going.discard(tag)
            moved = True
        if not moved:
            break

    for tag in names:
        if tag in going:
            decision.delete[tag] = tags[tag]
        else:
            rule, reason = reasons[tag]
            _kept(decision, tag, tags[tag], rule, reason)
    deleted = []
    for tag in names:
        if tag in going and tags[tag] not in deleted:
            deleted.append(tags[tag])
    kept_digests = set(tags[t] for t in names if t not in going)
    still_used = set(kept_digests)
    for digest in kept_digests:
        facts = images.get(digest)
        still_used.update(facts.children if facts is not None else [])
    orphans = []
    for digest in deleted:
        facts = images.get(digest)
        for child in (facts.children if facts is not None else []):
            if child not in still_used and child not in deleted and child not in orphans:
                orphans.append(child)
    # indexes first, then their platforms, then single images: never an index without its platforms
    indexes = [d for d in deleted if images.get(d) is not None and images[d].is_index]
    decision.delete_digests = indexes + orphans + [d for d in deleted if d not in indexes]
    decision.orphaned_children = orphans
    return decision


def _as_created(images: Mapping[str, ImageFacts], tags: Mapping[str, str], remaining: Sequence[str]) -> dict:
    """order_newest_first takes RFC 3339 texts; facts made from timestamps get one."""
    result = {}
    for tag in remaining:
        facts = images.get(tags[tag])
        if facts is None or facts.created is None:
            continue
        result[tag] = facts.created_text if facts.created_text and parse_created(facts.created_text) == facts.created \
            else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(facts.created))
    return result


def unreferenced_bytes(deleted: Sequence[str], kept: Sequence[str], images: Mapping[str, ImageFacts]) -> dict:
    """{digest: size} of blobs and manifests the deleted manifests reference and no kept one does."""
    still = set()
    for digest in kept:
        facts = images.get(digest)
        if facts is not None:
            still.update(facts.blobs)
    freed: dict[str, int] = {}
    for digest in deleted:
        facts = images.get(digest)
        if facts is None:
            continue
        for blob, size in facts.blobs.items():
            if blob not in still:
                freed[blob] = size
    return freed


def facts_from_info(info: Any, need_created: bool) -> ImageFacts:
    """ImageFacts from an ``_manifest.ImageInfo``."""
    blobs = dict(info.blobs)
    blobs[info.digest] = info.manifest.size
    for child in info.children:
        if child.digest not in info.missing_children:
            blobs[child.digest] = max(child.size, 0)
    created_text = info.created
    if info.children and need_created:
        stamps = [(parse_created(text), text) for text in info.child_created.values() if text]
        stamps = [s for s in stamps if s[0] is not None]
        created_text = max(stamps)[1] if stamps else None
    return ImageFacts(info.digest, parse_created(created_text) if created_text else None,
                      [c.digest for c in info.children], blobs, info.size, created_text)


class RepositoryPlan:
    """One repository: what it has, what goes, what stays and why, and what happened."""

    def __init__(self, name: str, rules: Rules) -> None:
        self.name = name
        self.rules = rules
        self.tags: dict[str, str] = {}
        self.images: dict[str, ImageFacts] = {}
        self.decision: Decision | None = None
        self.freed: dict[str, int] = {}
        self.status = "planned"
        self.error: RegistryError | None = None
        self.deleted_digests: list[str] = []

    @property
    def limit(self) -> int:
        return self.rules.limit(len(self.tags))

    @property
    def over_limit(self) -> bool:
        return self.decision is not None and len(self.decision.delete) > self.limit

    def as_dict(self) -> dict:
        decision = self.decision or Decision()
        result = {
            "name": self.name,
            "status": self.status,
            "tags_total": len(self.tags),
            "delete_tags": sorted(decision.delete),
            "delete_digests": list(decision.delete_digests),
            "deleted_digests": list(self.deleted_digests),
            "kept": decision.kept,
            "kept_by_sharing": sorted(k["tag"] for k in decision.kept if k["rule"] in (SHARED, INDEX_CHILD)),
            "bytes_unreferenced": sum(self.freed.values()),
            "max_delete": self.limit,
            "rules": self.rules.describe(),
        }
        if self.error is not None:
            result.update(error=str(self.error), error_kind=self.error.kind)
        return result


def plan_repository(client: Any, name: str, rules: Rules, now: float, concurrency: int = 4) -> RepositoryPlan:
    """List, read and decide one repository; raises RegistryError (NotFound for a missing repository)."""
    plan = RepositoryPlan(name, rules)
    tag_names = client.tags(name)
    manifests = parallel_map(lambda tag: client.manifest_get(name, tag), tag_names, concurrency)
    plan.tags = dict((tag, manifest.digest) for tag, manifest in zip(tag_names, manifests))
    first: dict[str, Any] = {}
    for manifest in manifests:
        first.setdefault(manifest.digest, manifest)
    need_created = rules.needs_created

    def inspect(manifest: Any) -> ImageFacts:
        info = inspect_image(client, name, manifest, child_configs=need_created)
        return facts_from_info(info, need_created)

    for facts in parallel_map(inspect, list(first.values()), concurrency):
        plan.images[facts.digest] = facts
    plan.decision = decide(plan.tags, plan.images, rules, now)
    kept = sorted(set(k["digest"] for k in plan.decision.kept))
    plan.freed = unreferenced_bytes(plan.decision.delete_digests, kept, plan.images)
    plan.status = "planned" if plan.decision.delete else "unchanged"
    return plan


def normalise_repositories(items: Sequence[Any] | None, defaults: Mapping[str, Any]) -> list[tuple]:
    """``[(name, Rules, explicit)]`` from the ``repositories`` option; errors name the item."""
    result = []
    seen = set()
    # the task's own rule options first, named as they are written (a repository may complete them)
    Rules(defaults, complete=not items)
    for index, item, name in repository_items(items, REPOSITORY_KEYS):
        where = "repositories[%d] (%s)" % (index, item["name"])
        if name in seen:
            raise InvalidInput("%s: the repository is listed twice" % where)
        seen.add(name)
        values = dict(defaults)
        values.update((k, v) for k, v in item.items() if k != "name" and v is not None)
        result.append((name, Rules(values, where), True))
    return result


def _regexes(patterns: Sequence[str] | None, option: str) -> list:
    return [compile_regex(p, "%s[%d]" % (option, i)) for i, p in enumerate(patterns or []) if p]


class RegistryPrune:
    def __init__(self, params: dict, check_mode: bool = False, diff: bool = False,
                 retry_stats: RetryStats | None = None, clock: Callable[[], float] = time.time) -> None:
        self.params = params
        self.check_mode = check_mode
        self.diff = diff
        self.retry_stats = retry_stats if retry_stats is not None else RetryStats()
        self.clock = clock

    def run(self) -> dict:
        started = time.monotonic()
        params = self.params
        concurrency = params.get("concurrency") or 4
        registry = parse_registry(params["registry"])
        defaults = dict((key, params.get(key)) for key in RULE_KEYS)
        # every rule is checked before the first request
        targets = normalise_repositories(params.get("repositories"), defaults)
        include = _regexes(params.get("include"), "include")
        exclude = _regexes(params.get("exclude"), "exclude")
        catalog_rules = Rules(defaults) if not params.get("repositories") else None
        now = self.clock()
        with client_from_params(params, registry, retry_stats=self.retry_stats) as client:
            if catalog_rules is not None:
                names = [n for n in client.catalog()
                         if (not include or any(r.search(n) for r in include))
                         and not any(r.search(n) for r in exclude)]
                targets = [(n, catalog_rules, False) for n in names]
            plans = self._plan(client, targets, now, concurrency)
            refusal = self._refusal(plans)
            result = self._result(registry, plans)
            if refusal:
                result.update(failed=True, error_kind="refused", msg=refusal)
                result["duration"] = round(time.monotonic() - started, 3)
                return result
            if not self.check_mode:
                for plan in plans:
                    if plan.status == "planned":
                        self._execute(client, plan, concurrency)
                result = self._result(registry, plans)
        result["duration"] = round(time.monotonic() - started, 3)
        failures = [p for p in plans if p.status == "failed"]
        if failures:
            first = failures[0]
            result.update(failed=True, error_kind=first.error.kind if first.error else "internal",
                          msg="%d repositor%s could not be pruned and nothing was deleted from %s; first: %s: %s"
                              % (len(failures), "y" if len(failures) == 1 else "ies",
                                 "it" if len(failures) == 1 else "them", first.name, first.error))
        return result

    def _plan(self, client: Any, targets: list, now: float, concurrency: int) -> list[RepositoryPlan]:
        plans = []
        missing = []
        for name, rules, explicit in targets:
            try:
                plans.append(plan_repository(client, name, rules, now, concurrency))
            except NotFound as exc:
                if explicit:
                    missing.append(name)
                    continue
                plan = RepositoryPlan(name, rules)   # deleted from the catalog meanwhile
                plan.status, plan.error = "failed", exc
                plans.append(plan)
            except RegistryError as exc:
                plan = RepositoryPlan(name, rules)
                plan.status, plan.error = "failed", exc
                plans.append(plan)
        if missing:
            one = len(missing) == 1
            raise NotFound("repositor%s %s do%s not exist in the registry; nothing was deleted. Check the names "
                           "(registry_info lists the catalog)"
                           % ("y" if one else "ies", ", ".join(missing), "es" if one else ""))
        return plans

    def _refusal(self, plans: list[RepositoryPlan]) -> str | None:
        if self.params.get("force"):
            return None
        over = [p for p in plans if p.over_limit]
        if not over:
            return None
        for plan in over:
            plan.status = "refused"
        parts = ["%s: %d of %d tags (%s), max_delete %s allows %d: %s" % (
            p.name, len(p.decision.delete), len(p.tags), "%d%%" % round(100.0 * len(p.decision.delete) / len(p.tags)),
            p.rules.max_delete_text, p.limit, ", ".join(sorted(p.decision.delete))) for p in over]
        return ("refusing to prune: the rules would delete more tags than max_delete allows in %d repositor%s - %s. "
                "Nothing was deleted. Check the rules (check mode shows the plan), raise max_delete, or set force=true"
                % (len(over), "y" if len(over) == 1 else "ies", "; ".join(parts)))

    def _execute(self, client: Any, plan: RepositoryPlan, concurrency: int) -> None:
        try:
            now_tags = client.tags(plan.name)
            if sorted(now_tags) != sorted(plan.tags):
                added = sorted(set(now_tags) - set(plan.tags))
                removed = sorted(set(plan.tags) - set(now_tags))
                raise ConcurrentChange("the tags of %s changed while it was planned (added: %s; removed: %s); nothing "
                                       "was deleted from it, run again"
                                       % (plan.name, ", ".join(added) or "none", ", ".join(removed) or "none"))
            for digest in plan.decision.delete_digests:
                try:
                    client.manifest_delete(plan.name, digest)
                except NotFound:
                    pass   # gone already (another run): the goal is reached
                plan.deleted_digests.append(digest)
            plan.status = "pruned"
        except RegistryError as exc:
            plan.status, plan.error = "failed", exc

    def _result(self, registry: Any, plans: list[RepositoryPlan]) -> dict:
        planned_changes = [p for p in plans if p.decision is not None and p.decision.delete and p.status != "failed"]
        if self.check_mode:
            changed = bool(planned_changes)
        else:
            changed = any(p.deleted_digests for p in plans)
        done = [p for p in plans if p.status in ("pruned", "planned")]
        freed: dict[str, int] = {}
        kept_blobs = set()
        for plan in plans:
            for digest in set(plan.tags.values()):
                if plan.decision is not None and digest not in plan.decision.delete_digests:
                    kept_blobs.update(plan.images[digest].blobs if digest in plan.images else {})
        for plan in done:
            freed.update((blob, size) for blob, size in plan.freed.items())
        result = {
            "changed": changed,
            "registry": registry.display,
            "repositories": [p.as_dict() for p in plans],
            "deleted_tags": ["%s:%s" % (p.name, t) for p in done for t in sorted(p.decision.delete)
                             if self.check_mode or p.status == "pruned"],
            "deleted_digests": ["%s@%s" % (p.name, d) for p in done for d in
                                (p.decision.delete_digests if self.check_mode else p.deleted_digests)],
            "kept_by_sharing": ["%s:%s" % (p.name, t) for p in plans if p.decision is not None
                                for t in p.as_dict()["kept_by_sharing"]],
            "bytes_unreferenced": sum(size for blob, size in freed.items() if blob not in kept_blobs),
            "failed_repositories": [{"name": p.name, "error": str(p.error), "error_kind": p.error.kind}
                                    for p in plans if p.status == "failed" and p.error is not None],
        }
        if self.diff:
            before, after = {}, {}
            for plan in plans:
                if plan.decision is None or not plan.decision.delete or plan.status == "failed":
                    continue
                before[plan.name] = sorted(plan.tags)
                after[plan.name] = sorted(t for t in plan.tags if t not in plan.decision.delete)
            result["diff"] = {"before": before, "after": after}
        return result


def registry_prune(params: dict, check_mode: bool = False, diff: bool = False,
                   retry_stats: RetryStats | None = None) -> dict:
    """The module's result for its parameters (what ``run_registry_module`` calls)."""
    return RegistryPrune(params, check_mode=check_mode, diff=diff, retry_stats=retry_stats).run()
