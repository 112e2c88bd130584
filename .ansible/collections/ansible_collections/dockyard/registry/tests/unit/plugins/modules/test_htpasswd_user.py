# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""htpasswd_user through its real main() on real temporary files.

The module runs exactly as Ansible runs it: arguments in, one JSON document on
stdout, exit code out. The only thing replaced is a system call, to inject a
failure where the machine cannot produce one on demand.
"""

from __future__ import annotations

import errno
import os
import stat

import bcrypt
import pytest

from ansible_collections.dockyard.registry.plugins.module_utils import _htpasswd
from ansible_collections.dockyard.registry.plugins.modules import htpasswd_user
from ansible_collections.dockyard.registry.tests.unit.plugins.modules.utils import Run
from ansible_collections.dockyard.registry.tests.unit.plugins.modules.utils import run_module as run_main

PASSWORD = "Sup3r-Secr3t-for-the-unit-tests"
OTHER_BCRYPT = b"$2y$04$FVr69PNa8cyXVHeVA8/Nu.QemgHbAkVxIbdVk5UJGTj1XY3xhRuNq"  # password "secret"


def run_module(capsys, check_mode: bool = False, diff: bool = False, **args) -> Run:
    args.setdefault("cost", 4)
    return run_main(capsys, htpasswd_user, check_mode=check_mode, diff=diff, **args)


def read(path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def write(path, content: bytes, mode: int = 0o644) -> None:
    with open(path, "wb") as handle:
        handle.write(content)
    os.chmod(path, mode)


def users(path) -> dict:
    lines = _htpasswd.parse(read(path))
    return {line.user.decode(): line.hash for line in lines if line.user is not None}


def fingerprint(path) -> tuple:
    st = os.stat(path)
    return read(path), st.st_ino, st.st_mtime_ns, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


@pytest.fixture
def htpasswd(tmp_path):
    """A file as people keep them: a comment, a blank line, a CRLF line, two users."""
    path = tmp_path / "htpasswd"
    write(path, b"# registry users\n\nbob:" + OTHER_BCRYPT + b"\r\ncarol:" + OTHER_BCRYPT + b"\n")
    return path


def warnings(run: Run) -> list:
    """Warning texts; ansible-core 2.19 returns them as structured WarningSummary objects."""
    texts = []
    for warning in run.result.get("warnings", []):
        if isinstance(warning, dict):
            warning = warning.get("event", warning).get("msg", "")
        texts.append(warning)
    return texts


def assert_no_secret(run: Run) -> None:
    assert PASSWORD not in run.stdout
    assert "$2y$" not in run.stdout and "$2b$" not in run.stdout


# ---- creation and idempotence ---------------------------------------------------------------

def test_creates_file_0600_with_a_verifying_bcrypt_entry(capsys, tmp_path):
    path = tmp_path / "htpasswd"
    run = run_module(capsys, path=str(path), name="alice", password=PASSWORD, diff=True)
    assert run.rc == 0 and run.result["changed"] is True
    assert run.result["created_file"] is True and run.result["action"] == "added"
    assert run.result["file"] == str(path) and run.result["user"] == "alice" and run.result["state"] == "present"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    stored = users(path)["alice"]
    assert stored.startswith(b"$2y$04$") and bcrypt.checkpw(PASSWORD.encode(), stored)
    assert run.result["diff"]["before"] == "" and run.result["diff"]["after"] == "alice\n"
    assert_no_secret(run)
    assert [p.name for p in tmp_path.iterdir()] == ["htpasswd"]  # no temporary files left


def test_new_file_takes_the_mode_option(capsys, tmp_path):
    path = tmp_path / "htpasswd"
    run = run_module(capsys, path=str(path), name="alice", password=PASSWORD, mode="0640")
    assert run.result["changed"] is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_second_run_changes_nothing_and_does_not_rewrite(capsys, htpasswd):
    first = run_module(capsys, path=str(htpasswd), name="alice", password=PASSWORD)
    assert first.result["changed"] is True
    before = fingerprint(htpasswd)
    second = run_module(capsys, path=str(htpasswd), name="alice", password=PASSWORD, diff=True)
    assert second.result["changed"] is False and second.result["action"] == "unchanged"
    assert fingerprint(htpasswd) == before


def test_adding_keeps_every_other_line_byte_for_byte(capsys, htpasswd):
    old = read(htpasswd)
    run = run_module(capsys, path=str(htpasswd), name="alice", password=PASSWORD)
    assert run.result["changed"] is True
    new = read(htpasswd)
    assert new.startswith(old) and new[len(old):].startswith(b"alice:$2y$04$")


def test_existing_hash_at_another_cost_is_kept(capsys, htpasswd):
    run = run_module(capsys, path=str(htpasswd), name="bob", password="secret", cost=10)
    assert run.result["changed"] is False
    assert users(htpasswd)["bob"] == OTHER_BCRYPT


def test_new_password_replaces_the_entry_in_place(capsys, htpasswd):
    old = read(htpasswd)
    run = run_module(capsys, path=str(htpasswd), name="bob", password=PASSWORD, diff=True)
    assert run.result["changed"] is True and run.result["action"] == "updated"
    new = read(htpasswd)
    assert new.startswith(b"# registry users\n\nbob:$2y$04$")
    assert new.endswith(b"\r\ncarol:" + OTHER_BCRYPT + b"\n")
    assert len(new) == len(old)
    assert bcrypt.checkpw(PASSWORD.encode(), users(htpasswd)["bob"])
    assert run.result["diff"]["before"] == run.result["diff"]["after"] == "bob\ncarol\n"


# ---- non-bcrypt entries ---------------------------------------------------------------------

@pytest.mark.parametrize("stored", [
    b"{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",  # "password"
    b"$apr1$hHNRmQ9b$5iaZacMpFIfoST6HjOveu/",
    b"plain-text",
])
def test_non_bcrypt_entry_is_rehashed(capsys, tmp_path, stored):
    path = tmp_path / "htpasswd"
    write(path, b"alice:" + stored + b"\nbob:" + OTHER_BCRYPT + b"\n")
    run = run_module(capsys, path=str(path), name="alice", password=PASSWORD)
    assert run.result["changed"] is True and run.result["action"] == "rehashed"
    assert bcrypt.checkpw(PASSWORD.encode(), users(path)["alice"])
    assert read(path).endswith(b"\nbob:" + OTHER_BCRYPT + b"\n")
    again = run_module(capsys, path=str(path), name="alice", password=PASSWORD)
    assert again.result["changed"] is False


# ---- update_password=on_create --------------------------------------------------------------

def test_on_create_leaves_an_existing_user_alone(capsys, htpasswd):
    before = fingerprint(htpasswd)
    run = run_module(capsys, path=str(htpasswd), name="bob", password=PASSWORD, update_password="on_create")
    assert run.result["changed"] is False and run.result["action"] == "kept"
    assert fingerprint(htpasswd) == before


def test_on_create_warns_about_an_unusable_existing_entry(capsys, tmp_path):
    path = tmp_path / "htpasswd"
    write(path, b"bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
    run = run_module(capsys, path=str(path), name="bob", password=PASSWORD, update_password="on_create")
    assert run.result["changed"] is False
    assert any("non-bcrypt" in warning for warning in warnings(run))


def test_on_create_adds_a_new_user(capsys, htpasswd):
    run = run_module(capsys, path=str(htpasswd), name="alice", password=PASSWORD, update_password="on_create")
    assert run.result["changed"] is True and "alice" in users(htpasswd)


# ---- state=absent ---------------------------------------------------------------------------

def test_absent_removes_the_user_and_keeps_the_rest(capsys, htpasswd):
    run = run_module(capsys, path=str(htpasswd), name="bob", state="absent", diff=True)
    assert run.result["changed"] is True and run.result["action"] == "removed"
    assert read(htpasswd) == b"# registry users\n\ncarol:" + OTHER_BCRYPT + b"\n"
    assert run.result["diff"]["before"] == "bob\ncarol\n" and run.result["diff"]["after"] == "carol\n"
    again = run_module(capsys, path=str(htpasswd), name="bob", state="absent")
    assert again.result["changed"] is False and again.result["action"] == "absent"


def test_absent_on_a_missing_file_creates_nothing(capsys, tmp_path):
    path = tmp_path / "htpasswd"
    run = run_module(capsys, path=str(path), name="bob", state="absent")
    assert run.rc == 0 and run.result["changed"] is False
    assert not path.exists()


def test_absent_needs_no_password(capsys, htpasswd):
    run = run_module(capsys, path=str(htpasswd), name="carol", state="absent")
    assert run.result["changed"] is True and "carol" not in users(htpasswd)


# ---- check mode and diff --------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    dict(name="alice", password=PASSWORD),
    dict(name="bob", password=PASSWORD),
    dict(name="bob", state="absent"),
    dict(name="bob", password="secret", mode="0600"),
])
def test_check_mode_reports_the_change_and_writes_nothing(capsys, htpasswd, args):
    before = fingerprint(htpasswd)
    run = run_module(capsys, check_mode=True, diff=True, path=str(htpasswd), **args)
    assert run.rc == 0 and run.result["changed"] is True
    assert fingerprint(htpasswd) == before
    assert sorted(p.name for p in htpasswd.parent.iterdir()) == ["htpasswd"]


def test_check_mode_does_not_create_the_file(capsys, tmp_path):
    path = tmp_path / "htpasswd"
    run = run_module(capsys, check_mode=True, diff=True, path=str(path), name="alice", password=PASSWORD)
    assert run.result["changed"] is True and run.result["created_file"] is True
    assert run.result["diff"]["after"] == "alice\n"
    assert list(tmp_path.iterdir()) == []


def test_check_mode_agrees_with_the_real_run_when_nothing_changes(capsys, htpasswd):
    run = run_module(capsys, check_mode=True, path=str(htpasswd), name="bob", password="secret")
    assert run.result["changed"] is False


def test_diff_lists_user_names_only(capsys, htpasswd):
    run = run_module(capsys, diff=True, path=str(htpasswd), name="alice", password=PASSWORD)
    diff = run.result["diff"]
    assert diff["before"] == "bob\ncarol\n"
    assert diff["after"] == "bob\ncarol\nalice\n"
    for text in (diff["before"], diff["after"]):
        assert "$2" not in text and ":" not in text
    assert_no_secret(run)


def test_diff_also_shows_a_mode_change(capsys, htpasswd):
    run = run_module(capsys, diff=True, path=str(htpasswd), name="bob", password="secret", mode="0600")
    assert run.result["changed"] is True
    diffs = run.result["diff"]
    diffs = diffs if isinstance(diffs, list) else [diffs]
    modes = [(d["before"]["mode"], d["after"]["mode"]) for d in diffs if isinstance(d["before"], dict)]
    assert modes == [("0644", "0600")]
    assert stat.S_IMODE(os.stat(htpasswd).st_mode) == 0o600


# ---- errors leave the file alone ------------------------------------------------------------

@pytest.mark.parametrize("password, fragment", [
    ("x" * 73, "73 bytes"),
    ("\u00e9" * 40, "80 bytes"),
])
def test_password_over_72_bytes_fails_and_leaves_the_file(capsys, htpasswd, password, fragment):
    before = fingerprint(htpasswd)
    run = run_module(capsys, path=str(htpasswd), name="alice", password=password)
    assert run.rc == 1 and run.failed
    assert fragment in run.result["msg"] and "72" in run.result["msg"]
    assert run.result["error_kind"] == "invalid_input"
    assert password not in run.stdout
    assert fingerprint(htpasswd) == before


@pytest.mark.parametrize("name, fragment", [
    ("a:b", "':'"),
    ("a\nb", "newline"),
    ("", "empty"),
    ("#admin", "comment"),
])
def test_bad_user_name_fails_clearly(capsys, htpasswd, name, fragment):
    before = fingerprint(htpasswd)
    run = run_module(capsys, path=str(htpasswd), name=name, password=PASSWORD)
    assert run.failed and fragment in run.result["msg"]
    assert fingerprint(htpasswd) == before


def test_empty_password_fails(capsys, htpasswd):
    run = run_module(capsys, path=str(htpasswd), name="alice", password="")
    assert run.failed and "empty" in run.result["msg"]


def test_present_without_password_fails(capsys, htpasswd):
    run = run_module(capsys, path=str(htpasswd), name="alice")
    assert run.failed and "password" in run.result["msg"]


@pytest.mark.parametrize("cost", [3, 32])
def test_cost_out_of_range_fails(capsys, htpasswd, cost):
    run = run_module(capsys, path=str(htpasswd), name="alice", password=PASSWORD, cost=cost)
    assert run.failed and "cost" in run.result["msg"]


def test_create_false_and_missing_file_fails(capsys, tmp_path):
    path = tmp_path / "htpasswd"
    run = run_module(capsys, path=str(path), name="alice", password=PASSWORD, create=False)
    assert run.failed and str(path) in run.result["msg"] and "create=false" in run.result["msg"]
    assert not path.exists()


def test_create_false_with_existing_file_works(capsys, htpasswd):
    run = run_module(capsys, path=str(htpasswd), name="alice", password=PASSWORD, create=False)
    assert run.result["changed"] is True and "alice" in users(htpasswd)


def test_missing_parent_directory_is_named(capsys, tmp_path):
    directory = tmp_path / "auth" / "nested"
    run = run_module(capsys, path=str(directory / "htpasswd"), name="alice", password=PASSWORD)
    assert run.failed and str(directory) in run.result["msg"] and "does not exist" in run.result["msg"]
    assert not (tmp_path / "auth").exists()


def test_path_that_is_a_directory_fails(capsys, tmp_path):
    run = run_module(capsys, path=str(tmp_path), name="alice", password=PASSWORD)
    assert run.failed and "directory" in run.result["msg"]


def fail_rename(monkeypatch) -> None:
    def broken_rename(src, dst, *args, **kwargs):
        raise OSError(errno.EIO, "injected I/O error")
    monkeypatch.setattr(os, "rename", broken_rename)


def test_failing_atomic_move_leaves_the_old_file(capsys, monkeypatch, htpasswd):
    before = fingerprint(htpasswd)
    fail_rename(monkeypatch)
    run = run_module(capsys, path=str(htpasswd), name="alice", password=PASSWORD)
    monkeypatch.undo()
    assert run.failed and "old file is unchanged" in run.result["msg"]
    assert fingerprint(htpasswd) == before
    assert sorted(p.name for p in htpasswd.parent.iterdir()) == ["htpasswd"]
    assert_no_secret(run)


def test_failing_atomic_move_of_a_new_file_leaves_no_file(capsys, monkeypatch, tmp_path):
    path = tmp_path / "htpasswd"
    fail_rename(monkeypatch)
    run = run_module(capsys, path=str(path), name="alice", password=PASSWORD)
    monkeypatch.undo()
    assert run.failed and "no file was created" in run.result["msg"]
    assert list(tmp_path.iterdir()) == []


def test_failing_fsync_leaves_the_old_file(capsys, monkeypatch, htpasswd):
    before = fingerprint(htpasswd)

    def broken_fsync(fd):
        raise OSError(errno.ENOSPC, "injected: no space left on device")
    monkeypatch.setattr(os, "fsync", broken_fsync)
    run = run_module(capsys, path=str(htpasswd), name="bob", state="absent")
    monkeypatch.undo()
    assert run.failed and "no space" in run.result["msg"]
    assert fingerprint(htpasswd) == before
    assert sorted(p.name for p in htpasswd.parent.iterdir()) == ["htpasswd"]


# ---- mode, owner, links ---------------------------------------------------------------------

@pytest.mark.parametrize("mode", [0o600, 0o640, 0o644])
def test_rewrite_keeps_the_mode(capsys, htpasswd, mode):
    os.chmod(htpasswd, mode)
    run = run_module(capsys, path=str(htpasswd), name="alice", password=PASSWORD)
    assert run.result["changed"] is True
    assert stat.S_IMODE(os.stat(htpasswd).st_mode) == mode


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_rewrite_keeps_the_owner(capsys, htpasswd):
    os.chown(htpasswd, 4242, 4343)
    inode = os.stat(htpasswd).st_ino
    run = run_module(capsys, path=str(htpasswd), name="bob", state="absent")
    assert run.result["changed"] is True
    st = os.stat(htpasswd)
    assert st.st_ino != inode  # really replaced, not edited in place
    assert (st.st_uid, st.st_gid) == (4242, 4343)


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_owner_and_group_options_apply(capsys, htpasswd):
    run = run_module(capsys, path=str(htpasswd), name="bob", password="secret", owner="4242", group="4343")
    assert run.result["changed"] is True
    st = os.stat(htpasswd)
    assert (st.st_uid, st.st_gid) == (4242, 4343)


def test_writes_through_a_symlink(capsys, htpasswd):
    link = htpasswd.parent / "link"
    link.symlink_to(htpasswd.name)
    run = run_module(capsys, path=str(link), name="alice", password=PASSWORD)
    assert run.result["changed"] is True and run.result["file"] == str(htpasswd)
    assert link.is_symlink() and "alice" in users(htpasswd)


def test_warns_about_lines_the_registry_cannot_parse(capsys, tmp_path):
    path = tmp_path / "htpasswd"
    write(path, b"bob:" + OTHER_BCRYPT + b"\nthis is not an entry\n")
    run = run_module(capsys, path=str(path), name="alice", password=PASSWORD)
    assert run.result["changed"] is True
    assert any("line 2" in warning for warning in warnings(run))
    assert b"\nthis is not an entry\n" in read(path)


# ---- secrets --------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    dict(name="alice"),
    dict(name="bob"),
    dict(name="bob", update_password="on_create"),
    dict(name="alice", create=False, path_suffix="-missing"),
])
def test_password_never_appears_in_the_output(capsys, htpasswd, args):
    args = dict(args)
    path = str(htpasswd) + args.pop("path_suffix", "")
    run = run_module(capsys, diff=True, path=path, password=PASSWORD, **args)
    assert "invocation" in run.result  # the arguments are echoed, censored
    assert run.result["invocation"]["module_args"]["password"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert_no_secret(run)


# ---- list mode (users, exclusive) -----------------------------------------------------------

USERS = [dict(name="alice", password=PASSWORD + "-a"), dict(name="bob", password="secret"),
         dict(name="dave", password=PASSWORD + "-d")]


def test_users_list_adds_all_in_one_write(capsys, htpasswd):
    inode = os.stat(htpasswd).st_ino
    run = run_module(capsys, diff=True, path=str(htpasswd), users=USERS)
    assert run.rc == 0 and run.result["changed"] is True
    assert run.result["actions"] == {"alice": "added", "bob": "unchanged", "dave": "added"}
    assert "user" not in run.result and "action" not in run.result
    assert run.result["msg"] == "added 'alice', 'dave'; unchanged 'bob'"
    stored = users(htpasswd)
    assert sorted(stored) == ["alice", "bob", "carol", "dave"]
    assert bcrypt.checkpw((PASSWORD + "-a").encode(), stored["alice"])
    assert run.result["diff"]["before"] == "bob\ncarol\n" and run.result["diff"]["after"] == "bob\ncarol\nalice\ndave\n"
    assert os.stat(htpasswd).st_ino != inode
    again = run_module(capsys, path=str(htpasswd), users=USERS)
    assert again.result["changed"] is False


def test_users_exclusive_removes_everyone_else_check_mode_first(capsys, htpasswd):
    before = fingerprint(htpasswd)
    check = run_module(capsys, check_mode=True, diff=True, path=str(htpasswd), users=USERS[:2], exclusive=True)
    assert check.result["changed"] is True and fingerprint(htpasswd) == before
    assert check.result["actions"] == {"alice": "added", "bob": "unchanged", "carol": "removed"}
    assert check.result["diff"]["after"] == "bob\nalice\n"
    real = run_module(capsys, diff=True, path=str(htpasswd), users=USERS[:2], exclusive=True)
    assert real.result["actions"] == check.result["actions"] and real.result["diff"] == check.result["diff"]
    assert sorted(users(htpasswd)) == ["alice", "bob"]
    assert read(htpasswd).startswith(b"# registry users\n\nbob:")
    again = run_module(capsys, check_mode=True, path=str(htpasswd), users=USERS[:2], exclusive=True)
    assert again.result["changed"] is False


def test_exclusive_with_a_single_name(capsys, htpasswd):
    run = run_module(capsys, path=str(htpasswd), name="bob", password="secret", exclusive=True)
    assert run.result["changed"] is True and run.result["action"] == "unchanged"
    assert run.result["actions"] == {"bob": "unchanged", "carol": "removed"}
    assert sorted(users(htpasswd)) == ["bob"]


def test_users_empty_and_exclusive_creates_an_empty_file(capsys, tmp_path):
    # The registry makes a file with a generated user of its own when the file is missing.
    path = tmp_path / "htpasswd"
    run = run_module(capsys, path=str(path), users=[], exclusive=True)
    assert run.result["changed"] is True and run.result["created_file"] is True
    assert read(path) == b"" and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = run_module(capsys, path=str(path), users=[], exclusive=True)
    assert again.result["changed"] is False


def test_users_absent_removes_the_listed(capsys, htpasswd):
    run = run_module(capsys, path=str(htpasswd), users=[dict(name="bob"), dict(name="zoe")], state="absent")
    assert run.result["actions"] == {"bob": "removed", "zoe": "absent"}
    assert sorted(users(htpasswd)) == ["carol"]


def test_users_list_is_checked_whole_before_the_file_is_touched(capsys, htpasswd):
    before = fingerprint(htpasswd)
    bad = [dict(name="alice", password=PASSWORD), dict(name="e:ve", password=PASSWORD),
           dict(name="bob", password=None), dict(name="alice", password=PASSWORD)]
    run = run_module(capsys, path=str(htpasswd), users=bad, exclusive=True)
    assert run.failed and run.result["error_kind"] == "invalid_input"
    for fragment in ("entry 2: The user name 'e:ve' contains ':'", "user 'bob': The password is empty",
                     "user 'alice' is listed more than once (entries 1 and 4)", "Nothing was changed"):
        assert fragment in run.result["msg"]
    assert fingerprint(htpasswd) == before
    assert_no_secret(run)


@pytest.mark.parametrize("args, fragment", [
    (dict(name="a", users=[dict(name="b", password=PASSWORD)]), "mutually exclusive: name|users"),
    (dict(password=PASSWORD, users=[dict(name="b", password=PASSWORD)]), "mutually exclusive: password|users"),
    (dict(), "one of the following is required: name, users"),
    (dict(name="a", state="absent", exclusive=True), "exclusive=true only works with state=present"),
    (dict(name="a", password=PASSWORD, lock_timeout=-1), "lock_timeout must be from 0 to 3600 seconds, got -1"),
    (dict(name="a", password=PASSWORD, lock_timeout=3601), "lock_timeout must be from 0 to 3600"),
    (dict(name="a", password=PASSWORD, cost=32), "cost must be an integer from 4 to 31"),
])
def test_option_errors(capsys, htpasswd, args, fragment):
    before = fingerprint(htpasswd)
    run = run_module(capsys, path=str(htpasswd), **args)
    assert run.failed and fragment in run.result["msg"]
    assert fingerprint(htpasswd) == before


def test_users_passwords_never_appear_in_the_output(capsys, htpasswd):
    secrets = [dict(name="alice", password="first-Secr3t-a"), dict(name="zed", password="second-Secr3t-z")]
    for check_mode in (True, False):
        run = run_module(capsys, check_mode=check_mode, diff=True, path=str(htpasswd), users=secrets, exclusive=True)
        censored = run.result["invocation"]["module_args"]["users"]
        assert [entry["password"] for entry in censored] == ["VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"] * 2
        for entry in secrets:
            assert entry["password"] not in run.stdout
        assert "$2y$" not in run.stdout


def test_check_mode_with_a_missing_directory_says_so(capsys, tmp_path):
    path = tmp_path / "auth" / "htpasswd"
    run = run_module(capsys, check_mode=True, path=str(path), users=USERS, exclusive=True)
    assert run.rc == 0 and run.result["changed"] is True and run.result["created_file"] is True
    assert "its directory %s does not exist yet" % (tmp_path / "auth") in run.result["msg"]
    assert list(tmp_path.iterdir()) == []


# ---- special files, locking, concurrency ----------------------------------------------------

def test_a_fifo_is_refused_at_once(capsys, tmp_path):
    import threading
    path = tmp_path / "htpasswd"
    os.mkfifo(str(path))
    box = {}

    def attempt():
        box["run"] = run_module(capsys, path=str(path), name="alice", password=PASSWORD)
    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(10)
    try:
        assert not thread.is_alive(), "htpasswd_user blocked on a FIFO"
    finally:
        try:
            os.close(os.open(str(path), os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    run = box["run"]
    assert run.failed and run.result["error_kind"] == "invalid_input"
    assert "htpasswd file %s is a FIFO (named pipe), not a regular file" % path in run.result["msg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["htpasswd"]


def test_a_symlink_to_a_directory_is_refused(capsys, tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to("dir")
    run = run_module(capsys, path=str(tmp_path / "link"), name="alice", password=PASSWORD)
    assert run.failed and "is a directory, not a regular file" in run.result["msg"]


def test_lock_held_elsewhere_times_out_with_a_clear_error(capsys, htpasswd):
    from ansible_collections.dockyard.registry.plugins.module_utils import _io
    before = fingerprint(htpasswd)
    with _io.FileLock(str(htpasswd)):
        run = run_module(capsys, path=str(htpasswd), name="alice", password=PASSWORD, lock_timeout=0)
    assert run.failed and run.result["error_kind"] == "lock_timeout"
    assert "%s.lock on htpasswd file %s" % (htpasswd, htpasswd) in run.result["msg"]
    assert "held by pid %d" % os.getpid() in run.result["msg"]
    assert fingerprint(htpasswd) == before


def test_parallel_runs_keep_every_user(tmp_path):
    # Eight separate module processes, as a loop with async or several plays start them.
    # Before the lock, each read the same old file and the last rename won (1 of 8 left).
    import json
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.dirname(os.path.abspath(htpasswd_user.__file__)))))))
    path = tmp_path / "htpasswd"
    # The collection root, and ansible itself where this test run found it: on a managed-node
    # Python ansible-test provides ansible through the path, not through site-packages.
    import ansible
    ansible_lib = os.path.dirname(os.path.dirname(os.path.abspath(ansible.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [root, ansible_lib] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    processes = []
    for number in range(8):
        args = tmp_path / ("args%d.json" % number)
        args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {
            "path": str(path), "name": "user%d" % number, "password": "pw-%d" % number, "cost": 10}}))
        processes.append(subprocess.Popen([sys.executable, htpasswd_user.__file__, str(args)], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    results = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        results.append(json.loads(out))
    assert [result["action"] for result in results] == ["added"] * 8
    stored = users(path)
    assert sorted(stored) == ["user%d" % number for number in range(8)]
    assert all(bcrypt.checkpw(("pw-%d" % n).encode(), stored["user%d" % n]) for n in range(8))
    assert not os.path.exists(str(path) + ".lock")


def test_check_mode_spends_no_cpu_on_new_hashes(capsys, htpasswd, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("check mode hashed a password")
    monkeypatch.setattr(_htpasswd, "hash_password", never)
    run = run_module(capsys, check_mode=True, path=str(htpasswd), users=USERS, exclusive=True)
    assert run.rc == 0 and run.result["actions"]["alice"] == "added"
