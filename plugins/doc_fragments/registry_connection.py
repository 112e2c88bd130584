# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

# Kept in step with plugins/module_utils/_argspec.py (connection_argument_spec); a unit test compares them.
# DOCUMENTATION covers connection_argument_spec() without "registry" (each module documents it, the
# default differs). SOURCE_DESTINATION covers connection_argument_spec("source_") merged with
# connection_argument_spec("destination_"), for modules that talk to two registries.


_SIDE = """
  {prefix}username:
    description:
      - User name for {where}.
      - When neither O({prefix}username) nor O({prefix}password) is given, credentials are looked up in the
        docker C(config.json) (O(config_path)) the way the docker CLI does it (C(credHelpers), C(credsStore),
        then C(auths)); without any, requests are anonymous.
      - Must be given together with O({prefix}password).
    type: str
  {prefix}password:
    description:
      - Password or access token for O({prefix}username).
    type: str
  {prefix}ca_cert:
    description:
      - A PEM file with the CA certificate(s) that signed the TLS certificate of {where}, used in addition to
        the system trust store.
    type: path
  {prefix}validate_certs:
    description:
      - Whether to verify the TLS certificate of {where}.
      - Set to V(false) only for throw-away test registries; prefer O({prefix}ca_cert).
    type: bool
    default: true
  {prefix}client_cert:
    description:
      - PEM client certificate for mutual TLS with {where}.
      - Requires O({prefix}client_key).
    type: path
  {prefix}client_key:
    description:
      - PEM private key for O({prefix}client_cert).
    type: path
"""

_COMMON = """
  config_path:
    description:
      - The docker CLI configuration file that credentials are read from (and, for
        M(dockyard.registry.registry_login), written to).
      - Defaults to C($DOCKER_CONFIG/config.json) when the environment variable E(DOCKER_CONFIG) is set for the
        remote user, else C(~/.docker/config.json) of the remote user.
    type: path
  timeout:
    description:
      - Timeout in seconds for each HTTP request to a registry.
    type: float
    default: 60
"""


class ModuleDocFragment(object):

    # Connection options of a module that talks to one registry (the module documents O(registry) itself).
    DOCUMENTATION = "options:" + _SIDE.format(prefix="", where="the registry") + _COMMON

    # Connection options of a module that copies from one registry to another (registry_sync).
    SOURCE_DESTINATION = (
        "options:"
        + _SIDE.format(prefix="source_", where="the source registry")
        + _SIDE.format(prefix="destination_", where="the destination registry")
        + _COMMON
    )
