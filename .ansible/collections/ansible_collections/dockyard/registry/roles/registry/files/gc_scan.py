# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the garbage collection entry point of dockyard.registry.registry needs to know about a
filesystem registry's data directory, read from the storage itself (standard library only).

Prints JSON: bytes (apparent size of every file), disk_bytes (allocated blocks, what du shows),
repositories, manifests (revisions), blobs, and indexes: every multi-platform index or manifest
list, as "repository@digest" (registry garbage-collect --delete-untagged breaks them).

Usage: gc_scan.py DATA_DIR
"""
from __future__ import annotations

import json
import os
import sys

INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")


def main(data_dir: str) -> int:
    total = disk = 0
    for root, _dirs, files in os.walk(data_dir):
        for name in files:
            try:
                info = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            total += info.st_size
            disk += info.st_blocks * 512
    v2 = os.path.join(data_dir, "docker", "registry", "v2")
    repos_dir = os.path.join(v2, "repositories")
    repositories, manifests, indexes = 0, 0, []
    for root, dirs, _files in os.walk(repos_dir):
        if "_manifests" not in dirs:
            continue
        repositories += 1
        repository = os.path.relpath(root, repos_dir)
        revisions = os.path.join(root, "_manifests", "revisions")
        for algorithm in sorted(os.listdir(revisions)) if os.path.isdir(revisions) else []:
            for encoded in sorted(os.listdir(os.path.join(revisions, algorithm))):
                if not os.path.exists(os.path.join(revisions, algorithm, encoded, "link")):
                    continue    # a deleted revision: the directory stays, without its link
                manifests += 1
                blob = os.path.join(v2, "blobs", algorithm, encoded[:2], encoded, "data")
                try:
                    with open(blob, "rb") as handle:
                        document = json.loads(handle.read(4 << 20).decode("utf-8"))
                except (OSError, ValueError, UnicodeDecodeError):
                    continue
                if isinstance(document, dict) and (document.get("mediaType") in INDEX_TYPES or
                                                   isinstance(document.get("manifests"), list)):
                    indexes.append("%s@%s:%s" % (repository, algorithm, encoded))
    blobs_dir = os.path.join(v2, "blobs")
    blobs = sum(1 for _root, _dirs, files in os.walk(blobs_dir) for name in files if name == "data")
    json.dump({"bytes": total, "disk_bytes": disk, "repositories": repositories, "manifests": manifests,
               "blobs": blobs, "indexes": indexes}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
