# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import base64
import hashlib

import bcrypt
import pytest

from ansible_collections.dockyard.registry.plugins.module_utils import _htpasswd
from ansible_collections.dockyard.registry.plugins.module_utils._errors import InvalidInput

# Hashes made once (cost 4, the minimum, keeps the suite fast); "secret" is their password.
ALICE_2Y = b"$2y$04$FVr69PNa8cyXVHeVA8/Nu.QemgHbAkVxIbdVk5UJGTj1XY3xhRuNq"
SHA_SECRET = b"{SHA}" + base64.b64encode(hashlib.sha1(b"secret").digest())
APR1_SECRET = b"$apr1$hHNRmQ9b$5iaZacMpFIfoST6HjOveu/"  # openssl passwd -apr1 -salt hHNRmQ9b secret
CRYPT_SECRET = b"rlXh5DnK0bDBU"  # shape of an old DES crypt(3) hash
PLAIN_SECRET = b"secret"


def bcrypt_of(password: bytes, cost: int = 4, prefix: bytes = b"2y") -> bytes:
    hashed = bcrypt.hashpw(password, bcrypt.gensalt(rounds=cost))
    return b"$" + prefix + hashed[3:]


def test_fixture_hash_is_valid_bcrypt_for_secret():
    assert bcrypt.checkpw(b"secret", ALICE_2Y)


# ---- parse / serialise -------------------------------------------------------------------

@pytest.mark.parametrize("content", [
    b"",
    b"alice:" + ALICE_2Y + b"\n",
    b"alice:" + ALICE_2Y,  # no final newline
    b"# users for the registry\r\nalice:" + ALICE_2Y + b"\r\n\r\n",
    b"\n\n# only comments\n   \n",
    b"  alice:" + ALICE_2Y + b"  \n\tbob:x\n",
    b"caf\xe9:latin-1 name\n\xff\xfe garbage without colon\n",
    b"alice:" + ALICE_2Y + b"\nalice:" + SHA_SECRET + b"\n",
])
def test_parse_serialise_round_trip_is_byte_identical(content):
    assert _htpasswd.serialise(_htpasswd.parse(content)) == content


@pytest.mark.parametrize("content, names", [
    (b"", []),
    (b"# alice:commented out\nbob:x\n", ["bob"]),
    (b"  alice:h1  \r\n\n\tbob:h2", ["alice", "bob"]),
    (b"alice:h1\nbob:h2\nalice:h3\n", ["alice", "bob"]),
    (b"no colon here\ncarol:a:b:c\n", ["carol"]),
    (b"j\xc3\xbcrgen:h\n", ["j\u00fcrgen"]),
])
def test_user_names_follow_registry_parsing(content, names):
    assert _htpasswd.user_names(_htpasswd.parse(content)) == names


def test_entry_hash_is_everything_after_first_colon():
    (line,) = _htpasswd.parse(b"carol:a:b:c\n")
    assert (line.user, line.hash) == (b"carol", b"a:b:c")


def test_find_user_returns_every_entry():
    lines = _htpasswd.parse(b"alice:1\nbob:2\n#alice:3\nalice:4\n")
    assert _htpasswd.find_user(lines, "alice") == [0, 3]
    assert _htpasswd.find_user(lines, "bob") == [1]
    assert _htpasswd.find_user(lines, "carol") == []


@pytest.mark.parametrize("content, numbers", [
    (b"alice:x\n# comment\n\n", []),
    (b"alice:x\njunk\n\nmore junk", [2, 4]),
])
def test_invalid_line_numbers(content, numbers):
    assert _htpasswd.invalid_line_numbers(_htpasswd.parse(content)) == numbers


# ---- hash formats ---------------------------------------------------------------------------

