# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""htpasswd files the way the Docker distribution registry reads them.

The registry (``registry/auth/htpasswd``) trims each line, skips blank lines and lines
starting with ``#``, splits the rest at the first ``:`` and compares the password with
bcrypt on every authenticated request; anything that is not bcrypt never matches.

Everything here works on the file's bytes so that every line this code does not
change (comments, blank lines, other users, odd encodings, CRLF endings) is written
back byte for byte. Functions take the old content and return the new content; the
module does the I/O.
"""

from __future__ import annotations

import re
import traceback

from ansible_collections.dockyard.registry.plugins.module_utils._errors import (
    InvalidInput,
    MissingLibrary,
)

try:
    import bcrypt
except ImportError:
    HAS_BCRYPT = False
    BCRYPT_IMPORT_ERROR = traceback.format_exc()  # type: str | None
else:
    HAS_BCRYPT = True
    BCRYPT_IMPORT_ERROR = None

__all__ = [
    "HAS_BCRYPT",
    "BCRYPT_IMPORT_ERROR",
    "DEFAULT_COST",
    "MIN_COST",
    "MAX_COST",
    "MAX_PASSWORD_BYTES",
    "Line",
    "Change",
    "parse",
    "serialise",
    "user_names",
    "find_user",
    "invalid_line_numbers",
    "is_bcrypt",
    "validate_name",
    "validate_password",
    "validate_cost",
    "hash_password",
    "placeholder_hash",
    "verify_password",
    "set_user",
    "remove_user",
    "validate_users",
    "apply_users",
]

# The cost `htpasswd -B` uses and Docker's registry documentation shows. The registry
# runs bcrypt on every request, so the cost is paid per request, not per login.
DEFAULT_COST = 5
MIN_COST = 4
MAX_COST = 31
MAX_PASSWORD_BYTES = 72

# $2a$/$2b$/$2y$ are the same algorithm (2y is what Apache's htpasswd writes); $2x$ is
# the variant with the old sign-extension bug and is treated as "not bcrypt" (rehashed).
_BCRYPT_RE = re.compile(rb"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")


class Line:
    """One physical line of the file.

    ``raw`` is the exact bytes including the line ending (the last line may have
    none). ``user``/``hash`` are set for entries (``user:hash``), ``None`` for
    comments, blank lines and lines the registry could not parse.
    """

    __slots__ = ("raw", "user", "hash")

    def __init__(self, raw: bytes, user: bytes | None = None, hash: bytes | None = None) -> None:
        self.raw = raw
        self.user = user
        self.hash = hash

    @property
    def ending(self) -> bytes:
        if self.raw.endswith(b"\r\n"):
            return b"\r\n"
        if self.raw.endswith(b"\n"):
            return b"\n"
        return b""

    @property
    def is_entry(self) -> bool:
        return self.user is not None

    @property
    def is_invalid(self) -> bool:
        """A non-comment, non-blank line without ``:`` (the registry refuses such a file)."""
        if self.user is not None:
            return False
        text = self.raw.strip()
        return bool(text) and not text.startswith(b"#")

    def __repr__(self) -> str:
        return "Line(%r)" % (self.raw,)


class Change:
    """The outcome of :func:`set_user` / :func:`remove_user` / :func:`apply_users`.

    ``action`` is one of ``added``, ``updated``, ``rehashed`` (a non-bcrypt entry got a
    bcrypt hash), ``deduplicated`` (the hash verified but later duplicate entries were
    dropped), ``unchanged``, ``kept`` (update_password=on_create and the user exists),
    ``removed``, ``absent``.
    ``before``/``after`` are the user names in file order (for diffs; never hashes).
    ``actions`` maps every user name the call touched or looked at to its action.
    """

    __slots__ = ("content", "changed", "action", "before", "after", "duplicates_removed", "actions")

    def __init__(self, content: bytes, changed: bool, action: str, before: list[str], after: list[str],
                 duplicates_removed: int = 0, actions: dict | None = None) -> None:
        self.content = content
        self.changed = changed
        self.action = action
        self.before = before
        self.after = after
        self.duplicates_removed = duplicates_removed
        self.actions = actions if actions is not None else {}


def parse(content: bytes) -> list[Line]:
    """Split ``content`` into lines, keeping each line's exact bytes."""
    lines = []
    start = 0
    size = len(content)
    while start < size:
        end = content.find(b"\n", start)
        end = size if end < 0 else end + 1
        lines.append(_parse_line(content[start:end]))
        start = end
    return lines


def _parse_line(raw: bytes) -> Line:
    # Same rules as the registry: trim, skip blank and '#' lines, split at the first ':'.
    text = raw.strip()
    if not text or text.startswith(b"#"):
        return Line(raw)
    user, sep, hashed = text.partition(b":")
    if not sep:
        return Line(raw)
    return Line(raw, user, hashed)


def serialise(lines: list[Line]) -> bytes:
    return b"".join(line.raw for line in lines)


def _display(name: bytes) -> str:
    return name.decode("utf-8", errors="replace")


