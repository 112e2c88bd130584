# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""_io on real files, FIFOs, sockets, devices and real concurrent processes.

Only SELinux is a stand-in: this machine's kernel has it disabled, so a recording binding
with the shape of ansible.module_utils.compat.selinux checks which context goes where.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import socket
import stat
import threading
import time

import pytest

from ansible_collections.dockyard.registry.plugins.module_utils import _io
from ansible_collections.dockyard.registry.plugins.module_utils._errors import (
    InvalidInput,
    LockTimeout,
    RegistryError,
)


def fingerprint(path) -> tuple:
    st = os.stat(path)
    with open(path, "rb") as handle:
        content = handle.read()
    return content, st.st_ino, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def in_thread(function, *args, **kwargs):
    """Run ``function`` in a thread; returns (finished, result or exception) after at most 10 s."""
    box = {}

    def target():
        try:
            box["result"] = function(*args, **kwargs)
        except BaseException as exc:  # noqa: B902 - handed back to the test
            box["result"] = exc
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(10)
    return not thread.is_alive(), box.get("result")


def unblock_fifo(path) -> None:
    """Open the write side so that a reader stuck in open() returns (for a failing test)."""
    try:
        os.close(os.open(str(path), os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(str(path))
    yield path
    unblock_fifo(path)


# ---- require_regular_file / read_file --------------------------------------------------------

def test_read_file_returns_bytes_and_none_for_missing(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"a\r\nb\n\x00\xff")
    assert _io.read_file(str(path)) == b"a\r\nb\n\x00\xff"
    assert _io.read_file(str(tmp_path / "missing")) is None


def test_read_file_refuses_a_fifo_at_once(fifo):
    finished, result = in_thread(_io.read_file, str(fifo), "htpasswd file")
    assert finished, "read_file blocked on a FIFO"
    assert isinstance(result, InvalidInput)
    assert "htpasswd file %s is a FIFO (named pipe), not a regular file" % fifo in str(result)


def test_read_file_refuses_a_fifo_swapped_in_after_the_check(fifo, monkeypatch):
    # The type check before open() passes (as if the file was regular then); the descriptor
    # check must still refuse, and the non-blocking open must not hang.
    monkeypatch.setattr(_io, "require_regular_file", lambda path, what="file": os.stat(__file__))
    finished, result = in_thread(_io.read_file, str(fifo))
    assert finished, "read_file blocked on a FIFO"
    assert isinstance(result, InvalidInput) and "FIFO" in str(result)


def test_read_file_follows_a_symlink_to_a_regular_file(tmp_path):
    (tmp_path / "real").write_bytes(b"content")
    (tmp_path / "link").symlink_to("real")
    assert _io.read_file(str(tmp_path / "link")) == b"content"


def test_read_file_refuses_a_symlink_to_a_fifo(tmp_path, fifo):
    (tmp_path / "link").symlink_to(fifo.name)
    finished, result = in_thread(_io.read_file, str(tmp_path / "link"))
    assert finished and isinstance(result, InvalidInput) and "FIFO" in str(result)


def test_read_file_refuses_a_directory(tmp_path):
    with pytest.raises(InvalidInput, match="is a directory, not a regular file"):
        _io.read_file(str(tmp_path))


def test_read_file_refuses_a_character_device():
    with pytest.raises(InvalidInput, match="/dev/null is a character device"):
        _io.read_file("/dev/null")


def test_read_file_refuses_a_socket(tmp_path):
    path = str(tmp_path / "sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(path)
        with pytest.raises(InvalidInput, match="is a socket"):
            _io.read_file(path)
    finally:
        server.close()


def test_require_regular_file_with_a_file_as_directory_component(tmp_path):
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(InvalidInput, match="not a directory"):
        _io.require_regular_file(str(tmp_path / "file" / "child"))


# ---- atomic_write ----------------------------------------------------------------------------

def test_atomic_write_creates_a_0600_file_and_leaves_nothing_else(tmp_path):
    path = tmp_path / "new"
    assert _io.atomic_write(str(path), b"data\n") is True
    assert path.read_bytes() == b"data\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["new"]


def test_atomic_write_new_file_mode_and_forced_mode(tmp_path):
    _io.atomic_write(str(tmp_path / "a"), b"", new_file_mode=0o640)
    assert stat.S_IMODE(os.stat(tmp_path / "a").st_mode) == 0o640
    (tmp_path / "b").write_bytes(b"old")
    os.chmod(tmp_path / "b", 0o644)
    assert _io.atomic_write(str(tmp_path / "b"), b"new", mode=0o600) is False
    assert stat.S_IMODE(os.stat(tmp_path / "b").st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o644, 0o604])
def test_atomic_write_keeps_the_mode_and_replaces_the_inode(tmp_path, mode):
    path = tmp_path / "f"
    path.write_bytes(b"old")
    os.chmod(path, mode)
    inode = os.stat(path).st_ino
    _io.atomic_write(str(path), b"new")
    st = os.stat(path)
    assert path.read_bytes() == b"new" and stat.S_IMODE(st.st_mode) == mode
    assert st.st_ino != inode


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_atomic_write_keeps_the_owner(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"old")
    os.chown(path, 4242, 4343)
    _io.atomic_write(str(path), b"new")
    st = os.stat(path)
    assert (st.st_uid, st.st_gid) == (4242, 4343)


def test_atomic_write_through_a_symlink_keeps_the_link(tmp_path):
    (tmp_path / "real").write_bytes(b"old")
    (tmp_path / "link").symlink_to("real")
    _io.atomic_write(str(tmp_path / "link"), b"new")
    assert (tmp_path / "link").is_symlink() and (tmp_path / "real").read_bytes() == b"new"


def test_atomic_write_refuses_to_replace_a_fifo(fifo):
    with pytest.raises(InvalidInput, match="FIFO"):
        _io.atomic_write(str(fifo), b"new")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_atomic_write_needs_the_directory(tmp_path):
    with pytest.raises(InvalidInput, match="directory %s .* does not exist" % (tmp_path / "missing")):
        _io.atomic_write(str(tmp_path / "missing" / "f"), b"")


def test_failed_rename_keeps_the_old_file_and_removes_the_temporary(tmp_path, monkeypatch):
    path = tmp_path / "f"
    path.write_bytes(b"old")
    before = fingerprint(path)

    def broken(src, dst):
        raise OSError(errno.EIO, "injected I/O error")
    monkeypatch.setattr(os, "rename", broken)
    with pytest.raises(RegistryError, match="the old file is unchanged: injected I/O error"):
        _io.atomic_write(str(path), b"new", what="htpasswd file")
    monkeypatch.undo()
    assert fingerprint(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_failed_write_of_a_new_file_leaves_nothing(tmp_path, monkeypatch):
    def broken(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(RegistryError, match="no file was created: No space left"):
        _io.atomic_write(str(tmp_path / "f"), b"new")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


class RecordingSELinux:
    """The shape of ansible.module_utils.compat.selinux, recording what is asked of it."""

    def __init__(self, fail_set: bool = False) -> None:
        self.calls = []
        self.fail_set = fail_set

    def is_selinux_enabled(self):
        return 1

    def lgetfilecon_raw(self, path):
        self.calls.append(("get", path))
        return [0, "system_u:object_r:container_file_t:s0"]

    def matchpathcon(self, path, mode):
        self.calls.append(("match", path, mode))
        return [0, "system_u:object_r:etc_t:s0"]

    def lsetfilecon(self, path, context):
        self.calls.append(("set", path, context, os.path.exists(path)))
        if self.fail_set:
            raise OSError(errno.EPERM, "Operation not permitted")
        return 0


def test_selinux_context_of_the_old_file_is_set_on_the_new_one_before_the_rename(tmp_path, monkeypatch):
    fake = RecordingSELinux()
    monkeypatch.setattr(_io, "_selinux", fake)
    path = tmp_path / "f"
    path.write_bytes(b"old")
    _io.atomic_write(str(path), b"new")
    assert fake.calls[0] == ("get", str(path))
    kind, target, context, existed = fake.calls[1]
    assert kind == "set" and context == "system_u:object_r:container_file_t:s0" and existed
    assert target != str(path) and os.path.dirname(target) == str(tmp_path)  # the temporary file
    assert path.read_bytes() == b"new"


def test_selinux_default_context_for_a_new_file(tmp_path, monkeypatch):
    fake = RecordingSELinux()
    monkeypatch.setattr(_io, "_selinux", fake)
    _io.atomic_write(str(tmp_path / "f"), b"new")
    assert fake.calls[0] == ("match", str(tmp_path / "f"), stat.S_IFREG | 0o600)
    assert fake.calls[1][0] == "set" and fake.calls[1][2] == "system_u:object_r:etc_t:s0"


def test_selinux_failure_keeps_the_old_file(tmp_path, monkeypatch):
    monkeypatch.setattr(_io, "_selinux", RecordingSELinux(fail_set=True))
    path = tmp_path / "f"
    path.write_bytes(b"old")
    with pytest.raises(RegistryError, match="SELinux context"):
        _io.atomic_write(str(path), b"new")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f"]


# ---- FileLock --------------------------------------------------------------------------------

def _increment(path: str, rounds: int, use_lock: bool, barrier) -> None:
    """One process: read a counter, pause, write it back plus one."""
    barrier.wait(60)
    for dummy in range(rounds):
        if use_lock:
            lock = _io.FileLock(path, timeout=60)
            lock.acquire()
        try:
            value = int((_io.read_file(path) or b"0").decode())
            time.sleep(0.002)  # widen the window between read and rename
            _io.atomic_write(path, str(value + 1).encode())
        finally:
            if use_lock:
                lock.release()


def _run_processes(path: str, use_lock: bool, processes: int = 6, rounds: int = 15) -> int:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(processes)
    workers = [context.Process(target=_increment, args=(path, rounds, use_lock, barrier))
               for dummy in range(processes)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    return int(_io.read_file(path).decode())


def test_lock_serialises_read_modify_write_across_processes(tmp_path):
    path = str(tmp_path / "counter")
    assert _run_processes(path, use_lock=True) == 6 * 15
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter"]  # the lock file is removed


def test_without_the_lock_updates_are_lost(tmp_path):
    # The other half of the test above: the same work without the lock does lose updates here,
    # so the test above proves the lock and not luck.
    path = str(tmp_path / "counter")
    assert _run_processes(path, use_lock=False) < 6 * 15


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.hook = None

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        if self.hook is not None:
            hook, self.hook = self.hook, None
            hook()


def test_lock_timeout_names_the_lock_file_and_the_holder(tmp_path):
    path = str(tmp_path / "htpasswd")
    holder = _io.FileLock(path)
    holder.acquire()
    try:
        fake = FakeClock()
        waiter = _io.FileLock(path, timeout=30, what="htpasswd file", clock=fake.clock, sleep=fake.sleep)
        with pytest.raises(LockTimeout) as caught:
            waiter.acquire()
        message = str(caught.value)
        assert "Timed out after 30 seconds" in message
        assert "%s.lock on htpasswd file %s" % (path, path) in message
        assert "held by pid %d on %s" % (os.getpid(), socket.gethostname()) in message
        assert caught.value.kind == "lock_timeout"
        assert fake.now >= 30
    finally:
        holder.release()
    assert not os.path.exists(path + ".lock")


def test_lock_timeout_zero_tries_once(tmp_path):
    path = str(tmp_path / "f")
    with _io.FileLock(path):
        fake = FakeClock()
        with pytest.raises(LockTimeout):
            _io.FileLock(path, timeout=0, clock=fake.clock, sleep=fake.sleep).acquire()
        assert fake.now == 0


def test_waiter_does_not_share_the_lock_with_a_newer_holder(tmp_path):
    # A holds the lock; B opens the same lock file and waits. A releases (and removes the
    # file) and C takes the lock on a new lock file before B retries. B then owns a lock on
    # a file nobody else looks at: it must notice and wait for C instead of going ahead.
    path = str(tmp_path / "f")
    a, c = _io.FileLock(path), _io.FileLock(path)
    a.acquire()
    fake = FakeClock()

    def a_leaves_c_arrives():
        a.release()
        c.acquire()
    fake.hook = a_leaves_c_arrives
    b = _io.FileLock(path, timeout=5, clock=fake.clock, sleep=fake.sleep)
    try:
        with pytest.raises(LockTimeout):
            b.acquire()
        assert c.locked and not b.locked
    finally:
        c.release()


def test_a_lock_file_left_by_a_killed_holder_is_taken_and_removed(tmp_path):
    path = str(tmp_path / "f")
    with open(path + ".lock", "w") as handle:
        handle.write("pid 1 on elsewhere since 2020-01-01T00:00:00Z\n")
    with _io.FileLock(path, timeout=0) as lock:
        assert lock.locked
    assert not os.path.exists(path + ".lock")


def test_lock_through_a_symlink_uses_the_target_lock(tmp_path):
    (tmp_path / "real").write_bytes(b"")
    (tmp_path / "link").symlink_to("real")
    lock = _io.FileLock(str(tmp_path / "link"))
    assert lock.lock_path == str(tmp_path / "real") + ".lock"


def test_lock_file_that_is_a_symlink_is_refused(tmp_path):
    (tmp_path / "elsewhere").write_bytes(b"")
    (tmp_path / "f.lock").symlink_to("elsewhere")
    with pytest.raises(InvalidInput, match="lock file .*f.lock is a symbolic link"):
        _io.FileLock(str(tmp_path / "f")).acquire()


def test_lock_file_that_is_a_fifo_is_refused_without_hanging(tmp_path):
    os.mkfifo(str(tmp_path / "f.lock"))
    finished, result = in_thread(_io.FileLock(str(tmp_path / "f"), timeout=0).acquire)
    assert finished and isinstance(result, InvalidInput) and "FIFO" in str(result)
