#!/usr/bin/python
# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: htpasswd_user
short_description: Manage users in an htpasswd file for the Docker distribution registry
version_added: 0.1.0
description:
  - Adds, updates or removes one user (O(name)) or a list of users (O(users)) in an htpasswd file, the way the
    Docker distribution registry (C(registry:2)) reads it for its C(htpasswd) authentication.
  - With O(users) and O(exclusive=true) the file holds exactly the listed users; every other user is removed.
    Every entry of the list is checked (names, passwords, repeated names) before the file is read, and all
    problems are reported at once.
  - Passwords are hashed with bcrypt only, written in the C($2y$) form C(htpasswd -B) writes. The registry
    ignores every other format, so an existing non-bcrypt entry for the user (C({SHA}), C($apr1$), crypt,
    plain text) is replaced by a bcrypt hash and reported as changed.
  - Idempotent by verification, not by comparison. When the stored bcrypt hash already verifies O(password),
    the file is not touched, whatever cost that hash was made with.
  - Writes are atomic. The new content goes to a temporary file in the same directory, is flushed to disk and
    renamed over the old file. Every other line (comments, blank lines, other users and their hashes) is kept
    byte for byte, and so are the file's mode, owner and SELinux context unless O(mode), O(owner) or O(group)
    say otherwise. When anything fails, the old file stays as it was.
  - Concurrent runs on one file are serialised. The module holds an advisory lock (C(flock)) on the sibling
    file C(<path>.lock) from reading the file to renaming the new one, so parallel tasks (a loop with C(async),
    several plays or controllers on one host) never lose each other's users. The lock file is removed
    afterwards. Check mode takes no lock and writes nothing.
  - O(path) must be a regular file or a symbolic link to one. A FIFO, a device, a socket or a directory is
    refused with an error before it is opened.
  - The registry re-reads the file when it changes, so added, changed and removed users take effect without a
    restart, provided the B(directory) holding the file is bind-mounted into the container. A bind-mounted
    single file keeps pointing at the old inode after the atomic rename.
  - The password is never returned, logged or shown in diffs. Diffs list user names only.
author:
  - dockyard.registry contributors (@dockyard)
requirements:
  - bcrypt (the Python library, on the host that runs the module; only needed for O(state=present))
