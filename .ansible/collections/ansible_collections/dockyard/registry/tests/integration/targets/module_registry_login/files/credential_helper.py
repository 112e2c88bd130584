# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A docker-credential-helpers compatible store backed by a JSON file ($DOCKYARD_IT_HELPER_DB).

The docker CLI and registry_login both talk to it, so a pull that works proves the
secret went through the helper protocol and not through config.json.
"""
import json
import os
import sys

NOT_FOUND = "credentials not found in native keychain"


def main():
    db = os.environ["DOCKYARD_IT_HELPER_DB"]
    action = sys.argv[1] if len(sys.argv) > 1 else ""
    data = sys.stdin.read().strip()
    store = {}
    if os.path.exists(db):
        with open(db) as handle:
            store = json.load(handle)
    if action == "get":
        if data not in store:
            print(NOT_FOUND)
            return 1
        print(json.dumps(store[data]))
    elif action == "store":
        item = json.loads(data)
        store[item["ServerURL"]] = item
    elif action == "erase":
        if data not in store:
            print(NOT_FOUND)
            return 1
        del store[data]
    elif action == "list":
        print(json.dumps(dict((k, v["Username"]) for k, v in store.items())))
        return 0
    else:
        print("unknown action %r" % action)
        return 2
    if action in ("store", "erase"):
        fd = os.open(db, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(store, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
