#!/usr/bin/python
# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: htpasswd_user
short_description: Manage one user in an htpasswd file for the Docker distribution registry
version_added: 0.1.0
description:
  - Adds, updates or removes one user in an htpasswd file, the way the Docker distribution registry
    (C(registry:2)) reads it for its C(htpasswd) authentication.
  - Passwords are hashed with bcrypt only, written in the C($2y$) form C(htpasswd -B) writes. The registry
    ignores every other format, so an existing non-bcrypt entry for the user (C({SHA}), C($apr1$), crypt,
    plain text) is replaced by a bcrypt hash and reported as changed.
  - Idempotent by verification, not by comparison. When the stored bcrypt hash already verifies O(password),
    the file is not touched, whatever cost that hash was made with.
  - Writes are atomic. The new content goes to a temporary file in the same directory, is flushed to disk and
    renamed over the old file. Every other line (comments, blank lines, other users and their hashes) is kept
    byte for byte, and so are the file's mode and owner unless O(mode), O(owner) or O(group) say otherwise.
    When anything fails, the old file stays as it was.
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
      - The user name.
      - It must not be empty. It must not contain V(:) or line breaks, start or end with whitespace, or start
        with V(#), because the registry could not read such an entry back.
    type: str
    required: true
  password:
    description:
      - The user's password. Required when O(state=present).
      - At most 72 bytes in UTF-8, the limit of bcrypt. A longer password is an error; it is never truncated.
    type: str
  state:
    description:
      - V(present) makes sure the user exists with O(password).
      - V(absent) removes every entry for the user. A missing file is then not an error and stays missing.
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
  idempotent:
    support: full
notes:
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
  returned: always
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
  returned: always
  type: str
  sample: added
msg:
  description: A short human-readable summary. Never contains the password or a hash.
  returned: always
  type: str
  sample: added user 'ci-robot'
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.dockyard.registry.plugins.module_utils import _htpasswd
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

NEW_FILE_MODE = 0o600


def argument_spec() -> dict:
    return dict(
        path=dict(type="path", required=True),
        name=dict(type="str", required=True),
        password=dict(type="str", no_log=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        update_password=dict(type="str", default="always", choices=["always", "on_create"], no_log=False),
        cost=dict(type="int", default=_htpasswd.DEFAULT_COST),
        create=dict(type="bool", default=True),
    )


def _read(path: str) -> bytes | None:
    """The file's bytes, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise InvalidInput("%s is a directory, not an htpasswd file." % path)
    except OSError as exc:
        raise RegistryError("Cannot read %s: %s" % (path, to_native(exc.strerror or exc)))


def _fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(module: AnsibleModule, path: str, content: bytes, creating: bool) -> None:
    """Replace ``path`` with ``content`` so that readers see the old or the new file, never a mix."""
    directory = os.path.dirname(path) or "."
    placeholder = False
    try:
        fd, tmp_path = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    except OSError as exc:
        raise RegistryError("Cannot create a temporary file in %s: %s" % (directory, to_native(exc.strerror or exc)))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        if creating:
            # atomic_move gives a file it creates the umask mode (often 0644) for a moment;
            # over an existing empty 0600 placeholder it keeps 0600 from the first byte.
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, NEW_FILE_MODE))
                placeholder = True
            except FileExistsError:
                pass
        else:
            current = os.stat(path)
            os.chmod(tmp_path, current.st_mode & 0o7777)
            try:
                os.chown(tmp_path, current.st_uid, current.st_gid)
            except PermissionError:
                pass  # not root: the rewritten file belongs to us, as any rewrite by this user would
        module.atomic_move(tmp_path, path)
        placeholder = False
        _fsync_directory(directory)
    except Exception as exc:
        outcome = "no file was created" if creating else "the old file is unchanged"
        raise RegistryError("Cannot write %s; %s: %s" % (path, outcome, to_native(exc)))
    finally:
        # Also runs when an older atomic_move calls fail_json (SystemExit) itself.
        if placeholder:
            try:
                os.unlink(path)
            except OSError:
                pass
        if os.path.exists(tmp_path):
            os.unlink(tmp_path)


def run(module: AnsibleModule) -> dict:
    params = module.params
    path = params["path"]
    name = params["name"]
    state = params["state"]

    # Validate everything before reading the file, so bad input never gets near it.
    _htpasswd.validate_name(name)
    if state == "present":
        _htpasswd.validate_password(params["password"])
        _htpasswd.validate_cost(params["cost"])

    if os.path.islink(path):
        path = os.path.realpath(path)  # write through the link, do not replace it with a file
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise InvalidInput("The directory %s for the htpasswd file %s does not exist; create it first "
                           "(for example with ansible.builtin.file and state=directory)." % (directory, path))

    content = _read(path)
    result = dict(changed=False, user=name, state=state, file=path, created_file=False)
    if content is None and state == "absent":
        result.update(action="absent", msg=_MESSAGES["absent"] % name)
        if module._diff:
            result["diff"] = dict(before="", after="", before_header=path, after_header=path)
        return result
    if content is None and not params["create"]:
        raise InvalidInput("The htpasswd file %s does not exist and create=false." % path)

    creating = content is None
    old = content or b""
    if state == "present":
        change = _htpasswd.set_user(old, name, params["password"], params["cost"], params["update_password"])
    else:
        change = _htpasswd.remove_user(old, name)

    lines = _htpasswd.parse(change.content)
    invalid = _htpasswd.invalid_line_numbers(lines)
    if invalid:
        module.warn("%s has lines the registry cannot parse (neither blank, '#' comment nor 'name:hash'): line %s. "
                    "The registry refuses the whole file until they are fixed."
                    % (path, ", ".join(str(number) for number in invalid)))
    if change.action == "kept":
        index = _htpasswd.find_user(lines, name)[0]
        if not _htpasswd.is_bcrypt(lines[index].hash or b""):
            module.warn("User %r has a non-bcrypt hash, which the registry never accepts; update_password=on_create "
                        "leaves it as it is." % name)

    if change.changed and not module.check_mode:
        write_atomic(module, path, change.content, creating)

    changed = change.changed
    diffs = []
    if module._diff:
        diffs.append(dict(
            before="".join(user + "\n" for user in change.before) if not creating else "",
            after="".join(user + "\n" for user in change.after),
            before_header="%s (users)" % path if not creating else "%s (absent)" % path,
            after_header="%s (users)" % path,
        ))

    file_args = module.load_file_common_arguments(module.params, path=path)
    if creating and file_args.get("mode") is None:
        file_args["mode"] = NEW_FILE_MODE
    if os.path.exists(path):
        attr_diff = dict(before={}, after={})  # type: dict
        changed = module.set_fs_attributes_if_different(file_args, changed, diff=attr_diff)
        if module._diff and (attr_diff["before"] or attr_diff["after"]):
            attr_diff["before_header"] = attr_diff["after_header"] = "%s (attributes)" % path
            diffs.append(attr_diff)

    msg = _MESSAGES[change.action] % name
    if change.duplicates_removed and change.action != "deduplicated":
        extra = change.duplicates_removed
        msg += " and removed %d duplicate entr%s" % (extra, "y" if extra == 1 else "ies")
    if creating and change.changed:
        msg += " (created %s)" % path
    result.update(changed=changed, created_file=creating and change.changed, action=change.action, msg=msg)
    if diffs:
        result["diff"] = diffs[0] if len(diffs) == 1 else diffs
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        add_file_common_args=True,
        supports_check_mode=True,
        required_if=[("state", "present", ["password"])],
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
