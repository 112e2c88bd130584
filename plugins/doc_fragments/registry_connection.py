# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):
    # Kept in step with plugins/module_utils/_argspec.py (connection_argument_spec); the unit test
    # tests/unit/plugins/module_utils/test_argspec.py compares option names, types and defaults.
    # (Written out literally: ansible-test's yamllint only reads plain string assignments.)

    # Connection options of a module that talks to one registry: connection_argument_spec()
    # without "registry", which each module documents itself (its default and requiredness differ).
    DOCUMENTATION = r"""
options:
  username:
    description:
      - User name for the registry.
      - When neither O(username) nor O(password) is given, credentials are looked up in the
        docker C(config.json) (O(config_path)) the way the docker CLI does it (C(credHelpers), C(credsStore),
        then C(auths)); without any, requests are anonymous.
      - Must be given together with O(password).
    type: str
  password:
    description:
      - Password or access token for O(username).
    type: str
  ca_cert:
    description:
      - A PEM file with the CA certificate(s) that signed the TLS certificate of the registry, used in addition to
        the system trust store.
    type: path
  validate_certs:
    description:
      - Whether to verify the TLS certificate of the registry.
      - Set to V(false) only for throw-away test registries; prefer O(ca_cert).
    type: bool
    default: true
  client_cert:
    description:
      - PEM client certificate (optionally followed by its private key) for mutual TLS with the registry.
      - Give O(client_key) unless the key is in the same file.
    type: path
  client_key:
    description:
      - PEM private key for O(client_cert), when it is not in that file. It must not be encrypted.
    type: path

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
    default: 60"""

    # Connection options of a module that copies from one registry to another (registry_sync):
    # connection_argument_spec("source_") merged with connection_argument_spec("destination_").
    # Use it as "dockyard.registry.registry_connection.SOURCE_DESTINATION".
    SOURCE_DESTINATION = r"""
options:
  source_username:
    description:
      - User name for the source registry.
      - When neither O(source_username) nor O(source_password) is given, credentials are looked up in the
        docker C(config.json) (O(config_path)) the way the docker CLI does it (C(credHelpers), C(credsStore),
        then C(auths)); without any, requests are anonymous.
      - Must be given together with O(source_password).
    type: str
  source_password:
    description:
      - Password or access token for O(source_username).
    type: str
  source_ca_cert:
    description:
      - A PEM file with the CA certificate(s) that signed the TLS certificate of the source registry, used in addition to
        the system trust store.
    type: path
  source_validate_certs:
    description:
      - Whether to verify the TLS certificate of the source registry.
      - Set to V(false) only for throw-away test registries; prefer O(source_ca_cert).
    type: bool
    default: true
  source_client_cert:
    description:
      - PEM client certificate (optionally followed by its private key) for mutual TLS with the source registry.
      - Give O(source_client_key) unless the key is in the same file.
    type: path
  source_client_key:
    description:
      - PEM private key for O(source_client_cert), when it is not in that file. It must not be encrypted.
    type: path

  destination_username:
    description:
      - User name for the destination registry.
      - When neither O(destination_username) nor O(destination_password) is given, credentials are looked up in the
        docker C(config.json) (O(config_path)) the way the docker CLI does it (C(credHelpers), C(credsStore),
        then C(auths)); without any, requests are anonymous.
      - Must be given together with O(destination_password).
    type: str
  destination_password:
    description:
      - Password or access token for O(destination_username).
    type: str
  destination_ca_cert:
    description:
      - A PEM file with the CA certificate(s) that signed the TLS certificate of the destination registry, used in addition to
        the system trust store.
    type: path
  destination_validate_certs:
    description:
      - Whether to verify the TLS certificate of the destination registry.
      - Set to V(false) only for throw-away test registries; prefer O(destination_ca_cert).
    type: bool
    default: true
  destination_client_cert:
    description:
      - PEM client certificate (optionally followed by its private key) for mutual TLS with the destination registry.
      - Give O(destination_client_key) unless the key is in the same file.
    type: path
  destination_client_key:
    description:
      - PEM private key for O(destination_client_cert), when it is not in that file. It must not be encrypted.
    type: path

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
    default: 60"""
