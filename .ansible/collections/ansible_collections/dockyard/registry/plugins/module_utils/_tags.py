# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""Tag selection, shared by registry_sync and the coming prune: versions and semver ranges,
regex filters, and "the newest N" by version, by creation time or by name.

A small semver parser (``v1.2.3``, ``1.2``, ``1``, pre-releases, build metadata), npm-style
ranges (``>=1.2 <2``, ``^1.4``, ``~2.1``, ``1.x``, ``<1 || >=3``), regexes with ``re.search``.
"""

from __future__ import annotations

import calendar
import functools
import re
from typing import Iterable, Mapping, Sequence

from ansible_collections.dockyard.registry.plugins.module_utils._errors import InvalidInput

__all__ = [
    "ORDERS",
    "TagFilter",
    "Version",
    "VersionRange",
    "compile_regex",
    "newest",
    "order_newest_first",
    "parse_created",
    "parse_range",
    "parse_version",
    "select_tags",
]

ORDERS = ("semver", "created", "name")

_VERSION_RE = re.compile(
    r"^[vV]?(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?(?:\.(0|[1-9]\d*))?"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?$")
_COMPARATOR_RE = re.compile(r"^(>=|<=|==|!=|>|<|=|\^|~)?\s*(.+)$")
_CREATED_RE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?(Z|z|[+-]\d\d:?\d\d)?$")


@functools.total_ordering
class Version:
    """A semantic version parsed from a tag; missing minor/patch count as 0."""

    __slots__ = ("major", "minor", "patch", "prerelease", "parts")

    def __init__(self, major: int, minor: int, patch: int, prerelease: tuple = (), parts: int = 3) -> None:
        self.major = major
        self.minor = minor
        self.patch = patch
        self.prerelease = prerelease
        self.parts = parts

    def _key(self) -> tuple:
        # a release sorts after its pre-releases; numeric identifiers before alphanumeric ones
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 1 if not self.prerelease else 0, pre)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._key() == other._key()

    def __lt__(self, other: Version) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        text = "%d.%d.%d" % (self.major, self.minor, self.patch)
        return text + ("-" + ".".join(self.prerelease) if self.prerelease else "")


def parse_version(tag: str) -> Version | None:
    """``Version`` for tags such as ``1``, ``1.2``, ``v1.2.3``, ``1.2.3-rc.1``; else None."""
    match = _VERSION_RE.match(tag or "")
    if not match:
        return None
    major, minor, patch, pre = match.groups()
    parts = 1 + (minor is not None) + (patch is not None)
    return Version(int(major), int(minor or 0), int(patch or 0),
                   tuple(pre.split(".")) if pre else (), parts)


class VersionRange:
    """``>=1.2 <2``: comparators separated by spaces must all hold; ``||`` separates
    alternatives. Partial versions follow npm: ``1.2`` alone means ``>=1.2.0 <1.3.0``,
    ``^1.2`` means ``>=1.2.0 <2.0.0``, ``~1.2`` means ``>=1.2.0 <1.3.0``.
    Pre-release tags (``1.3.0-rc1``) never match a range.
    """

    def __init__(self, text: str, alternatives: list[list[tuple[str, Version]]]) -> None:
        self.text = text
        self.alternatives = alternatives

    def matches(self, version: Version | None) -> bool:
        if version is None or version.prerelease:
            return False
        for comparators in self.alternatives:
            if all(_compare(version, op, bound) for op, bound in comparators):
                return True
        return False

    def __repr__(self) -> str:
        return "VersionRange(%r)" % self.text


def _compare(version: Version, op: str, bound: Version) -> bool:
    if op == ">=":
        return version >= bound
    if op == ">":
        return version > bound
    if op == "<=":
        return version <= bound
    if op == "<":
        return version < bound
    if op == "!=":
        return version != bound
    return version == bound


def _bump(version: Version, index: int) -> Version:
    if index == 0:
        return Version(version.major + 1, 0, 0, (), 3)
    if index == 1:
        return Version(version.major, version.minor + 1, 0, (), 3)
    return Version(version.major, version.minor, version.patch + 1, (), 3)


def _expand(op: str, version: Version) -> list[tuple[str, Version]]:
    exact = Version(version.major, version.minor, version.patch, version.prerelease, 3)
    if op in (">=", ">", "<=", "<", "!="):
        if op == ">" and version.parts < 3:
            return [(">=", _bump(version, version.parts - 1))]
        if op == "<=" and version.parts < 3:
            return [("<", _bump(version, version.parts - 1))]
        return [(op, exact)]
    if op == "^":
        first_nonzero = 0 if version.major or version.parts == 1 else (1 if version.minor or version.parts == 2 else 2)
        return [(">=", exact), ("<", _bump(version, first_nonzero))]
    if op == "~":
        return [(">=", exact), ("<", _bump(version, 0 if version.parts == 1 else 1))]
    # "=", "==" or none: a partial version is a wildcard on the missing parts
    if version.parts == 3:
        return [("==", exact)]
    return [(">=", exact), ("<", _bump(version, version.parts - 1))]


def parse_range(text: str) -> VersionRange:
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("semver range must be a non-empty string such as '>=1.2 <2'")
    alternatives = []
    for alternative in text.split("||"):
        # allow ">= 1.2" as well as ">=1.2"
        tokens = re.findall(r"(?:>=|<=|==|!=|>|<|=|\^|~)?\s*[^\s<>=!^~|]+", alternative)
        if not tokens or "".join(tokens).replace(" ", "") != alternative.replace(" ", ""):
            raise InvalidInput("invalid semver range %r: use comparators like '>=1.2 <2', '^1.4', '~2.1' or '1.x'"
                               % text)
        comparators = []
        for token in tokens:
            match = _COMPARATOR_RE.match(token.strip())
            op, value = match.group(1) or "", match.group(2).strip()
            if value in ("*", "x", "X"):
                continue
            value = re.sub(r"\.[xX*]$", "", re.sub(r"\.[xX*]$", "", value))
            version = parse_version(value)
            if version is None:
                raise InvalidInput("invalid version %r in semver range %r" % (value, text))
            comparators.extend(_expand(op, version))
        alternatives.append(comparators)
    return VersionRange(text, alternatives)


def compile_regex(pattern: str | None, option: str = "regex") -> re.Pattern | None:
    """``re.compile`` with an InvalidInput that names the option."""
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise InvalidInput("invalid regular expression in %s %r: %s" % (option, pattern, exc)) from None


def parse_created(value: object) -> float | None:
    """An image config's ``created`` (RFC 3339, any fraction, ``Z`` or an offset) as a UTC
    timestamp; None when absent or not a timestamp."""
    match = _CREATED_RE.match(value.strip()) if isinstance(value, str) else None
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        stamp = calendar.timegm((int(year), int(month), int(day), int(hour), int(minute), int(second)))
    except (ValueError, OverflowError):
        return None
    stamp += float(fraction) if fraction else 0.0
    if zone and zone not in ("Z", "z"):
        sign = -1 if zone[0] == "+" else 1
        digits = zone[1:].replace(":", "")
        stamp += sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return stamp


def order_newest_first(tags: Iterable[str], by: str = "semver",
                       created: Mapping[str, object] | None = None, prereleases: bool = False) -> list[str]:
    """The tags that can be ordered ``by`` (``semver``, ``created`` or ``name``), newest first.

    ``semver``: releases only (tags that are not versions are left out, and pre-releases too
    unless ``prereleases``: registry_prune ranks ``2.0.0-rc.1`` below ``2.0.0``); of
    equal versions, the one written with more parts (``1.2.0`` over ``1.2``), then the larger name.
    ``created``: ``created[tag]`` (an image config's timestamp); tags without one are left out;
    equal times by name. ``name``: plain string order, larger first.
    """
    tags = list(tags)
    if by == "semver":
        versions = [(parse_version(t), t) for t in tags]
        ordered = [(v, v.parts, t) for v, t in versions if v is not None and (prereleases or not v.prerelease)]
    elif by == "created":
        times = [(parse_created((created or {}).get(t)), t) for t in tags]
        ordered = [(stamp, t) for stamp, t in times if stamp is not None]
    elif by == "name":
        ordered = [(t,) for t in tags]
    else:
        raise InvalidInput("unknown tag order %r: use one of %s" % (by, ", ".join(ORDERS)))
    ordered.sort(reverse=True)
    return [entry[-1] for entry in ordered]


def newest(tags: Sequence[str], count: int, by: str = "semver",
           created: Mapping[str, object] | None = None) -> list[str]:
    """The ``count`` newest of ``tags`` (see :func:`order_newest_first`), in input order."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InvalidInput("the number of newest tags to keep must be 1 or more (got %r)" % (count,))
    keep = set(order_newest_first(tags, by, created)[:count])
    return [t for t in tags if t in keep]


class TagFilter:
    """One selection: ``tags`` (or every tag given), then ``tag_regex``, ``exclude_regex``,
    ``semver``, ``latest`` - in that order. Invalid filters fail when it is made."""

    def __init__(self, tags: Sequence[str] | None = None, tag_regex: str | None = None,
                 exclude_regex: str | None = None, semver: str | None = None, latest: int | None = None,
                 where: str = "") -> None:
        prefix = where + "." if where else ""
        self.tags = list(tags) if tags is not None else None
        self.include = compile_regex(tag_regex, prefix + "tag_regex")
        self.exclude = compile_regex(exclude_regex, prefix + "exclude_regex")
        try:
            self.range = parse_range(semver) if semver else None
        except InvalidInput as exc:
            raise InvalidInput("%s%s" % ("%ssemver: " % prefix if prefix else "", exc)) from None
        if latest is not None and (isinstance(latest, bool) or not isinstance(latest, int) or latest < 1):
            raise InvalidInput("%slatest must be 1 or more (got %r)" % (prefix, latest))
        self.latest = latest

    def select(self, tags: Sequence[str]) -> list[str]:
        """The selected tags, in the order given. ``latest`` keeps the N highest versions; tags that
        are not versions, and pre-releases, are dropped by it."""
        selected = [t for t in tags if (self.include is None or self.include.search(t))
                    and (self.exclude is None or not self.exclude.search(t))]
        if self.range is not None:
            selected = [t for t in selected if self.range.matches(parse_version(t))]
        if self.latest is not None:
            selected = newest(selected, self.latest)
        return selected


def select_tags(tags: Sequence[str], tag_regex: str | None = None, exclude_regex: str | None = None,
                semver: str | None = None, latest: int | None = None) -> list[str]:
    """Apply the filters in this order: ``tag_regex``, ``exclude_regex``, ``semver``, ``latest``.

    Regexes use ``re.search`` (anchor them with ``^...$`` to match whole tags). The result keeps
    the input order.
    """
    return TagFilter(None, tag_regex, exclude_regex, semver, latest).select(tags)
