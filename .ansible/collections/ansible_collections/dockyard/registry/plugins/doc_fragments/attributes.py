# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """The attribute texts every module shares; each module states its own C(support) and details."""

    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the target.
  diff_mode:
    description: Will return details on what has changed (or would change) when in diff mode.
  idempotent:
    description: When run twice with the same arguments, the second run reports no change.
"""

    # The members of group/dockyard.registry.registry (meta/runtime.yml): the modules that talk to one
    # registry and accept every connection option (registry, username, password, ca_cert, validate_certs,
    # client_cert, client_key, config_path, timeout, retries). A unit test keeps the two in step.
    ACTIONGROUP_REGISTRY = r"""
options: {}
attributes:
  action_group:
    description:
      - Use C(group/dockyard.registry.registry) in C(module_defaults) to set the connection options for this
        module and the other modules that talk to one registry (M(dockyard.registry.registry_info),
        M(dockyard.registry.registry_login), M(dockyard.registry.registry_image),
        M(dockyard.registry.registry_prune), M(dockyard.registry.registry_diagnose)) - O(registry), O(username),
        O(password), O(ca_cert), O(validate_certs), O(client_cert), O(client_key), O(config_path), O(timeout),
        O(retries). Every member accepts all of them.
    support: full
    membership:
      - dockyard.registry.registry
"""

    # Modules that are in no action group: a group default would hand them options they do not have.
    ACTIONGROUP_NONE = r"""
options: {}
attributes:
  action_group:
    description:
      - Not a member of an action group, because it does not take the options of
        C(group/dockyard.registry.registry); set its defaults in C(module_defaults) under its own name.
    support: none
    membership: []
"""

    # Modules that only read (registry_info, registry_backend_check): the same in check mode, no diff.
    READ_ONLY = r"""
options: {}
attributes:
  check_mode:
    support: full
    details: The module only reads, so it runs the same in check mode.
  diff_mode:
    support: N/A
    details: The module never changes anything.
  idempotent:
    support: full
"""
