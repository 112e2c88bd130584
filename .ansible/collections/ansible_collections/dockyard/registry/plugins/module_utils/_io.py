# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""The one way this collection reads and writes files on the managed node.

- :func:`read_file` refuses anything that is not a regular file (a symbolic link to one is
  fine) before and after opening it, so a FIFO, a device or a socket is an error, never a
  hang.
- :func:`atomic_write` replaces a file the way ``AnsibleModule.atomic_move`` does -- a
  temporary file in the same directory, flushed to disk and renamed over the old one -- and
  keeps the old file's mode, owner and SELinux context (a new file gets its mode and the
  policy's default context). It raises :class:`RegistryError` instead of failing the module,
  and the old file is untouched when anything goes wrong.
- :class:`FileLock` serialises read-modify-write cycles on one file across processes and
  hosts that share the file system: an advisory ``flock`` on the sibling ``<file>.lock``,
  held from the read to the rename, waited for at most ``timeout`` seconds. The lock file is
  removed on release (safely: a waiter that finds its lock file unlinked retries on the new
  one), so it is left behind only when a holder is killed, and is then harmless.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import stat
import tempfile
import time

from ansible_collections.dockyard.registry.plugins.module_utils._errors import (
    InvalidInput,
    LockTimeout,
    RegistryError,
)

try:
    # The same ctypes binding of libselinux that AnsibleModule uses; ImportError without libselinux.
    from ansible.module_utils.compat import selinux as _selinux
except ImportError:  # pragma: no cover - depends on the host
    _selinux = None

__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "FileLock",
    "atomic_write",
    "describe_file_type",
    "lock_path_for",
    "read_file",
    "require_regular_file",
    "resolve_path",
]

DEFAULT_LOCK_TIMEOUT = 30
_NEW_FILE_MODE = 0o600
_LOCK_FILE_MODE = 0o644  # holds only "pid on host since", nothing secret
_POLL_FIRST = 0.02
_POLL_MAX = 0.25


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc)


def describe_file_type(mode: int) -> str:
    """``a directory``, ``a FIFO (named pipe)``, ... for messages."""
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "not a regular file"


def _not_regular(path: str, what: str, mode: int) -> InvalidInput:
    return InvalidInput("%s %s is %s, not a regular file; refusing to read or replace it. Point the option at a "
                        "regular file (a symbolic link to one is fine)." % (what, path, describe_file_type(mode)))


def resolve_path(path: str) -> str:
    """The absolute path to read and replace: through symbolic links, so a link stays a link."""
    path = os.path.expanduser(path)
    if os.path.islink(path):
        return os.path.realpath(path)
    return os.path.abspath(path)