@pytest.mark.parametrize("hashed, expected", [
    (ALICE_2Y, True),
    (b"$2b$" + ALICE_2Y[4:], True),
    (b"$2a$" + ALICE_2Y[4:], True),
    (ALICE_2Y.decode(), True),
    (b"$2y$12$" + ALICE_2Y[7:], True),
    (b"$2x$" + ALICE_2Y[4:], False),  # the variant with the sign-extension bug
    (b"$2y$03$" + ALICE_2Y[7:], False),
    (b"$2y$32$" + ALICE_2Y[7:], False),
    (ALICE_2Y[:-1], False),
    (ALICE_2Y + b"x", False),
    (SHA_SECRET, False),
    (APR1_SECRET, False),
    (CRYPT_SECRET, False),
    (PLAIN_SECRET, False),
    (b"", False),
])
def test_is_bcrypt(hashed, expected):
    assert _htpasswd.is_bcrypt(hashed) is expected


@pytest.mark.parametrize("cost", [4, 5, 6])
def test_hash_password_writes_2y_with_the_cost(cost):
    hashed = _htpasswd.hash_password(b"s3cret", cost)
    assert hashed.startswith(b"$2y$%02d$" % cost)
    assert _htpasswd.is_bcrypt(hashed)
    # bcrypt itself (not our verify) accepts it
    assert bcrypt.checkpw(b"s3cret", hashed)
    assert not bcrypt.checkpw(b"s3cret!", hashed)


def test_hash_password_is_salted():
    assert _htpasswd.hash_password(b"same", 4) != _htpasswd.hash_password(b"same", 4)


@pytest.mark.parametrize("password, hashed, expected", [
    (b"secret", ALICE_2Y, True),
    (b"Secret", ALICE_2Y, False),
    (b"secret", b"$2b$" + ALICE_2Y[4:], True),
    (b"secret", b"$2a$" + ALICE_2Y[4:], True),
    (b"secret", SHA_SECRET, False),
    (b"secret", APR1_SECRET, False),
    (b"secret", PLAIN_SECRET, False),
    (b"secret", b"$2y$04$" + b"!" * 53, False),
])
def test_verify_password(password, hashed, expected):
    assert _htpasswd.verify_password(password, hashed) is expected


# ---- validation -----------------------------------------------------------------------------

@pytest.mark.parametrize("name, fragment", [
    ("", "empty"),
    ("ali:ce", "':'"),
    ("ali\nce", "newline"),
    ("ali\rce", "carriage return"),
    ("ali\0ce", "NUL"),
    (" alice", "whitespace"),
    ("alice\t", "whitespace"),
    ("#alice", "comment"),
    ("ali\udcffce", "UTF-8"),
])
def test_validate_name_rejects(name, fragment):
    with pytest.raises(InvalidInput) as exc:
        _htpasswd.validate_name(name)
    assert fragment in str(exc.value)
    assert exc.value.kind == "invalid_input"


@pytest.mark.parametrize("name", ["alice", "ci-robot", "a.b_c@example.com", "j\u00fcrgen", "x" * 200, "al ice"])
def test_validate_name_accepts(name):
    assert _htpasswd.validate_name(name) == name.encode("utf-8")


@pytest.mark.parametrize("password, fragment", [
    ("", "empty"),
    (None, "empty"),
    ("a" * 73, "73 bytes"),
    ("\u00e9" * 37, "74 bytes"),  # 37 characters, 74 bytes in UTF-8
    ("\U0001f433" * 19, "76 bytes"),
    ("abc\0def", "NUL"),
    ("\udcff", "UTF-8"),
])
def test_validate_password_rejects(password, fragment):
    with pytest.raises(InvalidInput) as exc:
        _htpasswd.validate_password(password)
    assert fragment in str(exc.value)
    if password:
        assert password not in str(exc.value)


def test_validate_password_over_72_says_so_and_does_not_truncate():
    with pytest.raises(InvalidInput) as exc:
        _htpasswd.validate_password("p" * 100)
    assert "72" in str(exc.value)
    assert "truncate" in str(exc.value)


@pytest.mark.parametrize("password", ["a", "a" * 72, "\u00e9" * 36, "pass:word with spaces"])
def test_validate_password_accepts_up_to_72_bytes(password):
    assert _htpasswd.validate_password(password) == password.encode("utf-8")


