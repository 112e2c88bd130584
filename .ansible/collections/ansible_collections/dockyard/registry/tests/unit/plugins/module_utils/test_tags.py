# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tag selection: versions, semver ranges, regexes, and the newest N by version, time or name."""

from __future__ import annotations

import pytest

from ansible_collections.dockyard.registry.plugins.module_utils._errors import InvalidInput
from ansible_collections.dockyard.registry.plugins.module_utils._tags import (
    TagFilter,
    Version,
    newest,
    order_newest_first,
    parse_created,
    parse_range,
    parse_version,
    select_tags,
)


@pytest.mark.parametrize("tag, expected", [
    ("1", (1, 0, 0)), ("1.2", (1, 2, 0)), ("v1.2.3", (1, 2, 3)), ("V10.0.1", (10, 0, 1)),
    ("1.2.3-rc.1", (1, 2, 3)), ("1.2.3+build5", (1, 2, 3)),
])
def test_parse_version(tag, expected):
    version = parse_version(tag)
    assert (version.major, version.minor, version.patch) == expected


@pytest.mark.parametrize("tag", ["latest", "1.2.3.4", "01.2", "v", "1.x", "stable-1.2", ""])
def test_parse_version_rejects(tag):
    assert parse_version(tag) is None


@pytest.mark.parametrize("spec, yes, no", [
    (">=1.2 <2", ["1.2", "1.2.0", "v1.9.9", "1.10"], ["1.1.9", "2", "2.0.0", "1.5.0-rc1", "latest"]),
    (">= 1.2 < 2", ["1.3"], ["2.0"]),
    ("^1.4", ["1.4.0", "1.99"], ["1.3.9", "2.0.0"]),
    ("^0.3", ["0.3.1"], ["0.4.0"]),
    ("~2.1", ["2.1.0", "2.1.9"], ["2.2.0"]),
    ("1.2", ["1.2.0", "1.2.7"], ["1.3.0"]),
    ("1.x", ["1.0", "1.9"], ["2.0"]),
    ("=1.2.3", ["v1.2.3"], ["1.2.4"]),
    (">1.2", ["1.3.0"], ["1.2.9"]),
    ("<=1.2", ["1.2.9"], ["1.3.0"]),
    ("<1 || >=3", ["0.9", "3.1"], ["1.0", "2.9"]),
])
def test_semver_ranges(spec, yes, no):
    version_range = parse_range(spec)
    assert [t for t in yes if version_range.matches(parse_version(t))] == yes
    assert [t for t in no if version_range.matches(parse_version(t))] == []


@pytest.mark.parametrize("spec", ["", ">=", ">=abc", "1.2 & 3", ">=1.2 <"])
def test_semver_range_errors(spec):
    with pytest.raises(InvalidInput):
        parse_range(spec)


TAGS = ["latest", "1.0", "1.1", "v1.2.0", "1.10.1", "2.0.0", "2.1.0-rc1", "nightly-2024", "1.1-debug"]


@pytest.mark.parametrize("kwargs, expected", [
    ({}, TAGS),
    ({"tag_regex": r"^v?\d"}, ["1.0", "1.1", "v1.2.0", "1.10.1", "2.0.0", "2.1.0-rc1", "1.1-debug"]),
    ({"exclude_regex": "debug|rc"}, ["latest", "1.0", "1.1", "v1.2.0", "1.10.1", "2.0.0", "nightly-2024"]),
    ({"semver": ">=1.1 <2"}, ["1.1", "v1.2.0", "1.10.1"]),
    ({"latest": 2}, ["1.10.1", "2.0.0"]),
    ({"semver": "<2", "latest": 3}, ["1.1", "v1.2.0", "1.10.1"]),
    ({"tag_regex": "^1", "exclude_regex": "debug", "latest": 1}, ["1.10.1"]),
])
def test_select_tags(kwargs, expected):
    assert select_tags(TAGS, **kwargs) == expected


def test_select_tags_errors():
    with pytest.raises(InvalidInput):
        select_tags(TAGS, tag_regex="(")
    with pytest.raises(InvalidInput):
        select_tags(TAGS, latest=0)


def test_versions_compare_with_every_operator():
    low, high, pre = parse_version("1.2"), parse_version("v1.10.0"), parse_version("1.10.0-rc.2")
    assert low < high and low <= high and high > low and high >= low and low != high
    assert pre < high and pre <= high                 # a release sorts after its pre-releases
    assert parse_version("1.2") == parse_version("1.2.0") == Version(1, 2, 0)
    assert parse_version("1.0.0-rc.2") < parse_version("1.0.0-rc.10") < parse_version("1.0.0-rc.a")
    assert len({parse_version("1.2"), parse_version("v1.2.0")}) == 1


CREATED = {
    "old": "2023-12-31T23:59:59Z",
    "mid": "2024-01-01T01:30:00+02:00",       # 2023-12-31T23:30:00Z: older than "old"
    "new": "2024-05-01T12:00:00.123456789Z",
    "junk": "yesterday",
}


@pytest.mark.parametrize("value, expected", [
    ("2024-01-02T03:04:05Z", 1704164645.0),
    ("2024-01-02T03:04:05.5Z", 1704164645.5),
    ("2024-01-02T05:04:05+02:00", 1704164645.0),
    ("2024-01-02 03:04:05-0030", 1704166445.0),
    ("2024-13-02T03:04:05Z", None), ("yesterday", None), (None, None), (12, None),
])
def test_parse_created(value, expected):
    assert parse_created(value) == expected


@pytest.mark.parametrize("by, created, expected", [
    ("semver", None, ["2.0.0", "1.10.1", "v1.2.0", "1.1", "1.0"]),
    ("name", None, ["v1.2.0", "nightly-2024", "latest", "2.1.0-rc1", "2.0.0", "1.10.1", "1.1-debug", "1.1", "1.0"]),
    ("created", CREATED, ["new", "old", "mid"]),
])
def test_order_newest_first(by, created, expected):
    tags = list(CREATED) if by == "created" else TAGS
    assert order_newest_first(tags, by, created) == expected


def test_order_by_version_prefers_the_longer_spelling_of_equal_versions():
    assert order_newest_first(["1.2", "1.2.0", "v1.2"], "semver") == ["1.2.0", "v1.2", "1.2"]


def test_newest_keeps_the_input_order():
    assert newest(TAGS, 3) == ["v1.2.0", "1.10.1", "2.0.0"]
    assert newest(list(CREATED), 2, by="created", created=CREATED) == ["old", "new"]
    assert newest(["b", "a", "c"], 1, by="name") == ["c"]


@pytest.mark.parametrize("count", [0, -1, "2", True, None])
def test_newest_needs_a_positive_count(count):
    with pytest.raises(InvalidInput, match="1 or more"):
        newest(TAGS, count)


def test_unknown_order():
    with pytest.raises(InvalidInput, match="semver, created, name"):
        order_newest_first(TAGS, "size")


def test_tag_filter_names_the_option_in_errors():
    with pytest.raises(InvalidInput, match=r"repositories\[2\]\.tag_regex"):
        TagFilter(tag_regex="(", where="repositories[2]")
    with pytest.raises(InvalidInput, match=r"repositories\[2\]\.latest must be 1 or more \(got 0\)"):
        TagFilter(latest=0, where="repositories[2]")
    assert TagFilter(semver="^1", latest=1).select(TAGS) == ["1.10.1"]