options:
  path:
    description:
      - Path of the htpasswd file.
      - Its directory must exist; the module does not create directories.
    type: path
    required: true
  name:
    description:
      - The user name, to manage one user. One of O(name) and O(users) is required.
      - It must not be empty. It must not contain V(:) or line breaks, start or end with whitespace, or start
        with V(#), because the registry could not read such an entry back.
    type: str
  password:
    description:
      - The password of O(name). Required when O(state=present).
      - At most 72 bytes in UTF-8, the limit of bcrypt. A longer password is an error; it is never truncated.
    type: str
  users:
    description:
      - A list of users to manage in one task, instead of O(name) and O(password).
      - The whole list is checked before the file is read. Names follow the rules of O(name) and may appear only
        once; with O(state=present) every entry needs a password that follows the rules of O(password).
      - The file is written once for the whole list.
    type: list
    elements: dict
    suboptions:
      name:
        description: The user name.
        type: str
        required: true
      password:
        description: The user's password. Required when O(state=present). Never logged.
        type: str
  exclusive:
    description:
      - Remove every user that is not O(name) or listed in O(users), like C(ansible.posix.authorized_key) does
        for keys. Comments, blank lines and lines the registry cannot parse are kept.
      - Only with O(state=present). V(true) with an empty O(users) list removes every user.
    type: bool
    default: false
  state:
    description:
      - V(present) makes sure the user (or each listed user) exists with its password. With O(create=true) the
        file exists afterwards, even when it holds no user.
      - V(absent) removes every entry for the user (or each listed user). A missing file is then not an error and
        stays missing.
    type: str
    choices: [present, absent]
    default: present
  update_password:
    description:
      - V(always) sets O(password) when the stored hash does not verify it, or is not bcrypt.
      - V(on_create) sets O(password) only for a user that is not in the file yet and never touches an existing
        entry, not even a non-bcrypt one (the module then warns that the registry cannot use it).
    type: str
    choices: [always, on_create]
    default: always
  cost:
    description:
      - bcrypt cost (log2 of the rounds) for new hashes, from V(4) to V(31).
      - The registry runs a bcrypt comparison on B(every authenticated request), not once per login, and a
        push or pull makes several requests per layer. Each extra step doubles the server CPU per request.
        Measured on one registry container, 40 authenticated C(GET /v2/) requests took 0.5 s in all with a cost-5
        hash and 9.8 s with a cost-12 hash (about 245 ms of CPU per request).
      - The default V(5) is what C(htpasswd -B) and Docker's registry documentation use. Raise it only when
        offline attacks on a stolen file matter more than request latency and registry CPU. Use long random
        passwords for machine accounts either way.
      - Existing hashes that verify O(password) are kept even if their cost differs. To re-hash at a new cost,
        remove the user first or change the password.
    type: int
    default: 5
  create:
    description:
      - Create the file when it does not exist.
      - With V(false), a missing file is an error for O(state=present).
      - A file the module creates gets mode V(0600) unless O(mode) is set. The hashes can be attacked offline, so
        the file is treated like a key; the registry container runs as root and can still read it. If your
        registry runs as another user, set O(owner), O(group) or O(mode) (for example V('0640') with the
        container's group). An existing file keeps its mode and owner unless O(mode), O(owner) or O(group) are set.
    type: bool
    default: true
  lock_timeout:
    description:
      - Seconds to wait for another task that is changing the same file (the lock on C(<path>.lock)), from V(0)
        (try once) to V(3600). When it runs out, the module fails naming the lock file and the process that holds it.
      - Hashing at a high O(cost) happens while the lock is held, so many parallel tasks at a high cost may need more.
    type: int
    default: 30
extends_documentation_fragment:
  - dockyard.registry.attributes
  - dockyard.registry.attributes.ACTIONGROUP_NONE
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff lists the user names in the file before and after, never hashes or passwords.
      - In check mode a missing parent directory is not an error (the task that creates it did not run either);
        the module reports the file it would create and says in RV(msg) that the directory is missing.
  idempotent:
    support: full
notes:
  - The lock is advisory. It serialises this module's runs (on one host, or on several hosts that share the file
    over a file system with working C(flock), such as NFS). Other programs that rewrite the file do not take it.
  - The registry refuses an htpasswd file in which a line is neither blank, a comment nor C(name:hash). The module
    keeps such lines as they are and warns about them.
  - When the file holds several entries for the user, the module keeps the first (updated if needed) and drops the
    others; the registry would have used the last one.
seealso:
  - name: Docker distribution registry configuration, auth section
    description: How the registry uses htpasswd files (bcrypt only).
    link: https://distribution.github.io/distribution/about/configuration/#auth
  - module: community.general.htpasswd
    description: A general htpasswd module (passlib based, several hash schemes).
"""

EXAMPLES = r"""
- name: Give the CI robot access to the registry
  dockyard.registry.htpasswd_user:
    path: /opt/registry/registry/auth/htpasswd
    name: ci-robot
    password: "{{ vault_ci_robot_password }}"

- name: Create a user without ever resetting a password someone changed later
  dockyard.registry.htpasswd_user:
    path: /opt/registry/registry/auth/htpasswd
    name: alice
    password: "{{ initial_password }}"
    update_password: on_create

- name: A file readable by a registry that runs as uid 1000 in group registry
  dockyard.registry.htpasswd_user:
    path: /srv/registry/auth/htpasswd
    name: bob
    password: "{{ vault_bob_password }}"
    owner: root
    group: registry
    mode: "0640"

- name: A stronger hash for a rarely used admin account (slower requests for that user)
  dockyard.registry.htpasswd_user:
    path: /opt/registry/registry/auth/htpasswd
    name: admin
    password: "{{ vault_admin_password }}"
    cost: 10

- name: Revoke access; the registry stops accepting the user without a restart
  dockyard.registry.htpasswd_user:
    path: /opt/registry/registry/auth/htpasswd
    name: alice
    state: absent

- name: The registry's users, exactly these; everyone else is removed
  dockyard.registry.htpasswd_user:
    path: /opt/registry/registry/auth/htpasswd
    users:
      - name: ci-robot
        password: "{{ vault_ci_robot_password }}"
      - name: alice
        password: "{{ vault_alice_password }}"
    exclusive: true

- name: Remove several users at once
  dockyard.registry.htpasswd_user:
    path: /opt/registry/registry/auth/htpasswd
    users:
      - name: bob
      - name: carol
    state: absent

- name: Fail instead of creating the file when it is missing
  dockyard.registry.htpasswd_user:
    path: /opt/registry/registry/auth/htpasswd
    name: carol
    password: "{{ vault_carol_password }}"
    create: false
"""

RETURN = r"""
user:
  description: The user name the task managed.
  returned: when O(name) is used
  type: str
  sample: ci-robot
state:
  description: The requested state of the user.
  returned: always
  type: str
  sample: present
file:
  description:
    - The htpasswd file (after following a symbolic link).
    - Not named C(path) on purpose. Ansible adds file facts to results with a C(path) key, and they would
      overwrite RV(state).
  returned: always
  type: str
  sample: /opt/registry/registry/auth/htpasswd
created_file:
  description: Whether the file was created (in check mode, whether it would be).
  returned: always
  type: bool
  sample: false
action:
  description:
    - What happened to the user's entry (in check mode, what would happen).
    - V(added), V(updated) (new password), V(rehashed) (a non-bcrypt entry got a bcrypt hash), V(deduplicated)
      (the password verified, extra entries for the user were dropped), V(unchanged), V(kept) (the user exists
      and O(update_password=on_create)), V(removed), V(absent) (nothing to remove).
  returned: when O(name) is used
  type: str
  sample: added
actions:
  description:
    - For every user the task managed, and every user O(exclusive=true) removed, what happened to it (in check
      mode, what would happen), with the values of RV(action).
  returned: always
  type: dict
  sample: {"ci-robot": "added", "alice": "unchanged", "bob": "removed"}
msg:
  description: A short human-readable summary. Never contains the password or a hash.
  returned: always
  type: str
  sample: added user 'ci-robot'
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.dockyard.registry.plugins.module_utils import _htpasswd, _io
from ansible_collections.dockyard.registry.plugins.module_utils._errors import InvalidInput, RegistryError

_MESSAGES = {
    "added": "added user %r",
    "updated": "updated the password of user %r",
    "rehashed": "replaced the non-bcrypt entry of user %r with a bcrypt hash",
    "deduplicated": "removed duplicate entries of user %r",
    "unchanged": "user %r is present and its password verifies",
    "kept": "user %r exists; update_password=on_create leaves it alone",
    "removed": "removed user %r",
    "absent": "user %r is absent",
}
# List mode summarises by action, in this order.
_SUMMARY_ORDER = ("added", "updated", "rehashed", "deduplicated", "removed", "kept", "unchanged", "absent")

NEW_FILE_MODE = 0o600
MAX_LOCK_TIMEOUT = 3600
WHAT = "htpasswd file"


def argument_spec() -> dict:
    return dict(
        path=dict(type="path", required=True),
        name=dict(type="str"),
        password=dict(type="str", no_log=True),
        users=dict(type="list", elements="dict", options=dict(
            name=dict(type="str", required=True),
            password=dict(type="str", no_log=True),
        )),
        exclusive=dict(type="bool", default=False),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        update_password=dict(type="str", default="always", choices=["always", "on_create"], no_log=False),
        cost=dict(type="int", default=_htpasswd.DEFAULT_COST),
        create=dict(type="bool", default=True),
        lock_timeout=dict(type="int", default=_io.DEFAULT_LOCK_TIMEOUT),
    )


def _validate(params: dict) -> list:
    """Every check on the options, before the file is looked at; returns the users list."""
    state = params["state"]
    timeout = params["lock_timeout"]
    if not 0 <= timeout <= MAX_LOCK_TIMEOUT:
        raise InvalidInput("lock_timeout must be from 0 to %d seconds, got %d." % (MAX_LOCK_TIMEOUT, timeout))
    if state == "present":
        _htpasswd.validate_cost(params["cost"])
    if params["exclusive"] and state != "present":
        raise InvalidInput("exclusive=true only works with state=present: it removes every user that is not listed.")
    if params["users"] is not None:
        users = params["users"]
    else:
        if state == "present" and params["password"] is None:
            raise InvalidInput("state is present but all of the following are missing: password.")
        users = [dict(name=params["name"], password=params["password"])]
    _htpasswd.validate_users(users, require_passwords=state == "present")
    return users


def _summary(actions: dict, single: str | None) -> str:
    if single is not None:
        return _MESSAGES[actions[single]] % single
    if not actions:
        return "no users listed"
    groups = []
    for action in _SUMMARY_ORDER:
        names = [name for name, done in actions.items() if done == action]
        if names:
            groups.append("%s %s" % (action, ", ".join(repr(name) for name in names)))
    return "; ".join(groups)


def _apply(module: AnsibleModule, path: str, users: list, directory_exists: bool) -> dict:
    """Read, change and write the file. Runs under the file's lock (except in check mode)."""
    params = module.params
    state = params["state"]
    single = params["name"] if params["users"] is None else None

    content = _io.read_file(path, WHAT)
    creating = content is None
    if creating and state == "present" and not params["create"]:
        raise InvalidInput("The htpasswd file %s does not exist and create=false." % path)

    if creating and state == "absent":
        change = _htpasswd.Change(b"", False, "unchanged", [], [],
                                  actions=dict((user["name"], "absent") for user in users))
        creating = False
    else:
        # Check mode throws the new content away: verify stored hashes (that decides "changed"), but do
        # not spend bcrypt's CPU on new ones (the registry role runs this check before every deployment).
        change = _htpasswd.apply_users(content or b"", users, state=state, exclusive=params["exclusive"],
                                       cost=params["cost"], update_password=params["update_password"],
                                       hasher=_htpasswd.placeholder_hash if module.check_mode else None)
    # state=present with create=true leaves a file behind, even one without users (the registry
    # would otherwise make its own file with a generated user).
    file_changed = change.changed or creating

    lines = _htpasswd.parse(change.content)
    invalid = _htpasswd.invalid_line_numbers(lines)
    if invalid:
        module.warn("%s has lines the registry cannot parse (neither blank, '#' comment nor 'name:hash'): line %s. "
                    "The registry refuses the whole file until they are fixed."
                    % (path, ", ".join(str(number) for number in invalid)))
    for name, action in change.actions.items():
        if action == "kept":
            index = _htpasswd.find_user(lines, name)[0]
            if not _htpasswd.is_bcrypt(lines[index].hash or b""):
                module.warn("User %r has a non-bcrypt hash, which the registry never accepts; "
                            "update_password=on_create leaves it as it is." % name)

    if file_changed and not module.check_mode:
        # A new file is 0600 from its first byte; O(mode), O(owner), O(group) are applied below.
        _io.atomic_write(path, change.content, what=WHAT, new_file_mode=NEW_FILE_MODE)

    changed = file_changed
    diffs = []
    if module._diff:
        diffs.append(dict(
            before="".join(user + "\n" for user in change.before) if not creating else "",
            after="".join(user + "\n" for user in change.after) if (content is not None or state == "present") else "",
            before_header="%s (users)" % path if not creating else "%s (absent)" % path,
            after_header="%s (users)" % path,
        ))

    if os.path.exists(path):
        file_args = module.load_file_common_arguments(params, path=path)
        attr_diff = dict(before={}, after={})  # type: dict
        changed = module.set_fs_attributes_if_different(file_args, changed, diff=attr_diff)
        if module._diff and (attr_diff["before"] or attr_diff["after"]):
            attr_diff["before_header"] = attr_diff["after_header"] = "%s (attributes)" % path
            diffs.append(attr_diff)

    msg = _summary(change.actions, single)
    if change.duplicates_removed and (single is None or change.action != "deduplicated"):
        extra = change.duplicates_removed
        msg += " and removed %d duplicate entr%s" % (extra, "y" if extra == 1 else "ies")
    if creating:
        msg += " (created %s)" % path
        if not directory_exists:
            msg += "; its directory %s does not exist yet: a real run fails unless it is created first" % (
                os.path.dirname(path))
    result = dict(changed=changed, created_file=creating, actions=change.actions, msg=msg)
    if single is not None:
        result["action"] = change.actions[single]
    if diffs:
        result["diff"] = diffs[0] if len(diffs) == 1 else diffs
    return result


def run(module: AnsibleModule) -> dict:
    params = module.params
    # Validate everything before reading the file, so bad input never gets near it.
    users = _validate(params)

    path = _io.resolve_path(params["path"])  # through a link, so the link stays a link
    directory = os.path.dirname(path)
    directory_exists = os.path.isdir(directory)
    if not directory_exists and not module.check_mode:
        raise InvalidInput("The directory %s for the htpasswd file %s does not exist; create it first "
                           "(for example with ansible.builtin.file and state=directory)." % (directory, path))
    _io.require_regular_file(path, WHAT)

    result = dict(changed=False, state=params["state"], file=path, created_file=False)
    if params["users"] is None:
        result["user"] = params["name"]
    if module.check_mode or not directory_exists:
        # Check mode reads only: no lock file is made.
        result.update(_apply(module, path, users, directory_exists))
    else:
        with _io.FileLock(path, timeout=params["lock_timeout"], what=WHAT):
            result.update(_apply(module, path, users, directory_exists))
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        add_file_common_args=True,
        supports_check_mode=True,
        required_one_of=[("name", "users")],
        mutually_exclusive=[("name", "users"), ("password", "users")],
    )
    if module.params["state"] == "present" and not _htpasswd.HAS_BCRYPT:
        module.fail_json(msg=missing_required_lib("bcrypt"), exception=_htpasswd.BCRYPT_IMPORT_ERROR)
    try:
        result = run(module)
    except RegistryError as err:
        module.fail_json(**err.to_result())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
