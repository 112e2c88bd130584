# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import base64
import json
import os

import pytest

from ansible_collections.dockyard.registry.plugins.module_utils._errors import (
    InvalidInput,
    RegistryError,
    Unauthorized,
    Unreachable,
)
from ansible_collections.dockyard.registry.plugins.module_utils._providers import (
    detect_provider,
    ecr_host_parts,
    load_service_account_key,
    login_for,
    resolve_provider,
)

KEY = {
    "type": "service_account",
    "project_id": "demo",
    "private_key_id": "abc",
    "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n",
    "client_email": "pusher@demo.iam.gserviceaccount.com",
}


@pytest.mark.parametrize("host,provider", [
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com", "ecr"),
    ("123456789012.dkr.ecr-fips.us-east-1.amazonaws.com", "ecr"),
    ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", "ecr"),
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com:443", "ecr"),
    ("12345.dkr.ecr.eu-west-1.amazonaws.com", "generic"),
    ("gcr.io", "gcr"),
    ("eu.gcr.io", "gcr"),
    ("europe-west1-docker.pkg.dev", "gcr"),
    ("myreg.azurecr.io", "acr"),
    ("ghcr.io", "ghcr"),
    ("docker.io", "dockerhub"),
    ("index.docker.io", "dockerhub"),
    ("registry-1.docker.io", "dockerhub"),
    ("localhost:5000", "generic"),
    ("registry.example.com", "generic"),
    ("notgcr.io", "generic"),
    ("azurecr.io.example.com", "generic"),
])
def test_detect_provider(host, provider):
    assert detect_provider(host) == provider


def test_ecr_host_parts():
    assert ecr_host_parts("123456789012.dkr.ecr.eu-west-1.amazonaws.com") == ("123456789012", "eu-west-1")
    assert ecr_host_parts("localhost:5000") is None


@pytest.mark.parametrize("provider,registry,username,password,expected", [
    ("auto", None, None, None, "dockerhub"),
    ("auto", "ghcr.io", "u", "p", "ghcr"),
    ("auto", "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com", None, None, "ecr"),
    ("auto", "123456789012.dkr.ecr.eu-west-1.amazonaws.com", "AWS", "token", "generic"),
    ("auto", "http://127.0.0.1:5000", "u", "p", "generic"),
    ("ecr", "localhost:5000", None, None, "ecr"),
])
def test_resolve_provider(provider, registry, username, password, expected):
    assert resolve_provider(provider, registry, username, password) == expected


def test_service_account_key_content_and_file(tmp_path):
    text = json.dumps(KEY)
    assert json.loads(load_service_account_key("  %s\n" % text)) == KEY
    path = tmp_path / "key.json"
    path.write_text(text + "\n")
    assert load_service_account_key(str(path)) == text


@pytest.mark.parametrize("content,message", [
    ('{"type": "service_account", "private_key": "SECRETKEY"', "not valid JSON"),
    ('{"type": "authorized_user", "private_key": "SECRETKEY", "client_email": "a@b"}', "not a service account key"),
    ('{"type": "service_account", "private_key": "SECRETKEY"}', "client_email"),
])
def test_service_account_key_invalid_never_echoed(content, message):
    with pytest.raises(InvalidInput) as exc:
        load_service_account_key(content)
    assert message in str(exc.value)
    assert "SECRETKEY" not in str(exc.value)


def test_service_account_key_missing_file(tmp_path):
    with pytest.raises(InvalidInput, match="does not exist"):
        load_service_account_key(str(tmp_path / "nope.json"))