@pytest.mark.parametrize("cost", [3, 32, 0, -1, True, "5", 5.0])
def test_validate_cost_rejects(cost):
    with pytest.raises(InvalidInput):
        _htpasswd.validate_cost(cost)


@pytest.mark.parametrize("cost", [4, 5, 12, 31])
def test_validate_cost_accepts(cost):
    assert _htpasswd.validate_cost(cost) == cost


# ---- set_user -------------------------------------------------------------------------------

def entry_hash(content: bytes, name: str) -> bytes:
    lines = _htpasswd.parse(content)
    (index,) = _htpasswd.find_user(lines, name)
    return lines[index].hash


def test_set_user_adds_to_empty_content():
    change = _htpasswd.set_user(b"", "alice", "secret", cost=4)
    assert change.changed and change.action == "added"
    assert change.before == [] and change.after == ["alice"]
    assert change.content.startswith(b"alice:$2y$04$") and change.content.endswith(b"\n")
    assert bcrypt.checkpw(b"secret", entry_hash(change.content, "alice"))


@pytest.mark.parametrize("old", [
    b"# registry users\n\nbob:" + ALICE_2Y + b"\n",
    b"bob:" + SHA_SECRET + b"\r\n# trailing comment\r\n",
    b"caf\xe9:not utf-8\n   \n",
])
def test_set_user_appends_and_keeps_other_bytes(old):
    change = _htpasswd.set_user(old, "alice", "secret", cost=4)
    assert change.changed and change.action == "added"
    assert change.content.startswith(old)
    new_line = change.content[len(old):]
    assert new_line.startswith(b"alice:$2y$04$") and new_line.count(b"\n") == 1


def test_set_user_terminates_a_last_line_without_newline():
    old = b"bob:" + ALICE_2Y
    change = _htpasswd.set_user(old, "alice", "secret", cost=4)
    assert change.content.startswith(old + b"\nalice:")
    assert _htpasswd.user_names(_htpasswd.parse(change.content)) == ["bob", "alice"]


def test_set_user_is_idempotent_when_hash_verifies():
    old = b"# c\nalice:" + ALICE_2Y + b"\nbob:x\n"
    change = _htpasswd.set_user(old, "alice", "secret", cost=5)
    assert not change.changed and change.action == "unchanged"
    assert change.content == old
    assert change.before == change.after == ["alice", "bob"]


@pytest.mark.parametrize("prefix", [b"2a", b"2b", b"2y"])
def test_set_user_accepts_any_bcrypt_prefix_and_cost(prefix):
    old = b"alice:" + bcrypt_of(b"secret", cost=6, prefix=prefix) + b"\n"
    change = _htpasswd.set_user(old, "alice", "secret", cost=4)
    assert not change.changed
    assert change.content == old


def test_set_user_updates_in_place_keeping_line_ending_and_neighbours():
    old = b"# head\r\nalice:" + ALICE_2Y + b"\r\nbob:x\r\n"
    change = _htpasswd.set_user(old, "alice", "n3w", cost=4)
    assert change.changed and change.action == "updated"
    lines = _htpasswd.parse(change.content)
    assert lines[0].raw == b"# head\r\n"
    assert lines[1].raw.endswith(b"\r\n") and lines[1].user == b"alice"
    assert lines[2].raw == b"bob:x\r\n"
    assert bcrypt.checkpw(b"n3w", lines[1].hash)


@pytest.mark.parametrize("stored", [SHA_SECRET, APR1_SECRET, CRYPT_SECRET, PLAIN_SECRET, b"$2x$" + ALICE_2Y[4:]])
def test_set_user_rehashes_non_bcrypt_even_with_the_same_password(stored):
    old = b"alice:" + stored + b"\nbob:" + ALICE_2Y + b"\n"
    change = _htpasswd.set_user(old, "alice", "secret", cost=4)
    assert change.changed and change.action == "rehashed"
    new_hash = entry_hash(change.content, "alice")
    assert _htpasswd.is_bcrypt(new_hash) and bcrypt.checkpw(b"secret", new_hash)
    assert change.content.endswith(b"\nbob:" + ALICE_2Y + b"\n")