def user_names(lines: list[Line]) -> list[str]:
    """User names in file order, each once (the registry uses the last duplicate)."""
    seen = []  # type: list[str]
    for line in lines:
        if line.user is not None:
            name = _display(line.user)
            if name not in seen:
                seen.append(name)
    return seen


def find_user(lines: list[Line], name: str) -> list[int]:
    """Indexes of every entry for ``name`` (normally zero or one)."""
    wanted = name.encode("utf-8")
    return [index for index, line in enumerate(lines) if line.user == wanted]


def invalid_line_numbers(lines: list[Line]) -> list[int]:
    """1-based numbers of lines the registry cannot parse (it then rejects the whole file)."""
    return [number for number, line in enumerate(lines, start=1) if line.is_invalid]


def is_bcrypt(hashed: bytes | str) -> bool:
    if isinstance(hashed, str):
        hashed = hashed.encode("utf-8", errors="replace")
    return _BCRYPT_RE.match(hashed) is not None


def validate_name(name: str) -> bytes:
    """Return the UTF-8 bytes of a user name the registry can read back, or raise InvalidInput."""
    if not isinstance(name, str) or not name:
        raise InvalidInput("The user name is empty; htpasswd entries need a name.")
    bad = [label for char, label in ((":", "':'"), ("\n", "a newline"), ("\r", "a carriage return"),
                                     ("\0", "a NUL character")) if char in name]
    if bad:
        raise InvalidInput("The user name %r contains %s; htpasswd entries are 'name:hash' lines, so a name "
                           "cannot contain ':' or line breaks." % (name, " and ".join(bad)))
    if name != name.strip():
        raise InvalidInput("The user name %r starts or ends with whitespace; the registry trims every line, "
                           "so it would read a different name." % (name,))
    if name.startswith("#"):
        raise InvalidInput("The user name %r starts with '#'; the registry reads such a line as a comment." % (name,))
    try:
        return name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("The user name %r cannot be encoded as UTF-8." % (name,))


def validate_password(password: str) -> bytes:
    """Return the UTF-8 bytes of a usable bcrypt password, or raise InvalidInput (never echoing it)."""
    if password is None or password == "":
        raise InvalidInput("The password is empty; state=present needs a non-empty password.")
    try:
        data = password.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("The password cannot be encoded as UTF-8.")
    if len(data) > MAX_PASSWORD_BYTES:
        raise InvalidInput("The password is %d bytes long in UTF-8; bcrypt uses at most %d bytes and this module "
                           "refuses to truncate it silently. Use a password of at most %d bytes."
                           % (len(data), MAX_PASSWORD_BYTES, MAX_PASSWORD_BYTES))
    if b"\0" in data:
        # C implementations stop at NUL, Go and Rust ones do not: the same password
        # could verify in one place and not in another.
        raise InvalidInput("The password contains a NUL character, which bcrypt implementations handle differently.")
    return data


def validate_cost(cost: int) -> int:
    if not isinstance(cost, int) or isinstance(cost, bool) or not MIN_COST <= cost <= MAX_COST:
        raise InvalidInput("cost must be an integer from %d to %d (bcrypt log2 rounds), got %r."
                           % (MIN_COST, MAX_COST, cost))
    return cost


def _require_bcrypt() -> None:
    if not HAS_BCRYPT:
        raise MissingLibrary("The Python library bcrypt is required to hash htpasswd passwords.")


def hash_password(password: bytes, cost: int = DEFAULT_COST) -> bytes:
    """A bcrypt hash in the ``$2y$`` form ``htpasswd -B`` writes (same algorithm as ``$2b$``)."""
    _require_bcrypt()
    validate_cost(cost)
    hashed = bcrypt.hashpw(password, bcrypt.gensalt(rounds=cost))
    return b"$2y$" + hashed[4:]


def placeholder_hash(password: bytes, cost: int = DEFAULT_COST) -> bytes:
    """A bcrypt-shaped stand-in for content nobody will write (check mode): no CPU spent hashing."""
    validate_cost(cost)
    return b"$2y$%02d$" % cost + b"." * 53


def verify_password(password: bytes, hashed: bytes) -> bool:
    """True when ``hashed`` is bcrypt and matches; False for any other format."""
    if not is_bcrypt(hashed):
        return False
    _require_bcrypt()
    try:
        return bool(bcrypt.checkpw(password, hashed))
    except ValueError:
        return False


