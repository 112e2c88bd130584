# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pushes the retention corpus with the harness's own pusher (independent of the collection) and
prints {repository: {"tags": {tag: digest}, "children": {tag: [platform digests]}}}.

Usage: seed.py HARNESS_DIR REGISTRY NAMESPACE [REPO ...]   (no REPO: all of them)
"""
from __future__ import annotations

import json
import sys

sys.path.insert(0, sys.argv[1])
from corpus import Pusher, make_image, make_multiarch  # noqa: E402  pylint: disable=import-error,wrong-import-position

REGISTRY, NS = sys.argv[2], sys.argv[3]
WANTED = set(sys.argv[4:])
BASE = dict(base_seed=900, base_layers=[200_000])
# repository -> [(item, tags)]; "created" relative to now, "" for none
CORPUS = {
    # keep_latest 2 by semver, keep_regex ^main$: 1.0.0, 1.1.0 (+ 1.1 on it) and 1.2.0 go
    "semver": [
        (make_image(101, [40_000], created="-100d", **BASE), ["1.0.0"]),
        (make_image(102, [40_000], created="-90d", **BASE), ["1.1.0", "1.1"]),
        (make_image(103, [40_000], created="-60d", **BASE), ["1.2.0"]),
        (make_image(104, [40_000], created="-20d", **BASE), ["2.0.0-rc.1"]),
        (make_image(105, [40_000], created="-10d", **BASE), ["2.0.0", "latest"]),
        (make_image(106, [40_000], created="-200d", **BASE), ["main"]),
    ],
    # older_than 30d: old-a and old-b go; new-c is newer, undated-d has no date
    "dated": [
        (make_image(201, [30_000], created="-100d"), ["old-a"]),
        (make_image(202, [30_000], created="-40d"), ["old-b"]),
        (make_image(203, [30_000], created="-5d"), ["new-c"]),
        (make_image(204, [30_000], created=""), ["undated-d"]),
    ],
    # delete_regex ^pr- with keep_latest 1 by created: pr-4 stays (newest), pr-2 stays (1.0 shares it)
    "ci": [
        (make_image(301, [20_000], created="-4d"), ["pr-1"]),
        (make_image(302, [20_000], created="-3d"), ["pr-2", "1.0"]),
        (make_image(303, [20_000], created="-2d"), ["pr-3"]),
        (make_image(304, [20_000], created="-1d"), ["pr-4"]),
    ],
    # keep_latest 1: index 1.0 and its two platforms go; 2.0-amd64 is a platform of the kept 2.0
    "multi": [
        (make_multiarch(401, [25_000], created="-100d"), ["1.0"]),
        (make_multiarch(402, [25_000], created="-1d"), ["2.0"]),
    ],
    # every image older than 30 days: the cap refuses older_than 30d
    "cap": [(make_image(500 + n, [10_000], created="-60d"), ["c%d" % n]) for n in range(4)],
    # re-seeded by the fault scenarios
    "faulty": [(make_image(600 + n, [10_000]), ["1.%d" % n]) for n in range(4)],
}

pusher = Pusher(REGISTRY)
out = {}
for name, items in CORPUS.items():
    if WANTED and name not in WANTED:
        continue
    repo = "%s/%s" % (NS, name)
    entry = out[repo] = {"tags": {}, "children": {}}
    for item, tags in items:
        digest = pusher.push(item, repo, tags)
        for tag in tags:
            entry["tags"][tag] = digest
            if hasattr(item, "children"):
                entry["children"][tag] = [c.manifest.digest for c in item.children]
    if name == "multi":
        # a tag on the amd64 platform of 2.0 (deleting it would break the index)
        child = [c for c in CORPUS["multi"][1][0].children if c.platform["architecture"] == "amd64"][0]
        pusher.push(child, repo, ["2.0-amd64"])
        entry["tags"]["2.0-amd64"] = child.manifest.digest
json.dump(out, sys.stdout, indent=1)