def test_service_account_key_fifo_is_refused_at_once(tmp_path):
    import threading
    path = tmp_path / "key.json"
    os.mkfifo(str(path))
    outcome = {}

    def attempt():
        try:
            load_service_account_key(str(path))
        except InvalidInput as exc:
            outcome["error"] = exc
    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(10)
    try:
        assert not thread.is_alive(), "load_service_account_key blocked on a FIFO"
    finally:
        try:
            os.close(os.open(str(path), os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    assert "service account key file %s is a FIFO" % path in str(outcome["error"])


def test_login_for_gcr():
    registry, credentials = login_for("gcr", "europe-west1-docker.pkg.dev", service_account_key=json.dumps(KEY))
    assert registry.host == "europe-west1-docker.pkg.dev"
    assert credentials.username == "_json_key"
    assert json.loads(credentials.password) == KEY
    registry, credentials = login_for("gcr", None, "oauth2accesstoken", "ya29.token")
    assert (registry.host, credentials.username) == ("gcr.io", "oauth2accesstoken")
    with pytest.raises(InvalidInput, match="_json_key"):
        login_for("gcr", None, "someone", None, service_account_key=json.dumps(KEY))


@pytest.mark.parametrize("provider,registry,host", [
    ("ghcr", None, "ghcr.io"),
    ("dockerhub", None, "registry-1.docker.io"),
    ("generic", None, "registry-1.docker.io"),
    ("generic", "http://127.0.0.1:5000", "127.0.0.1:5000"),
    ("acr", "myreg.azurecr.io", "myreg.azurecr.io"),
])
def test_login_for_user_and_token(provider, registry, host):
    address, credentials = login_for(provider, registry, "app-id", "secret")
    assert address.host == host
    assert (credentials.username, credentials.password) == ("app-id", "secret")


@pytest.mark.parametrize("provider,registry,username,password,message", [
    ("acr", None, "a", "b", "needs registry"),
    ("acr", "x.azurecr.io", "a", None, "application id and secret"),
    ("ghcr", None, None, "tok", "personal access token"),
    ("generic", "localhost:5000", "u", None, "username and password"),
    ("gcr", None, None, None, "service_account_key"),
    ("auto", None, "u", "p", "unknown provider"),
])
def test_login_for_missing_options(provider, registry, username, password, message):
    with pytest.raises(InvalidInput, match=message):
        login_for(provider, registry, username, password)


# --- ECR against a real moto server on loopback (the moto_endpoint fixture is in ../conftest.py) -----

@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    # Only the moto endpoint may be contacted: no instance metadata, no shared config.
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    return tmp_path


def test_ecr_token_from_moto(moto_endpoint, aws_env):
    pytest.importorskip("boto3")
    registry, credentials = login_for("ecr", region="eu-west-1", registry_id="123456789012",
                                      endpoint_url=moto_endpoint, aws_access_key_id="testing",
                                      aws_secret_access_key="testing")
    # The address comes from proxyEndpoint, the token decodes to AWS:<password>.
    assert registry.host == "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    assert registry.scheme == "https"
    assert credentials.username == "AWS"
    assert credentials.password == "123456789012-auth-token"


def test_ecr_registry_overrides_proxy_endpoint_and_host_gives_defaults(moto_endpoint, aws_env):
    pytest.importorskip("boto3")
    registry, credentials = login_for("ecr", "localhost:5203", endpoint_url=moto_endpoint, region="us-east-1",
                                      registry_id="210987654321", aws_access_key_id="testing",
                                      aws_secret_access_key="testing")
    assert registry.host == "localhost:5203"
    assert credentials.password == "210987654321-auth-token"
    # An ECR host name supplies account and region.
    registry, credentials = login_for("ecr", "111122223333.dkr.ecr.ap-south-1.amazonaws.com",
                                      endpoint_url=moto_endpoint, aws_access_key_id="testing",
                                      aws_secret_access_key="testing")
    assert credentials.password == "111122223333-auth-token"


def test_ecr_profile_from_shared_files(moto_endpoint, aws_env):
    pytest.importorskip("boto3")
    (aws_env / "aws-credentials").write_text("[deploy]\naws_access_key_id = a\naws_secret_access_key = b\n")
    (aws_env / "aws-config").write_text("[profile deploy]\nregion = eu-central-1\n")
    registry, credentials = login_for("ecr", profile="deploy", registry_id="123456789012",
                                      endpoint_url=moto_endpoint)
    assert registry.host == "123456789012.dkr.ecr.eu-central-1.amazonaws.com"
    with pytest.raises(InvalidInput, match="profile"):
        login_for("ecr", profile="missing", endpoint_url=moto_endpoint)


def test_ecr_without_credentials_or_region(moto_endpoint, aws_env):
    pytest.importorskip("boto3")
    with pytest.raises(Unauthorized, match="no AWS credentials"):
        login_for("ecr", region="eu-west-1", endpoint_url=moto_endpoint)
    with pytest.raises(InvalidInput, match="region"):
        login_for("ecr", aws_access_key_id="a", aws_secret_access_key="b", endpoint_url=moto_endpoint)


def test_ecr_endpoint_unreachable(aws_env):
    pytest.importorskip("boto3")
    import socket
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(Unreachable, match="unreachable"):
        login_for("ecr", region="eu-west-1", endpoint_url="http://127.0.0.1:%d" % port,
                  aws_access_key_id="a", aws_secret_access_key="b")


# --- ACR: the Azure AD token exchange -------------------------------------------------------------

def _jwt(claims):
    def part(data):
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return "%s.%s.signature" % (part({"alg": "HS256"}), part(claims))


TENANT = "7c1d2f3e-4b5a-4c6d-8e7f-90a1b2c3d4e5"


def test_aad_token_checks():
    from ansible_collections.dockyard.registry.plugins.module_utils._providers import check_aad_token
    token = _jwt({"tid": TENANT, "exp": 2000})
    assert check_aad_token(token, None, now=1000) == TENANT
    assert check_aad_token(token, TENANT.upper(), now=1000) == TENANT
    with pytest.raises(InvalidInput, match="not an Azure AD access token") as caught:
        check_aad_token("not-a-jwt-secret", None, now=1000)
    assert "not-a-jwt-secret" not in str(caught.value)
    with pytest.raises(Unauthorized, match="expired 1970-01-01 00:33:20 UTC.*az account get-access-token"):
        check_aad_token(token, None, now=3000)
    with pytest.raises(Unauthorized, match="issued in tenant %s, not in tenant other" % TENANT):
        check_aad_token(token, "other", now=1000)


class FakeAcrClient:
    """The two calls acr_exchange makes, answered as ACR does."""

    def __init__(self, status=200, body=b'{"refresh_token": "rt-123"}', challenge=None):
        from ansible_collections.dockyard.registry.plugins.module_utils._reference import parse_registry as parse
        self.registry = parse("myreg.azurecr.io")
        self.status, self.body = status, body
        self._challenge = challenge if challenge is not None else (
            "bearer", {"realm": "https://myreg.azurecr.io/oauth2/token", "service": "myreg.azurecr.io"})
        self.posted = []

    def challenge(self):
        return self._challenge

    def post_form(self, url, form, what):
        self.posted.append((url, form))
        return self.status, self.body


def test_acr_exchange_sends_what_az_sends():
    from ansible_collections.dockyard.registry.plugins.module_utils._providers import ACR_TOKEN_USERNAME, acr_exchange
    token = _jwt({"tid": TENANT, "exp": 4102444800})
    client = FakeAcrClient()
    credentials = acr_exchange(client, token)
    assert client.posted == [("https://myreg.azurecr.io/oauth2/exchange",
                              {"grant_type": "access_token", "service": "myreg.azurecr.io", "access_token": token,
                               "tenant": TENANT})]
    assert (credentials.username, credentials.password, credentials.identity_token) == \
        (ACR_TOKEN_USERNAME, None, "rt-123")


@pytest.mark.parametrize("client, kind, message", [
    (FakeAcrClient(401, b'{"errors": [{"code": "UNAUTHORIZED", "message": "bad token TOKEN"}]}'), Unauthorized,
     "refused the Azure AD access token \\(HTTP 401 .*UNAUTHORIZED: bad token <aad_access_token>\\).*AcrPull"),
    (FakeAcrClient(500, b"<html>oops</html>"), RegistryError, "answered HTTP 500"),
    (FakeAcrClient(200, b"{}"), RegistryError, "without a refresh_token"),
    (FakeAcrClient(challenge=("basic", {"realm": "x"})), RegistryError, "does not ask for a Bearer token login"),
])
def test_acr_exchange_failures_never_echo_the_token(client, kind, message):
    from ansible_collections.dockyard.registry.plugins.module_utils._providers import acr_exchange
    token = _jwt({"tid": TENANT, "exp": 4102444800})
    client.body = client.body.replace(b"TOKEN", token.encode())
    with pytest.raises(kind, match=message) as caught:
        acr_exchange(client, token)
    assert token not in str(caught.value)
