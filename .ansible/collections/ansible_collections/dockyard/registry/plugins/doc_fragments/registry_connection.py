# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):
    # Kept in step with plugins/module_utils/_argspec.py (connection_argument_spec); the unit test
    # tests/unit/plugins/modules/test_documentation.py compares every module's documentation, fragments
    # merged, with its argument spec, and refuses shared options documented in a module itself.
    # (Written out literally: ansible-test's yamllint only reads plain string assignments.)
    #
    # A module that talks to one registry extends DOCUMENTATION and COMMON (and documents "registry"
    # itself: what it means differs); registry_image adds SOURCE; registry_sync extends SOURCE,
    # DESTINATION and COMMON.

    # connection_argument_spec() without "registry" and the COMMON options.
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
      - A PEM file with the CA certificate(s) that signed the TLS certificate of the registry, used in addition
        to the system trust store. It must be a regular file (not a directory or a FIFO).
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
"""

    # The source_ options of connection_argument_spec("source_").
    SOURCE = r"""
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
      - A PEM file with the CA certificate(s) that signed the TLS certificate of the source registry, used in addition
        to the system trust store. It must be a regular file (not a directory or a FIFO).
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
"""

    # The destination_ options of connection_argument_spec("destination_").
    DESTINATION = r"""
options:
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
      - A PEM file with the CA certificate(s) that signed the TLS certificate of the destination registry, used in addition
        to the system trust store. It must be a regular file (not a directory or a FIFO).
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
"""

    # config_path, timeout and retries: never prefixed, shared by both sides of a copy.
    COMMON = r"""
options:
  config_path:
    description:
      - The docker CLI configuration file that credentials are read from (and, for
        M(dockyard.registry.registry_login), written to).
      - Defaults to C($DOCKER_CONFIG/config.json) when the environment variable E(DOCKER_CONFIG) is set for the
        remote user, else C(~/.docker/config.json) of the remote user.
    type: path
  timeout:
    description:
      - Timeout in seconds for each HTTP request to a registry (connecting, and each wait for data).
      - Greater than V(0) and at most V(3600).
    type: float
    default: 60
  retries:
    description:
      - How many times a request is sent again after a connection error, a timeout, or an HTTP V(429) or C(5xx)
        answer - with exponential backoff from half a second (or as long as the registry's C(Retry-After) says),
        and at most 60 seconds of waiting per request. V(0) turns retries off.
      - Retries that happened are returned in RV(retries) and reported as a warning, so a flapping registry
        does not look healthy.
      - Between V(0) and V(20).
    type: int
    default: 5
"""
