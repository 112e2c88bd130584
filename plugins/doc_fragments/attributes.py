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

    ACTIONGROUP_REGISTRY = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/dockyard.registry.registry) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - dockyard.registry.registry
"""