@pytest.mark.parametrize("stored", [ALICE_2Y, SHA_SECRET])
def test_set_user_on_create_never_touches_existing(stored):
    old = b"alice:" + stored + b"\n"
    change = _htpasswd.set_user(old, "alice", "other", cost=4, update_password="on_create")
    assert not change.changed and change.action == "kept"
    assert change.content == old


def test_set_user_on_create_adds_missing_user():
    change = _htpasswd.set_user(b"", "alice", "secret", cost=4, update_password="on_create")
    assert change.changed and change.action == "added"


def test_set_user_drops_duplicates_and_keeps_first_position():
    old = b"alice:" + ALICE_2Y + b"\nbob:x\nalice:" + SHA_SECRET + b"\n"
    change = _htpasswd.set_user(old, "alice", "secret", cost=4)
    assert change.changed and change.action == "deduplicated" and change.duplicates_removed == 1
    assert change.content == b"alice:" + ALICE_2Y + b"\nbob:x\n"


def test_set_user_duplicates_with_wrong_password_are_replaced_by_one_entry():
    old = b"alice:" + SHA_SECRET + b"\nalice:" + ALICE_2Y + b"\n"
    change = _htpasswd.set_user(old, "alice", "other", cost=4)
    assert change.changed and change.action == "rehashed" and change.duplicates_removed == 1
    assert _htpasswd.user_names(_htpasswd.parse(change.content)) == ["alice"]
    assert bcrypt.checkpw(b"other", entry_hash(change.content, "alice"))


@pytest.mark.parametrize("kwargs", [
    dict(name="", password="x"),
    dict(name="a:b", password="x"),
    dict(name="alice", password=""),
    dict(name="alice", password="x" * 73),
    dict(name="alice", password="x", cost=3),
    dict(name="alice", password="x", update_password="sometimes"),
])
def test_set_user_rejects_bad_input(kwargs):
    with pytest.raises(InvalidInput):
        _htpasswd.set_user(b"bob:x\n", **kwargs)


# ---- remove_user ----------------------------------------------------------------------------

def test_remove_user_removes_every_entry_and_keeps_the_rest():
    old = b"# c\r\nalice:1\nbob:2\n\n  alice:3  \ncarol:4"
    change = _htpasswd.remove_user(old, "alice")
    assert change.changed and change.action == "removed" and change.duplicates_removed == 1
    assert change.content == b"# c\r\nbob:2\n\ncarol:4"
    assert change.before == ["alice", "bob", "carol"] and change.after == ["bob", "carol"]


def test_remove_user_absent_changes_nothing():
    old = b"bob:2\n# alice:1\n"
    change = _htpasswd.remove_user(old, "alice")
    assert not change.changed and change.action == "absent"
    assert change.content == old


def test_remove_user_validates_name():
    with pytest.raises(InvalidInput):
        _htpasswd.remove_user(b"", "a:b")


# ---- validate_users / apply_users (list mode) -------------------------------------------------

def test_validate_users_reports_every_problem_at_once_without_passwords():
    users = [
        dict(name="e:ve", password="pw-eve"),
        dict(name="alice", password="pw-alice"),
        dict(name="bob", password=None),
        dict(name="alice", password="pw-alice-2"),
        dict(name="dave", password="\u00e9" * 37),
        dict(name="carol", password=""),
    ]
    with pytest.raises(InvalidInput) as caught:
        _htpasswd.validate_users(users)
    message = str(caught.value)
    assert message.startswith("users is invalid: ") and message.endswith("Nothing was changed.")
    assert "entry 1: The user name 'e:ve' contains ':'" in message
    assert "user 'bob': The password is empty" in message
    assert "user 'alice' is listed more than once (entries 2 and 4)" in message
    assert "user 'dave': The password is 74 bytes long" in message
    assert "user 'carol': The password is empty" in message
    for secret in ("pw-eve", "pw-alice", "\u00e9" * 37):
        assert secret not in message


