# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""The one place a module's backend result or error becomes what ``main()`` exits with.

A backend is ``work(params, check_mode=, diff=, ...) -> dict``: it raises RegistryError (or a
subclass) and never fails the module. :func:`run_backend` runs it and returns ``(ok, fields)``;
``main()`` then calls ``module.exit_json(**fields)`` or ``module.fail_json(**fields)`` itself.
Registry modules go through ``_argspec.run_registry_module``, which adds option ranges and retry
statistics around this.
"""

from __future__ import annotations

import traceback
from typing import Any, Callable

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.dockyard.registry.plugins.module_utils import _command
from ansible_collections.dockyard.registry.plugins.module_utils._errors import MissingLibrary, RegistryError

__all__ = ["run_backend"]


def run_backend(module: Any, work: Callable[..., dict], **kwargs: Any) -> tuple[bool, dict]:
    """Run ``work(module.params, check_mode=, diff=, **kwargs)`` and map what it raises.

    A RegistryError is the failure it describes (``to_result()``; MissingLibrary adds
    ``missing_required_lib()`` and the import traceback); a result with ``failed: true`` is a
    failure too; any other exception is a bug, said as one (``error_kind: internal``) with its
    traceback in ``exception``. A result's ``warnings`` (a list of texts) go to ``module.warn()``.
    Programs the backend starts go through ``module.run_command`` (``_command.bind``).
    """
    _command.bind(module)
    try:
        fields = work(module.params, check_mode=module.check_mode, diff=module._diff, **kwargs)
        ok = not fields.pop("failed", False)
    except MissingLibrary as err:
        ok, fields = False, dict(err.to_result(), exception=err.import_error)
        if err.library:
            fields["msg"] = missing_required_lib(err.library)
    except RegistryError as err:
        ok, fields = False, err.to_result()
    except Exception as exc:  # pylint: disable=broad-except
        ok, fields = False, {"msg": "unexpected error (a bug in dockyard.registry, please report it): %s: %s"
                                    % (type(exc).__name__, exc),
                             "error_kind": "internal", "exception": traceback.format_exc()}
    for warning in fields.pop("warnings", None) or []:
        module.warn(warning)
    return ok, fields
