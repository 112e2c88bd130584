# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""Checks of the services a registry depends on, before it is (re)configured to use them.

A registry on S3 with a Redis cache, or a pull-through cache, starts with a configuration
that names services elsewhere; when one of them is wrong the registry panics (an unreachable
proxy upstream), crash-loops, or serves errors. These functions ask each service the one
question that proves the registry will work with it, with nothing but the standard library
(no boto3, no redis-py on the target), and raise :class:`RegistryError` subclasses whose
messages name the service, the cause and the fix, never a secret:

* :func:`check_s3` lists at most one key under the registry's root directory
  (``ListObjectsV2``, signed with AWS Signature Version 4), which needs exactly what the
  registry needs to read: the endpoint reachable, the credentials valid, the bucket there;
* :func:`check_redis` authenticates, selects the database and sends ``PING``;
* :func:`check_upstream` reads the upstream's ``/v2/`` challenge: distribution 2.8.2's proxy
  authenticates only to Bearer token upstreams, so a Basic challenge is refused here.

:func:`registry_backend_check` is the module's work: parameters in, result out. HTTP goes
through :mod:`_transport` (TLS contexts, proxies from the environment), challenges through
:mod:`_auth`.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import http.client
import json
import os
import re
import socket
import ssl
from typing import Any, BinaryIO, Callable, Mapping, NamedTuple
from urllib.parse import quote, urlencode, urlsplit

from ansible_collections.dockyard.registry.plugins.module_utils._auth import basic_authorization, parse_challenge
from ansible_collections.dockyard.registry.plugins.module_utils._errors import (
    Denied,
    InvalidInput,
    NotFound,
    RegistryError,
    ServerError,
    TLSError,
    Unauthorized,
    Unreachable,
    Unsupported,
)
from ansible_collections.dockyard.registry.plugins.module_utils._transport import HttpTransport, tls_context

__all__ = [
    "S3Credentials",
    "check_redis",
    "check_s3",
    "check_upstream",
    "find_s3_credentials",
    "registry_backend_check",
    "s3_request_url",
    "sign_v4",
]

IMDS = "169.254.169.254"


class S3Credentials(NamedTuple):
    access_key: str
    secret_key: str
    session_token: str = ""
    source: str = "options"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _request(url: str, method: str = "GET", headers: dict | None = None, context: ssl.SSLContext | None = None,
             timeout: float = 10, what: str = "", use_proxies: bool = True) -> tuple[int, Callable, bytes]:
    """One HTTP request; answers (status, its getheader, the body's first 64 KiB) for any status."""
    transport = HttpTransport(context, use_proxies=use_proxies)
    what = what or urlsplit(url).netloc
    try:
        response = transport.request(method, url, headers or {}, None, timeout)
        try:
            return response.status, response.getheader, response.read(65536)
        finally:
            response.close()
    except ssl.SSLError as exc:
        raise TLSError("TLS to %s failed: %s." % (what, getattr(exc, "reason", None) or exc),
                       hint="Give the CA that signed its certificate (ca_cert), or check the address.")
    except (OSError, http.client.HTTPException) as exc:
        raise Unreachable("%s cannot be reached: %s." % (_cap(what), exc),
                          hint="Check the address and port, and that it answers from this host.")
    finally:
        transport.close()


# ---- S3 ---------------------------------------------------------------------

