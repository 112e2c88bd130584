#!/usr/bin/python
# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_login
short_description: Log in to a container registry and store the credentials for the docker CLI
version_added: 0.1.0
description:
  - Verifies credentials against a container registry (C(GET /v2/), Basic or Bearer token authentication)
    and stores them in the docker CLI configuration file, where the docker CLI and the other modules of this
    collection find them. Nothing is written when the registry rejects the credentials.
  - The configuration file is written atomically with mode C(0600) and keeps every other key. When it configures
    a credential helper (C(credsStore) or a C(credHelpers) entry for the registry), the secret is handed to the
    helper (C(docker-credential-<name> store)) and the file only lists the registry, as the docker CLI does.
  - Logins that write the same configuration file at the same time wait for each other (an advisory lock on
    C(config.json.lock) next to it, removed afterwards, waited for at most 30 seconds), so none of their entries
    is lost. A configuration file or service account key file that is a FIFO, a device or a directory is refused.
  - Cloud registries are supported through O(provider) - Amazon ECR (a token from the AWS API), Google
    Container/Artifact Registry (a service account key), Azure Container Registry (a service principal),
    GitHub Container Registry and Docker Hub (a user and an access token).
  - O(state=absent) logs out - it removes the entry from the file and erases the secret from the credential helper.
  - Does not need a Docker daemon.
author:
  - dockyard.registry contributors (@dockyard)