def test_validate_users_without_passwords_for_absent():
    assert _htpasswd.validate_users([dict(name="a"), dict(name="b", password=None)], require_passwords=False) == ["a", "b"]


def test_apply_users_adds_updates_and_keeps_in_one_pass():
    old = b"# users\nalice:" + ALICE_2Y + b"\nbob:" + SHA_SECRET + b"\n"
    change = _htpasswd.apply_users(old, [dict(name="alice", password="secret"), dict(name="bob", password="secret"),
                                         dict(name="carol", password="pw")], cost=4)
    assert change.changed and change.action == "changed"
    assert change.actions == {"alice": "unchanged", "bob": "rehashed", "carol": "added"}
    assert change.content.startswith(b"# users\nalice:" + ALICE_2Y + b"\nbob:$2y$04$")
    assert change.before == ["alice", "bob"] and change.after == ["alice", "bob", "carol"]


def test_apply_users_exclusive_removes_the_unlisted_and_keeps_comments():
    old = b"# users\nalice:" + ALICE_2Y + b"\r\nbob:x\n\nnot an entry\n\xff\xfe:y\nbob:z\n"
    change = _htpasswd.apply_users(old, [dict(name="alice", password="secret")], exclusive=True, cost=4)
    assert change.content == b"# users\nalice:" + ALICE_2Y + b"\r\n\nnot an entry\n"
    assert change.actions == {"alice": "unchanged", "bob": "removed", "\ufffd\ufffd": "removed"}
    assert change.after == ["alice"]


def test_apply_users_exclusive_with_no_users_empties_the_file():
    change = _htpasswd.apply_users(b"alice:" + ALICE_2Y + b"\n", [], exclusive=True)
    assert change.changed and change.content == b"" and change.actions == {"alice": "removed"}


def test_apply_users_unchanged_is_byte_identical():
    old = b"alice:" + ALICE_2Y + b"\n"
    change = _htpasswd.apply_users(old, [dict(name="alice", password="secret")], exclusive=True)
    assert not change.changed and change.content == old and change.action == "unchanged"


def test_apply_users_absent_removes_each_listed_user():
    old = b"alice:1\nbob:2\ncarol:3\n"
    change = _htpasswd.apply_users(old, [dict(name="alice"), dict(name="dave")], state="absent")
    assert change.content == b"bob:2\ncarol:3\n"
    assert change.actions == {"alice": "removed", "dave": "absent"}


def test_apply_users_exclusive_needs_state_present():
    with pytest.raises(InvalidInput, match="exclusive=true only works with state=present"):
        _htpasswd.apply_users(b"", [dict(name="a")], state="absent", exclusive=True)


def test_apply_users_validates_the_whole_list_before_hashing(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("hashed before the whole list was checked")
    monkeypatch.setattr(_htpasswd, "hash_password", never)
    with pytest.raises(InvalidInput, match="user 'b': The password is empty"):
        _htpasswd.apply_users(b"", [dict(name="a", password="pw"), dict(name="b", password="")])


def test_placeholder_hash_is_bcrypt_shaped_and_never_verifies():
    placeholder = _htpasswd.placeholder_hash(b"secret", 12)
    assert _htpasswd.is_bcrypt(placeholder) and placeholder.startswith(b"$2y$12$")
    assert not _htpasswd.verify_password(b"secret", placeholder)


def test_apply_users_with_the_placeholder_hasher_reports_like_the_real_one():
    old = b"alice:" + ALICE_2Y + b"\nbob:" + SHA_SECRET + b"\n"
    users = [dict(name="alice", password="secret"), dict(name="bob", password="secret"), dict(name="c", password="x")]
    real = _htpasswd.apply_users(old, users, exclusive=True, cost=4)
    check = _htpasswd.apply_users(old, users, exclusive=True, cost=4, hasher=_htpasswd.placeholder_hash)
    for field in ("changed", "actions", "before", "after"):
        assert getattr(check, field) == getattr(real, field)