def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def sign_v4(method: str, url: str, region: str, service: str, credentials: S3Credentials,
            now: datetime.datetime, payload: bytes = b"") -> dict:
    """Headers that sign a request with AWS Signature Version 4 (header-based)."""
    parts = urlsplit(url)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    payload_hash = _sha256(payload)
    headers = {"host": parts.netloc, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
    if credentials.session_token:
        headers["x-amz-security-token"] = credentials.session_token
    query = []
    for item in parts.query.split("&") if parts.query else []:
        key, _sep, value = item.partition("=")
        query.append((key, value))
    # The URL's query is already encoded with the unreserved set AWS wants; sort it as is.
    canonical_query = "&".join("%s=%s" % kv for kv in sorted(query))
    signed = sorted(headers)
    canonical = "\n".join([
        method,
        parts.path or "/",
        canonical_query,
        "".join("%s:%s\n" % (name, headers[name].strip()) for name in signed),
        ";".join(signed),
        payload_hash,
    ])
    scope = "%s/%s/%s/aws4_request" % (day, region, service)
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, _sha256(canonical.encode("utf-8"))])
    key = _hmac(("AWS4" + credentials.secret_key).encode("utf-8"), day)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    headers["authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        credentials.access_key, scope, ";".join(signed), signature)
    del headers["host"]  # http.client sends it
    return headers


def s3_request_url(bucket: str, region: str, endpoint: str, secure: bool, prefix: str) -> str:
    """The ListObjectsV2 URL the registry's driver would address: path-style with an endpoint
    (``regionendpoint`` forces it in 2.8.2), virtual-hosted on AWS (path-style for dotted names)."""
    query = urlencode([("list-type", "2"), ("max-keys", "1"), ("prefix", prefix)], quote_via=quote, safe="-_.~")
    if endpoint:
        base = endpoint if "://" in endpoint else ("https://" if secure else "http://") + endpoint
        return "%s/%s/?%s" % (base.rstrip("/"), quote(bucket, safe=""), query)
    scheme = "https" if secure else "http"
    if "." in bucket:
        return "%s://s3.%s.amazonaws.com/%s/?%s" % (scheme, region, quote(bucket, safe=""), query)
    return "%s://%s.s3.%s.amazonaws.com/?%s" % (scheme, bucket, region, query)


def _imds_credentials(timeout: float) -> S3Credentials | None:
    """Instance-profile credentials through IMDSv2, or None when there is no metadata service."""
    try:
        status, _h, token = _request("http://%s/latest/api/token" % IMDS, "PUT",
                                     {"X-aws-ec2-metadata-token-ttl-seconds": "60"}, timeout=timeout,
                                     use_proxies=False)
        if status != 200:
            return None
        auth = {"X-aws-ec2-metadata-token": token.decode("ascii", "replace")}
        base = "http://%s/latest/meta-data/iam/security-credentials/" % IMDS
        status, _h, roles = _request(base, headers=auth, timeout=timeout, use_proxies=False)
        role = roles.decode("utf-8", "replace").strip().splitlines()[0] if status == 200 and roles.strip() else ""
        if not role:
            return None
        status, _h, body = _request(base + role, headers=auth, timeout=timeout, use_proxies=False)
        data = json.loads(body.decode("utf-8")) if status == 200 else {}
    except (RegistryError, ValueError):
        return None
    if not data.get("AccessKeyId"):
        return None
    return S3Credentials(data["AccessKeyId"], data.get("SecretAccessKey", ""), data.get("Token", ""),
                         "instance profile")


def find_s3_credentials(access_key: str, secret_key: str, environ: Mapping[str, str],
                        imds_timeout: float = 1.0) -> S3Credentials | None:
    """The credentials the registry would use: the options, else the environment, else the
    instance profile (the S3 driver's own order). None when there are none to check with."""
    if access_key or secret_key:
        if not (access_key and secret_key):
            raise InvalidInput("An S3 access key and secret key must be given together.")
        return S3Credentials(access_key, secret_key)
    if environ.get("AWS_ACCESS_KEY_ID") and environ.get("AWS_SECRET_ACCESS_KEY"):
        return S3Credentials(environ["AWS_ACCESS_KEY_ID"], environ["AWS_SECRET_ACCESS_KEY"],
                             environ.get("AWS_SESSION_TOKEN", ""), "environment")
    return _imds_credentials(imds_timeout)


_S3_CODE = re.compile(r"<Code>([^<]+)</Code>")
_S3_REGION = re.compile(r"<(?:Region|ExpectedRegion)>([^<]+)</")


def check_s3(bucket: str, region: str, endpoint: str, credentials: S3Credentials, root_directory: str = "",
             secure: bool = True, context: ssl.SSLContext | None = None, timeout: float = 10,
             now: datetime.datetime | None = None) -> dict:
    """List at most one key under the root directory; raise with the cause when that fails."""
    prefix = root_directory.strip("/")
    prefix = prefix + "/" if prefix else ""
    url = s3_request_url(bucket, region, endpoint, secure, prefix)
    where = "the S3 bucket %s at %s" % (bucket, endpoint or "AWS (%s)" % region)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    headers = sign_v4("GET", url, region, "s3", credentials, now)
    status, header, body = _request(url, headers=headers, context=context, timeout=timeout, what=where)
    text = body.decode("utf-8", "replace")
    match = _S3_CODE.search(text)
    code = match.group(1) if match else ""
    if status == 200:
        return {"bucket": bucket, "endpoint": endpoint, "region": region, "prefix": prefix,
                "empty": "<Contents>" not in text, "credentials": credentials.source}
    if code == "NoSuchBucket" or (status == 404 and not code):
        raise NotFound("%s does not exist." % _cap(where), status=status,
                       hint="Create the bucket first (the registry does not create buckets), or fix the bucket name.")
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"):
        problem = {"InvalidAccessKeyId": "does not know the access key",
                   "SignatureDoesNotMatch": "does not accept the secret key for this access key",
                   }.get(code, "refused the session token")
        raise Unauthorized("%s %s (%s, %s credentials)." % (_cap(where), problem, code, credentials.source),
                           status=status, hint="Fix the S3 access key and secret key.")
    if code in ("PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException") or \
            status == 301:
        found = _S3_REGION.search(text)
        other = found.group(1) if found else header("x-amz-bucket-region", "another region")
        raise InvalidInput("%s is not in region %s but in %s (%s)." % (_cap(where), region, other, code or status),
                           status=status, hint="Set the S3 region to the bucket's region.")
    if code == "AccessDenied" or status == 403:
        raise Denied("%s refused to list objects for these credentials (%s)." % (_cap(where), code or status),
                     status=status, hint="Allow s3:ListBucket on the bucket and s3:GetObject, s3:PutObject, "
                     "s3:DeleteObject and the multipart actions on its objects.")
    raise ServerError("%s answered %s %s." % (_cap(where), status, code or text[:200].strip()), status=status)


# ---- Redis ------------------------------------------------------------------

def _resp_command(*words: str) -> bytes:
    out = [b"*%d\r\n" % len(words)]
    for word in words:
        data = word.encode("utf-8")
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _resp_read(stream: BinaryIO) -> Any:
    """One RESP reply: a str for +, an Exception-like tuple ('-', msg) for -, int, bytes, list."""
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ServerError("The Redis server closed the connection.")
    kind, rest = line[:1], line[1:-2].decode("utf-8", "replace")
    if kind == b"+":
        return rest
    if kind == b"-":
        return ("-", rest)
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        data = stream.read(size + 2)
        return data[:-2]
    if kind == b"*":
        return [_resp_read(stream) for _i in range(max(int(rest), 0))]
    raise ServerError("The server at the Redis address does not speak the Redis protocol (it sent %r)." % line[:40])


def check_redis(address: str, password: str = "", db: int = 0, timeout: float = 5) -> dict:
    """Authenticate, select ``db`` and PING; answer the server's version and maxmemory policy."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or not host:
        raise InvalidInput("The Redis address %r is not host:port." % address)
    host = host.strip("[]")
    try:
        sock = socket.create_connection((host, int(port_text)), timeout=timeout)
    except OSError as exc:
        raise Unreachable("Redis at %s cannot be reached: %s." % (address, exc),
                          hint="Check the address, that redis-server listens there (its bind setting) "
                          "and that the firewall lets this host in.")
    try:
        stream = sock.makefile("rwb")

        def ask(*words: str) -> Any:
            stream.write(_resp_command(*words))
            stream.flush()
            return _resp_read(stream)

        def refuse_denied(answer: Any) -> None:
            if isinstance(answer, tuple) and answer[1].startswith("DENIED"):
                raise Denied("Redis at %s refuses connections from this host: it runs in protected mode (no password "
                             "set, only loopback clients)." % address,
                             hint="Give Redis a password (requirepass) and the registry that password, or turn "
                             "protected-mode off on a network only the registry hosts reach.")

        if password:
            answer = ask("AUTH", password)
            refuse_denied(answer)
            if isinstance(answer, tuple):
                raise Unauthorized("Redis at %s refused the password (%s)." % (address, answer[1].split(" ")[0]),
                                   hint="Fix the Redis password.")
        answer = ask("SELECT", str(db))
        refuse_denied(answer)
        if isinstance(answer, tuple):
            if answer[1].startswith("NOAUTH"):
                raise Unauthorized("Redis at %s needs a password." % address, hint="Give the Redis password.")
            raise InvalidInput("Redis at %s cannot select database %d (%s)." % (address, db, answer[1]),
                               hint="Use a database number the server has (databases in redis.conf, 16 by default).")
        answer = ask("PING")
        if answer != "PONG":
            raise ServerError("Redis at %s answered PING with %r." % (address, answer))
        info = ask("INFO")
        fields = {}
        if isinstance(info, bytes):
            for line in info.decode("utf-8", "replace").splitlines():
                key, sep, value = line.partition(":")
                if sep:
                    fields[key.strip()] = value.strip()
        return {"address": address, "db": db, "version": fields.get("redis_version", ""),
                "maxmemory_policy": fields.get("maxmemory_policy", "")}
    except socket.timeout:
        raise Unreachable("Redis at %s did not answer within %s s." % (address, timeout))
    except OSError as exc:
        raise Unreachable("Redis at %s closed the connection: %s." % (address, exc))
    finally:
        sock.close()


# ---- pull-through upstream --------------------------------------------------

def check_upstream(url: str, username: str = "", password: str = "", context: ssl.SSLContext | None = None,
                   timeout: float = 10) -> dict:
    """What a pull-through cache would meet at ``url``; raise when 2.8.2's proxy cannot use it."""
    base = url.rstrip("/")
    if not re.match(r"^https?://[^/]+$", base):
        raise InvalidInput("The upstream %r is not a registry URL like https://host[:port]." % url)
    status, header, _body = _request(base + "/v2/", context=context, timeout=timeout,
                                     what="the upstream registry %s" % base)
    if status == 200:
        return {"url": base, "auth": "none"}
    if status != 401:
        raise ServerError("The upstream registry %s answered %d to GET /v2/; a registry answers 200 or 401."
                          % (base, status), status=status, hint="Check that the URL names a registry.")
    scheme, params = parse_challenge(header("www-authenticate", ""))
    if scheme == "basic":
        raise Unsupported(
            "The upstream registry %s asks for Basic (htpasswd) auth. The pull-through cache of registry 2.8.2 "
            "authenticates only to Bearer token upstreams: against Basic auth every pull would fail with 401."
            % base, status=status,
            hint="Put a token-auth registry (or Docker Hub and other token registries) upstream instead.")
    if scheme != "bearer" or not params.get("realm"):
        raise Unsupported("The upstream registry %s asks for %r auth, which the pull-through cache cannot do."
                          % (base, scheme or "unknown"), status=status)
    result = {"url": base, "auth": "bearer", "realm": params["realm"], "service": params.get("service", "")}
    query = urlencode([("service", params.get("service", ""))])
    headers_out = {}
    if username:
        headers_out["Authorization"] = basic_authorization(username, password)
    status, _h, _body = _request(params["realm"] + ("&" if "?" in params["realm"] else "?") + query,
                                 headers=headers_out, context=context, timeout=timeout,
                                 what="the upstream's token server %s" % params["realm"])
    if status == 401 and username:
        raise Unauthorized("The upstream's token server %s refused the credentials of %s." % (params["realm"], username),
                           status=status, hint="Fix the pull-through cache's username and password.")
    if status != 200:
        raise ServerError("The upstream's token server %s answered %d." % (params["realm"], status), status=status)
    return result


# ---- the module -------------------------------------------------------------

def registry_backend_check(params: dict, **_run: Any) -> dict:
    """registry_backend_check's result for its parameters (what ``run_registry_module`` calls; it
    only reads, so check mode changes nothing). Warnings go in ``warnings``."""
    result: dict = {"changed": False}
    warnings = []
    timeout = params["timeout"]
    s3 = params["s3"]
    if s3:
        credentials = find_s3_credentials(s3["access_key"], s3["secret_key"], os.environ)
        if credentials is None:
            warnings.append("No S3 credentials were given and none were found in the environment or an instance "
                            "profile: the bucket %s was not checked." % s3["bucket"])
            result["s3"] = {"checked": False, "bucket": s3["bucket"]}
        else:
            context = tls_context(not s3["skip_verify"], params["ca_cert"])
            result["s3"] = dict(check_s3(s3["bucket"], s3["region"], s3["endpoint"], credentials,
                                         s3["root_directory"], s3["secure"], context, timeout), checked=True)
    redis = params["redis"]
    if redis:
        found = check_redis(redis["address"], redis["password"], redis["db"], timeout)
        if found["maxmemory_policy"] and found["maxmemory_policy"] != "allkeys-lru":
            warnings.append("Redis at %s has maxmemory-policy %s; the registry's cache wants allkeys-lru (set it in "
                            "redis.conf), or a full Redis refuses new entries."
                            % (redis["address"], found["maxmemory_policy"]))
        result["redis"] = found
    upstream = params["upstream"]
    if upstream:
        result["upstream"] = check_upstream(upstream["url"], upstream["username"], upstream["password"],
                                            tls_context(True, params["ca_cert"]), timeout)
    if warnings:
        result["warnings"] = warnings
    return result
