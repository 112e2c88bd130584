# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Stands in for docker-credential-gcloud: speaks the docker-credential-helpers protocol (the
server URL as plain text on stdin for ``get``; a JSON answer {ServerURL, Username, Secret}) with
credentials from the JSON file $DOCKYARD_IT_STUB_DB ({host: {Username, Secret}}), and appends every
call to $DOCKYARD_IT_STUB_DB.calls so a test can see that the docker CLI asked it."""
import json
import os
import sys

NOT_FOUND = "credentials not found in native keychain"


def main():
    db = os.environ["DOCKYARD_IT_STUB_DB"]
    action = sys.argv[1] if len(sys.argv) > 1 else ""
    server = sys.stdin.read().strip()
    with open(db + ".calls", "a") as handle:
        handle.write("%s %s\n" % (action, server))
    if action != "get":
        print("docker-credential-gcloud stub: only get is supported")
        return 1
    with open(db) as handle:
        store = json.load(handle)
    host = server.split("://", 1)[-1].split("/", 1)[0]
    if host not in store:
        print(NOT_FOUND)
        return 1
    print(json.dumps({"ServerURL": server, "Username": store[host]["Username"], "Secret": store[host]["Secret"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
