# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""One error family for the whole collection.

Everything in ``module_utils`` raises :class:`RegistryError` (or a subclass) and
modules turn it into ``fail_json`` once, in ``main()``. Messages must say what went
wrong and how to fix it, name the registry and reference, and never contain a secret.
"""

from __future__ import annotations

__all__ = [
    "RegistryError",
    "InvalidInput",
    "Unauthorized",
    "Denied",
    "NotFound",
    "TLSError",
    "Unreachable",
    "Unsupported",
    "ServerError",
    "DigestMismatch",
    "MissingLibrary",
    "LockTimeout",
    "ConcurrentChange",
]


class RegistryError(Exception):
    """Base class. ``kind`` is a stable machine-readable name returned to users."""

    kind = "error"

    def __init__(self, message: str, *, registry: str | None = None, reference: str | None = None,
                 status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.registry = registry
        self.reference = reference
        self.status = status
        self.hint = hint

    def __str__(self) -> str:
        text = self.message
        if self.hint:
            text = "%s %s" % (text.rstrip(), self.hint)
        return text

    def to_result(self) -> dict:
        """Plain fields for ``fail_json(**err.to_result())`` (``msg`` included)."""
        result = {"msg": str(self), "error_kind": self.kind}
        if self.registry:
            result["registry"] = self.registry
        if self.reference:
            result["reference"] = self.reference
        if self.status is not None:
            result["status"] = self.status
        return result


class InvalidInput(RegistryError):
    """The user's input cannot be used (bad reference, conflicting options, bad file)."""

    kind = "invalid_input"


class Unauthorized(RegistryError):
    """401: missing or bad credentials."""

    kind = "unauthorized"


class Denied(RegistryError):
    """403 or DENIED: authenticated but not allowed."""

    kind = "denied"


class NotFound(RegistryError):
    """404 / MANIFEST_UNKNOWN / NAME_UNKNOWN / BLOB_UNKNOWN."""

    kind = "not_found"


class TLSError(RegistryError):
    """Certificate verification or handshake failure."""

    kind = "tls"


class Unreachable(RegistryError):
    """Connection refused, DNS failure, timeout."""

    kind = "unreachable"


class Unsupported(RegistryError):
    """The registry does not support the operation (e.g. deletion disabled: 405)."""

    kind = "unsupported"


class ServerError(RegistryError):
    """5xx or an unexpected answer after retries."""

    kind = "server_error"


class DigestMismatch(RegistryError):
    """Content did not hash to the digest it was asked for."""

    kind = "digest_mismatch"


class MissingLibrary(RegistryError):
    """An optional Python library is needed for this feature (boto3, docker SDK, bcrypt).

    ``library`` is the name ``missing_required_lib`` shows, ``import_error`` the traceback of the
    failed import (for the ``exception`` result key).
    """

    kind = "missing_library"

    def __init__(self, message: str, *, library: str | None = None, import_error: str | None = None,
                 **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.library = library
        self.import_error = import_error


class LockTimeout(RegistryError):
    """Another process held the lock on a file this module must change for longer than allowed."""

    kind = "lock_timeout"


class ConcurrentChange(RegistryError):
    """What was planned changed before it was done (a tag pushed while registry_prune planned)."""

    kind = "concurrent_change"