def set_user(content: bytes, name: str, password: str, cost: int = DEFAULT_COST,
             update_password: str = "always", hasher=None) -> Change:
    """Make ``name`` present with ``password``; return the new content and what happened.

    The first entry for the user is replaced in place (keeping its line ending), later
    duplicates are dropped; a new user is appended. An entry is left alone when it is
    bcrypt and verifies the password, whatever its cost. ``hasher(password, cost)`` replaces
    :func:`hash_password` (check mode passes :func:`placeholder_hash`: that content is thrown away).
    """
    hasher = hasher or hash_password
    if update_password not in ("always", "on_create"):
        raise InvalidInput("update_password must be 'always' or 'on_create', got %r." % (update_password,))
    b_name = validate_name(name)
    b_password = validate_password(password)
    validate_cost(cost)
    lines = parse(content)
    before = user_names(lines)
    indexes = find_user(lines, name)

    if not indexes:
        entry = b_name + b":" + hasher(b_password, cost) + b"\n"
        new_lines = list(lines)
        if new_lines and not new_lines[-1].ending:
            # The last line had no terminator; give it one so the new entry starts a line.
            new_lines[-1] = _parse_line(new_lines[-1].raw + b"\n")
        new_lines.append(_parse_line(entry))
        return Change(serialise(new_lines), True, "added", before, user_names(new_lines), actions={name: "added"})

    if update_password == "on_create":
        return Change(content, False, "kept", before, before, actions={name: "kept"})

    first = lines[indexes[0]]
    duplicates = indexes[1:]
    stored = first.hash or b""
    if len(indexes) == 1 and verify_password(b_password, stored):
        return Change(content, False, "unchanged", before, before, actions={name: "unchanged"})

    if duplicates and verify_password(b_password, stored):
        new_first = first
        action = "deduplicated"
    else:
        new_first = _parse_line(b_name + b":" + hasher(b_password, cost) + first.ending)
        action = "updated" if is_bcrypt(stored) else "rehashed"
    new_lines = [new_first if index == indexes[0] else line
                 for index, line in enumerate(lines) if index not in duplicates]
    return Change(serialise(new_lines), True, action, before, user_names(new_lines),
                  duplicates_removed=len(duplicates), actions={name: action})


def remove_user(content: bytes, name: str) -> Change:
    """Remove every entry for ``name``; other lines stay byte for byte."""
    validate_name(name)
    lines = parse(content)
    before = user_names(lines)
    indexes = find_user(lines, name)
    if not indexes:
        return Change(content, False, "absent", before, before, actions={name: "absent"})
    new_lines = [line for index, line in enumerate(lines) if index not in indexes]
    return Change(serialise(new_lines), True, "removed", before, user_names(new_lines),
                  duplicates_removed=len(indexes) - 1, actions={name: "removed"})


def validate_users(users: list, require_passwords: bool = True) -> list[str]:
    """Check a whole ``users`` list (``[{"name", "password"}]``) before anything is read or written.

    Returns the names in order. Raises one InvalidInput that lists every problem, each naming
    the user (or the entry's position when the name itself is the problem), never a password.
    """
    if not isinstance(users, list):
        raise InvalidInput("users must be a list of {name, password} entries.")
    problems = []  # type: list[str]
    names = []  # type: list[str]
    first_seen = {}  # type: dict[str, int]
    for number, entry in enumerate(users, start=1):
        if not isinstance(entry, dict):
            problems.append("entry %d is not a {name, password} mapping" % number)
            continue
        name = entry.get("name")
        try:
            validate_name(name)
        except InvalidInput as exc:
            problems.append("entry %d: %s" % (number, exc.message.rstrip(".")))
            continue
        if name in first_seen:
            problems.append("user %r is listed more than once (entries %d and %d)" % (name, first_seen[name], number))
            continue
        first_seen[name] = number
        names.append(name)
        if require_passwords:
            try:
                validate_password(entry.get("password"))
            except InvalidInput as exc:
                problems.append("user %r: %s" % (name, exc.message.rstrip(".")))
    if problems:
        raise InvalidInput("users is invalid: %s. Nothing was changed." % "; ".join(problems))
    return names


def apply_users(content: bytes, users: list, state: str = "present", exclusive: bool = False,
                cost: int = DEFAULT_COST, update_password: str = "always", hasher=None) -> Change:
    """Apply a whole ``users`` list in one pass: the content after every user is handled.

    ``state=present`` makes each listed user present (as :func:`set_user`); with ``exclusive``
    every entry of any other user is removed too (comments, blank lines and unparsable lines
    stay). ``state=absent`` removes each listed user. ``action`` is ``changed`` or
    ``unchanged``; ``actions`` has one entry per listed user and per removed unlisted user.
    """
    if state not in ("present", "absent"):
        raise InvalidInput("state must be 'present' or 'absent', got %r." % (state,))
    if exclusive and state != "present":
        raise InvalidInput("exclusive=true only works with state=present: it removes every user that is not listed.")
    names = validate_users(users, require_passwords=state == "present")
    if state == "present":
        validate_cost(cost)
    before = user_names(parse(content))
    current = content
    actions = {}  # type: dict[str, str]
    duplicates = 0
    for entry in users:
        if state == "present":
            change = set_user(current, entry["name"], entry["password"], cost, update_password, hasher)
        else:
            change = remove_user(current, entry["name"])
        current = change.content
        actions[entry["name"]] = change.action
        duplicates += change.duplicates_removed
    if exclusive:
        wanted = set(name.encode("utf-8") for name in names)
        lines = parse(current)
        kept = [line for line in lines if line.user is None or line.user in wanted]
        for name in user_names([line for line in lines if line.user is not None and line.user not in wanted]):
            actions[name] = "removed"
        current = serialise(kept)
    changed = current != content
    return Change(current, changed, "changed" if changed else "unchanged", before, user_names(parse(current)),
                  duplicates_removed=duplicates, actions=actions)