def require_regular_file(path: str, what: str = "file") -> os.stat_result | None:
    """``os.stat`` of ``path`` (following links), None when it does not exist.

    InvalidInput when it exists and is anything but a regular file: opening a FIFO blocks
    until a writer appears, a device may have side effects, and renaming over either would
    silently replace something that is not ours.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise InvalidInput("%s %s cannot exist: a component of its directory is not a directory." % (what, path))
    except OSError as exc:
        raise RegistryError("Cannot look at %s %s: %s" % (what, path, _reason(exc)))
    if not stat.S_ISREG(st.st_mode):
        raise _not_regular(path, what, st.st_mode)
    return st


def read_file(path: str, what: str = "file") -> bytes | None:
    """The bytes of a regular file, None when it does not exist.

    The type is checked before opening (nothing is opened that is not a regular file) and
    again on the open descriptor, opened non-blocking, so a FIFO swapped in between cannot
    make the module hang either.
    """
    if require_regular_file(path, what) is None:
        return None
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RegistryError("Cannot read %s %s: %s" % (what, path, _reason(exc)))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(path, what, st.st_mode)
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise RegistryError("Cannot read %s %s: %s" % (what, path, _reason(exc)))
    finally:
        os.close(fd)


# ---- SELinux: keep the context across the rename, as atomic_move does -------------------------

def _selinux_enabled() -> bool:
    if _selinux is None:
        return False
    try:
        return _selinux.is_selinux_enabled() == 1
    except OSError:
        return False


def _selinux_context(path: str, existing: bool, mode: int) -> str | None:
    """The context the replaced file must end with: the old file's, else the policy's default."""
    if not _selinux_enabled():
        return None
    if existing:
        try:
            rc, context = _selinux.lgetfilecon_raw(path)
        except OSError as exc:
            raise RegistryError("Cannot read the SELinux context of %s: %s" % (path, _reason(exc)))
    else:
        try:
            rc, context = _selinux.matchpathcon(path, mode)
        except OSError:
            return None  # no default for this path in the policy: the kernel's inheritance applies
    if rc < 0 or not context:
        return None
    return context


def _set_selinux_context(path: str, context: str | None, target: str) -> None:
    if context is None:
        return
    try:
        _selinux.lsetfilecon(path, context)
    except OSError as exc:
        raise RegistryError("Cannot give the new %s the SELinux context %s: %s" % (target, context, _reason(exc)))


# ---- writing --------------------------------------------------------------------------------

def _fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a directory; the rename itself already happened
    finally:
        os.close(fd)


def _keep_owner(fd: int, current: os.stat_result) -> None:
    if (current.st_uid, current.st_gid) == (os.geteuid(), os.getegid()):
        return
    try:
        os.fchown(fd, current.st_uid, current.st_gid)
    except PermissionError:
        # Not root: keep at least the group when we are a member of it; the file then belongs
        # to us, as any rewrite by this user would (AnsibleModule.atomic_move does the same).
        try:
            os.fchown(fd, -1, current.st_gid)
        except PermissionError:
            pass


def atomic_write(path: str, content: bytes, *, what: str = "file", mode: int | None = None,
                 new_file_mode: int = _NEW_FILE_MODE) -> bool:
    """Replace ``path`` with ``content``; readers see the old file or the new one, never a mix.

    ``path`` is written through a symbolic link. An existing file keeps its mode (unless
    ``mode`` is given), owner, group and SELinux context; a new file gets ``mode`` or
    ``new_file_mode`` from its first byte, and the policy's default context. The directory
    must exist. Returns True when the file was created. On any error the old file is left as
    it was, no temporary file is left behind, and RegistryError says what happened.
    """
    path = resolve_path(path)
    directory = os.path.dirname(path)
    current = require_regular_file(path, what)
    creating = current is None
    if not os.path.isdir(directory):
        raise InvalidInput("The directory %s for %s %s does not exist; create it first." % (directory, what, path))
    if mode is not None:
        final_mode = mode
    elif current is not None:
        final_mode = stat.S_IMODE(current.st_mode)
    else:
        final_mode = new_file_mode
    context = _selinux_context(path, not creating, stat.S_IFREG | final_mode)
    outcome = "no file was created" if creating else "the old file is unchanged"

    try:
        fd, tmp_path = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    except OSError as exc:
        raise RegistryError("Cannot write %s %s (cannot create a temporary file in %s: %s); %s."
                            % (what, path, directory, _reason(exc), outcome))
    try:
        try:
            os.fchmod(fd, final_mode)
            if current is not None:
                _keep_owner(fd, current)
            view = memoryview(content)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        _set_selinux_context(tmp_path, context, what)
        os.rename(tmp_path, path)
        tmp_path = None
    except OSError as exc:
        raise RegistryError("Cannot write %s %s; %s: %s" % (what, path, outcome, _reason(exc)))
    finally:
        if tmp_path is not None:
            try:
                os.unlink(tmp_path)
            except OSError:
                pass
    _fsync_directory(directory)
    return creating


# ---- locking --------------------------------------------------------------------------------

def lock_path_for(path: str) -> str:
    """The sibling lock file of ``path`` (after following links, so every link shares it)."""
    return resolve_path(path) + ".lock"


class FileLock:
    """An exclusive advisory lock on ``<file>.lock`` for one read-modify-write cycle.

    ``with FileLock(path, timeout=30, what="htpasswd file"): read, change, atomic_write``.
    Waits at most ``timeout`` seconds (0: try once), then raises LockTimeout naming the lock
    file and, when it can tell, the process that holds it. Only writers that take this lock
    are held off; readers (the registry, the docker CLI) never need it because every write is
    an atomic rename.
    """

    def __init__(self, path: str, timeout: float = DEFAULT_LOCK_TIMEOUT, what: str = "file", *,
                 clock=time.monotonic, sleep=time.sleep) -> None:
        self.path = resolve_path(path)
        self.lock_path = self.path + ".lock"
        self.timeout = timeout
        self.what = what
        self._clock = clock
        self._sleep = sleep
        self._fd = -1

    @property
    def locked(self) -> bool:
        return self._fd >= 0

    def _open(self) -> int:
        flags = os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(self.lock_path, os.O_RDWR | flags, _LOCK_FILE_MODE)
        except PermissionError:
            try:
                # Someone else's leftover lock file we may read but not write: flock works on it too.
                fd = os.open(self.lock_path, os.O_RDONLY | flags)
            except OSError as exc:
                raise self._cannot(exc)
        except OSError as exc:
            raise self._cannot(exc)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise InvalidInput("The lock file %s is %s, not a regular file; remove it."
                               % (self.lock_path, describe_file_type(st.st_mode)))
        return fd

    def _cannot(self, exc: OSError) -> RegistryError:
        if exc.errno == errno.ELOOP:
            return InvalidInput("The lock file %s is a symbolic link; remove it." % self.lock_path)
        return RegistryError("Cannot create the lock file %s for %s %s: %s"
                             % (self.lock_path, self.what, self.path, _reason(exc)))

    def _is_current(self, fd: int) -> bool:
        """False when the previous holder removed the lock file while we waited for it."""
        try:
            st = os.stat(self.lock_path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)

    def _holder(self) -> str:
        try:
            with open(self.lock_path, "rb") as handle:
                text = handle.read(200).decode("utf-8", "replace").strip()
        except OSError:
            return ""
        return text

    def acquire(self) -> None:
        if self.locked:
            raise RegistryError("FileLock for %s acquired twice" % self.lock_path)
        deadline = self._clock() + max(0.0, float(self.timeout))
        poll = _POLL_FIRST
        while True:
            fd = self._open()
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except OSError as exc:
                        if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                            raise RegistryError("Cannot lock %s: %s" % (self.lock_path, _reason(exc)))
                    if self._clock() >= deadline:
                        raise self._timeout_error()
                    self._sleep(poll)
                    poll = min(_POLL_MAX, poll * 2)
                if self._is_current(fd):
                    break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # got the lock on a file that was removed meanwhile: lock the new one
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.write(fd, ("pid %d on %s since %s\n" % (
                os.getpid(), socket.gethostname(), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))).encode("utf-8"))
        except OSError:
            pass  # opened read-only; the note only helps the timeout message

    def _timeout_error(self) -> LockTimeout:
        holder = self._holder()
        who = ("held by %s" % holder) if holder else "held by another process"
        return LockTimeout(
            "Timed out after %s seconds waiting for the lock %s on %s %s (%s). Another task is changing the same "
            "file; wait for it and run again, or raise the lock timeout. If no such process exists any more, "
            "remove the lock file." % (_seconds(self.timeout), self.lock_path, self.what, self.path, who))

    def release(self) -> None:
        if not self.locked:
            return
        fd, self._fd = self._fd, -1
        try:
            # Unlinked while still locked: a waiter that then gets this inode sees that it is no
            # longer the current lock file and opens the next one.
            if self._is_current(fd):
                os.unlink(self.lock_path)
        except OSError:
            pass  # a lock file left behind is harmless: flock is released with the descriptor
        finally:
            os.close(fd)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


def _seconds(value: float) -> str:
    return ("%d" % value) if float(value).is_integer() else ("%.1f" % value)