options:
  registry:
    description:
      - The registry to log in to, as C(host[:port]) (HTTPS), C(https://host[:port]) or C(http://host[:port]).
      - C(docker.io), C(index.docker.io) and C(registry-1.docker.io) all name Docker Hub; its credentials are
        stored under the key C(https://index.docker.io/v1/) like the docker CLI does.
      - When omitted - Docker Hub for O(provider=generic), O(provider=dockerhub) and O(provider=auto);
        C(ghcr.io) for O(provider=ghcr); C(gcr.io) for O(provider=gcr); for O(provider=ecr) the
        C(proxyEndpoint) the AWS API returns with the token. O(provider=acr) needs it.
      - For O(provider=ecr) a given O(registry) overrides the C(proxyEndpoint), and an ECR host name
        (C(<account>.dkr.ecr.<region>.amazonaws.com)) provides defaults for O(registry_id) and O(region).
    type: str
  username:
    description:
      - User name. For O(provider=acr) the service principal's application (client) id.
      - Not used by O(provider=ecr) (which logs in as C(AWS)), nor by O(provider=gcr) with
        O(service_account_key) (which logs in as C(_json_key)).
    type: str
  password:
    description:
      - Password or access token. For O(provider=acr) the service principal's secret; for O(provider=ghcr)
        and O(provider=dockerhub) a personal access token.
      - Never returned or logged.
    type: str
  state:
    description:
      - V(present) verifies the credentials and stores them; V(absent) removes them (log out).
    type: str
    choices: [present, absent]
    default: present
  reauthorize:
    description:
      - Only matters for O(provider=ecr), whose tokens differ on every request and expire after 12 hours, and for
        O(aad_access_token), whose exchange gives a new refresh token every time.
      - With V(false), a stored token that the registry still accepts is kept and nothing changes, so the task
        is idempotent; an expired or rejected one is replaced.
      - With V(true), a fresh token is always fetched, verified and stored.
      - Other providers always verify the given credentials and store them when they differ from the stored
        ones, whatever this option says.
    type: bool
    default: false
  provider:
    description:
      - How the credentials are obtained.
      - V(generic) - O(username) and O(password) as given.
      - V(dockerhub), V(ghcr) - a user name and a personal access token.
      - V(ecr) - an authorization token from the AWS ECR API (needs the C(boto3) Python library on the
        managed node), see O(region), O(profile), O(registry_id), O(endpoint_url).
      - V(gcr) - user C(_json_key) with the service account key O(service_account_key) as password (Google
        Container Registry and Artifact Registry), or O(username) and O(password) as given (for example
        C(oauth2accesstoken) and an access token).
      - V(acr) - an Azure service principal's application id (O(username)) and secret (O(password)), or an
        Azure AD access token (O(aad_access_token)).
      - V(auto) picks from the registry host name - C(*.dkr.ecr.*.amazonaws.com) is V(ecr) (or V(generic) when
        O(username) and O(password) are given), C(gcr.io), C(*.gcr.io) and C(*-docker.pkg.dev) are V(gcr),
        C(*.azurecr.io) is V(acr), C(ghcr.io) is V(ghcr), Docker Hub is V(dockerhub), anything else V(generic).
    type: str
    choices: [auto, generic, dockerhub, ghcr, ecr, gcr, acr]
    default: auto
  region:
    description:
      - AWS region of the ECR registry (O(provider=ecr)). Defaults to the region in an ECR O(registry) host name,
        else the AWS configuration (E(AWS_REGION), E(AWS_DEFAULT_REGION), the profile).
    type: str
  profile:
    description:
      - AWS profile to take credentials and region from (O(provider=ecr)).
    type: str
  registry_id:
    description:
      - AWS account id that owns the ECR registry (O(provider=ecr)). Defaults to the account in an ECR
        O(registry) host name, else the caller's account.
    type: str
  endpoint_url:
    description:
      - URL of the ECR API, for VPC endpoints or a local test endpoint (O(provider=ecr)).
    type: str
  aws_access_key_id:
    description:
      - AWS access key id (O(provider=ecr)). Defaults to the AWS configuration (environment, profile, instance role).
    type: str
  aws_secret_access_key:
    description:
      - AWS secret access key for O(aws_access_key_id) (O(provider=ecr)).
    type: str
  aws_session_token:
    description:
      - AWS session token for temporary credentials (O(provider=ecr)).
    type: str
  credential_helper:
    description:
      - Instead of storing credentials, point the docker CLI at a credential helper for O(registry) - a
        C(credHelpers) entry that maps the host to O(credential_helper) in the configuration file, every other entry kept.
        The docker CLI then runs C(docker-credential-<credential_helper> get) whenever it needs credentials for
        that registry, so nothing expires in the file.
      - V(gcloud) is what C(gcloud auth configure-docker) writes for Google Container Registry and Artifact
        Registry hosts; V(ecr-login) is the Amazon ECR credential helper (C(docker-credential-ecr-login));
        C(docker-credential-acr-env) is V(acr-env).
      - Nothing is verified (the helper may need a login of its own first); the module warns when
        C(docker-credential-<credential_helper>) is not on the C(PATH) of the managed node.
      - With O(state=absent) the entry is removed when it names this helper.
      - Cannot be combined with O(username), O(password), O(service_account_key), O(aad_access_token) or AWS keys.
    type: str
  aad_access_token:
    description:
      - An Azure AD (Microsoft Entra ID) access token for the registry (O(provider=acr)), for example from
        C(az account get-access-token --resource https://containerregistry.azure.net) or a managed identity.
      - It is exchanged for an ACR refresh token (C(POST https://<registry>/oauth2/exchange) with
        C(grant_type=access_token), C(service), C(tenant), C(access_token)), which is verified and stored as an
        identity token for the user C(00000000-0000-0000-0000-000000000000), as C(az acr login) does. The docker
        CLI trades it for access tokens by itself; ACR refresh tokens stay valid for about three hours.
      - A stored refresh token that the registry still accepts is kept unless O(reauthorize=true).
      - An expired token, or one for another O(tenant), is refused before it is sent. Never returned or logged.
    type: str
  tenant:
    description:
      - The Azure AD tenant (directory) id of the registry, sent with O(aad_access_token). Defaults to the
        tenant the token was issued in (its C(tid) claim). A token from another tenant is refused with a message.
    type: str
  service_account_key:
    description:
      - A Google Cloud service account key, either the path of its JSON file on the managed node or its JSON
        content (O(provider=gcr)). It must be a key of C(type) C(service_account).
      - Never returned or logged.
    type: str
notes:
  - The credentials are checked against the registry before anything is written, also in check mode.
  - Credentials given to this module are used as they are; only when no O(username)/O(password) is given do the
    other modules of this collection fall back to the configuration file.
extends_documentation_fragment:
  - dockyard.registry.attributes
  - dockyard.registry.attributes.ACTIONGROUP_REGISTRY
  - dockyard.registry.registry_connection
  - dockyard.registry.registry_connection.COMMON
attributes:
  check_mode:
    support: full
    details: The credentials are verified against the registry in check mode too.
  diff_mode:
    support: full
    details: The diff names the registry and the user, never the secret.
  idempotent:
    support: full
    details: For O(provider=ecr) only with O(reauthorize=false), because every ECR token is new.
requirements:
  - boto3 (only for O(provider=ecr))
seealso:
  - module: dockyard.registry.registry_info
    description: Inspect repositories, tags and manifests with the stored credentials.
  - module: community.docker.docker_login
    description: The same through a Docker daemon.
  - name: docker login
    description: The docker CLI command whose configuration file this module writes.
    link: https://docs.docker.com/reference/cli/docker/login/
  - name: Docker credential helpers
    description: The protocol used when C(credsStore) or C(credHelpers) is configured.
    link: https://github.com/docker/docker-credential-helpers
"""

EXAMPLES = r"""
- name: Log in to a private registry whose certificate is signed by a private CA
  dockyard.registry.registry_login:
    registry: registry.example.com:5000
    username: ci
    password: "{{ vault_registry_password }}"
    ca_cert: /etc/pki/registry-ca.crt

- name: Log in to Docker Hub with an access token
  dockyard.registry.registry_login:
    provider: dockerhub
    username: myuser
    password: "{{ vault_dockerhub_token }}"

- name: Log in to GitHub Container Registry with a personal access token
  dockyard.registry.registry_login:
    provider: ghcr
    username: my-github-user
    password: "{{ vault_ghcr_token }}"

- name: Log in to Amazon ECR with the instance role; keep the stored token while it is valid
  dockyard.registry.registry_login:
    provider: ecr
    registry: 123456789012.dkr.ecr.eu-west-1.amazonaws.com

- name: Log in to Amazon ECR with a named profile, always storing a fresh token
  dockyard.registry.registry_login:
    provider: ecr
    region: us-east-1
    profile: deploy
    registry_id: "123456789012"
    reauthorize: true

- name: Log in to Google Artifact Registry with a service account key file
  dockyard.registry.registry_login:
    provider: gcr
    registry: europe-west1-docker.pkg.dev
    service_account_key: /etc/gcp/pusher.json

- name: Log in to Google Container Registry with the key content from a vault
  dockyard.registry.registry_login:
    registry: eu.gcr.io
    service_account_key: "{{ vault_gcp_key_json | to_json }}"

- name: Log in to Azure Container Registry with a service principal
  dockyard.registry.registry_login:
    provider: acr
    registry: myregistry.azurecr.io
    username: "{{ azure_sp_app_id }}"
    password: "{{ vault_azure_sp_secret }}"

- name: Log in to Azure Container Registry with an Azure AD token, as az acr login does
  dockyard.registry.registry_login:
    provider: acr
    registry: myregistry.azurecr.io
    aad_access_token: "{{ lookup('ansible.builtin.pipe', 'az account get-access-token --query accessToken -o tsv'
                                 ~ ' --resource https://containerregistry.azure.net') }}"
    tenant: 72f988bf-86f1-41af-91ab-2d7cd011db47

- name: Let the docker CLI get Artifact Registry credentials from gcloud (gcloud auth configure-docker)
  dockyard.registry.registry_login:
    registry: "{{ item }}"
    credential_helper: gcloud
  loop: [gcr.io, europe-west1-docker.pkg.dev]

- name: Let the docker CLI get ECR tokens from the Amazon ECR credential helper
  dockyard.registry.registry_login:
    registry: 123456789012.dkr.ecr.eu-west-1.amazonaws.com
    credential_helper: ecr-login

- name: Write the credentials for a CI job into its own docker config
  dockyard.registry.registry_login:
    registry: registry.example.com
    username: ci
    password: "{{ vault_registry_password }}"
    config_path: /home/ci/.docker/config.json

- name: Log out
  dockyard.registry.registry_login:
    registry: registry.example.com:5000
    state: absent
"""

RETURN = r"""
registry:
  description: The registry, as the key of its entry in the configuration file.
  returned: always
  type: str
  sample: registry.example.com:5000
retries:
  description: Requests sent again (O(retries)) - C(count), C(statuses) (HTTP status - how many), C(network_errors)
    (connection errors, timeouts, cut bodies) and C(waited) (seconds). When C(count) is not 0 the module also warns.
  returned: always
  type: dict
  sample: {"count": 3, "statuses": {"429": 2, "503": 1}, "network_errors": 0, "waited": 2.5}
provider:
  description: The provider used (what O(provider=auto) chose).
  returned: always
  type: str
  sample: generic
username:
  description: The user name stored (C(AWS) for ECR, C(_json_key) for a GCR service account key). Never a secret.
  returned: when O(state=present)
  type: str
  sample: ci
config_path:
  description: The configuration file that was (or would be) written.
  returned: always
  type: str
  sample: /root/.docker/config.json
credentials_store:
  description:
    - Name of the credential helper that holds the secret (C(docker-credential-<name>)), or V(null) when the
      secret is in the configuration file itself.
  returned: always
  type: str
  sample: pass
verified:
  description: Whether the registry accepted the credentials (C(GET /v2/)) in this run. V(false) with
    O(credential_helper), which is not asked.
  returned: when O(state=present)
  type: bool
  sample: true
credential_helper:
  description: The helper the C(credHelpers) entry names (O(credential_helper)).
  returned: when O(credential_helper) is given
  type: str
  sample: gcloud
helper_found:
  description: Whether C(docker-credential-<credential_helper>) is on the C(PATH) of the managed node.
  returned: when O(credential_helper) is given and the entry was considered
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockyard.registry.plugins.module_utils._argspec import (
    connection_argument_spec,
    connection_required_together,
    run_registry_module,
)
from ansible_collections.dockyard.registry.plugins.module_utils._login import registry_login


def argument_spec() -> dict:
    spec = connection_argument_spec()
    spec.update(
        state=dict(type="str", default="present", choices=["present", "absent"]),
        reauthorize=dict(type="bool", default=False),
        provider=dict(type="str", default="auto", choices=["auto", "generic", "dockerhub", "ghcr", "ecr", "gcr", "acr"]),
        region=dict(type="str"),
        profile=dict(type="str"),
        registry_id=dict(type="str"),
        endpoint_url=dict(type="str"),
        aws_access_key_id=dict(type="str"),
        aws_secret_access_key=dict(type="str", no_log=True),
        aws_session_token=dict(type="str", no_log=True),
        service_account_key=dict(type="str", no_log=True),
        credential_helper=dict(type="str"),
        aad_access_token=dict(type="str", no_log=True),
        tenant=dict(type="str"),
    )
    return spec


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_together=connection_required_together(),
        supports_check_mode=True,
    )
    ok, result = run_registry_module(module, registry_login)
    (module.exit_json if ok else module.fail_json)(**result)


if __name__ == "__main__":
    main()
