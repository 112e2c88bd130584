# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""registry_diagnose's work: the debug checklist for "I cannot pull", run on the failing host.

Ten checks in order - the reference as the docker CLI reads it, name resolution, TCP (and the
proxy variables in effect), TLS, ``/v2/``, clock skew, credentials, the image, permissions, and
whether this host's engines (Docker, containerd, Podman) trust the registry the way the checks
found they must. Each check is ``{name, status, detail, fix}``; a check whose precondition
failed is ``skip`` with the reason. Nothing is changed anywhere: the only request that is not a
read is the optional push probe, an upload session that is opened and cancelled at once.

The network checks below the client (resolution, TCP, the TLS handshake) use sockets and
``ssl`` directly, because the client hides what went wrong at that level behind one message;
from ``/v2/`` on, the collection's ``RegistryClient`` does the talking (auth, tokens, errors).
No detail or fix ever holds a secret: proxy URLs lose their user info, credentials are named by
their source only.
"""

from __future__ import annotations

import base64
import difflib
import glob
import ipaddress
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from email.utils import parsedate_to_datetime
from typing import Callable
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

from ansible_collections.dockyard.registry.plugins.module_utils import _runtime_config as rc
from ansible_collections.dockyard.registry.plugins.module_utils._argspec import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
)
from ansible_collections.dockyard.registry.plugins.module_utils._auth import Credentials, parse_challenge
from ansible_collections.dockyard.registry.plugins.module_utils._client import RegistryClient, RetryStats
from ansible_collections.dockyard.registry.plugins.module_utils._client_config import find_command
from ansible_collections.dockyard.registry.plugins.module_utils._docker_config import (
    default_config_path,
    find_credentials,
    helper_for,
    load_config,
    stored_entry,
)
from ansible_collections.dockyard.registry.plugins.module_utils._errors import (
    Denied,
    InvalidInput,
    NotFound,
    RegistryError,
    Unauthorized,
)
from ansible_collections.dockyard.registry.plugins.module_utils._reference import (
    ImageReference,
    Registry,
    parse_reference,
    parse_registry,
)
from ansible_collections.dockyard.registry.plugins.module_utils._transport import HttpTransport, tls_context

_toml = rc.toml_parser()

__all__ = [
    "CHECK_NAMES",
    "Check",
    "Diagnosis",
    "STATUSES",
    "closest",
    "ecr_token_expiry",
    "failing",
    "name_matches",
    "registry_diagnose",
    "summary_lines",
]

CHECK_NAMES = ("reference", "resolve", "connect", "tls", "api", "clock", "credentials", "image",
               "permissions", "engines")
STATUSES = ("ok", "warn", "fail", "skip")
CONNECT_TIMEOUT = 5.0
EXPIRY_WARNING_DAYS = 30
CLOCK_WARN_SECONDS = 60
CLOCK_FAIL_SECONDS = 300
API_VERSION_HEADER = "Docker-Distribution-API-Version"
ROLE_FIX = "the dockyard.registry.registry_client role (or playbook dockyard.registry.trust_registry)"
LOGIN_FIX = "log in again with dockyard.registry.registry_login (or docker login %s)"
_ECR_HOST = re.compile(r"^\d{12}\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?(:\d+)?$")
_PLAIN_HTTP_REASONS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "UNKNOWN_PROTOCOL", "HTTP_REQUEST",
                       "PACKET_LENGTH_TOO_LONG")
# OpenSSL X509_V_ERR_* codes worth their own words
_VERIFY_CODES = {
    9: "not yet valid", 10: "expired", 18: "self-signed", 19: "self-signed CA in the chain not trusted",
    20: "signed by an unknown CA", 21: "signed by an unknown CA", 62: "name mismatch", 64: "IP address mismatch",
}


class Check:
    """One line of the checklist."""

    __slots__ = ("name", "status", "detail", "fix")

    def __init__(self, name: str, status: str, detail: str, fix: str | None = None) -> None:
        self.name = name
        self.status = status
        self.detail = detail
        self.fix = fix

    def as_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


def failing(checks: list[dict], fail_on: str) -> list[dict]:
    """The checks that make the module fail for ``fail_on`` (``never``, ``fail``, ``warn``)."""
    if fail_on == "never":
        return []
    bad = ("fail",) if fail_on == "fail" else ("fail", "warn")
    return [c for c in checks if c["status"] in bad]


def summary_lines(checks: list[dict]) -> list[str]:
    """One line per check: status, name, detail; a failed or warned check's fix on the next line."""
    lines = []
    for check in checks:
        lines.append("%-5s %-12s %s" % (check["status"].upper(), check["name"], check["detail"]))
        if check["fix"] and check["status"] in ("fail", "warn"):
            lines.append("      %-12s fix: %s" % ("", check["fix"]))
    return lines


def closest(word: str, candidates: list[str], count: int = 3) -> list[str]:
    """Near misses of ``word``: extensions of it first (``v1.0`` -> ``v1.0.0``), then similar names."""
    found = [c for c in candidates if c != word and (c.startswith(word) or word.startswith(c))]
    found.sort(key=lambda c: (abs(len(c) - len(word)), c))
    for match in difflib.get_close_matches(word, candidates, n=count + len(found), cutoff=0.6):
        if match not in found and match != word:
            found.append(match)
    tail = word.rsplit("/", 1)[-1]
    for candidate in candidates:
        if candidate.rsplit("/", 1)[-1] == tail and candidate not in found and candidate != word:
            found.append(candidate)
    return found[:count]


def name_matches(host: str, names: list[str]) -> bool:
    """RFC 6125 matching of a host name or IP address against the certificate's names."""
    host = host.strip("[]").lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for name in names:
        name = name.lower()
        if address is not None:
            try:
                if ipaddress.ip_address(name) == address:
                    return True
            except ValueError:
                pass
            continue
        if name == host:
            return True
        if name.startswith("*.") and "." in host:
            if host.split(".", 1)[1] == name[2:]:
                return True
    return False


def ecr_token_expiry(password: str | None) -> float | None:
    """The expiry (epoch seconds) an ECR authorization token carries, when it is one."""
    if not password:
        return None
    try:
        data = json.loads(base64.b64decode(password + "=" * (-len(password) % 4)).decode("utf-8"))
        return float(data["expiration"])
    except (ValueError, TypeError, KeyError, UnicodeDecodeError, AttributeError):
        return None


def _redact_url(url: str) -> str:
    """A proxy URL without its user info (it may hold a password)."""
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = "%s:%d" % (host, parts.port)
    return "%s://%s%s" % (parts.scheme, "***@" if parts.username or parts.password else "", host)


def _decode_certificate(der: bytes) -> dict:
    """``getpeercert()``'s dict for a certificate that did not verify (ssl only decodes verified ones)."""
    decode = getattr(getattr(ssl, "_ssl", None), "_test_decode_cert", None)
    if decode is None or not der:  # pragma: no cover - CPython has had it since 2.7
        return {}
    directory = tempfile.mkdtemp(prefix="dockyard-diagnose-")
    path = os.path.join(directory, "peer.pem")
    try:
        with open(path, "w") as handle:
            handle.write(ssl.DER_cert_to_PEM_cert(der))
        return decode(path)
    except (OSError, ValueError, ssl.SSLError):
        return {}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _cert_names(cert: dict) -> list[str]:
    names = [value for kind, value in cert.get("subjectAltName", ()) if kind in ("DNS", "IP Address")]
    if not names:
        for rdn in cert.get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    names.append(value)
    return names


def _dn(cert: dict, key: str) -> tuple:
    return tuple(tuple(rdn) for rdn in cert.get(key, ()))


def _read_text(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except (FileNotFoundError, NotADirectoryError):
        return None


def _toml_load(text: str, path: str) -> dict | None:
    """A TOML file as a dict; None when no TOML library is here or it does not parse."""
    if _toml is None:
        return None
    try:
        return _toml.loads(text)
    except Exception:  # pylint: disable=broad-except
        # tomllib and tomli raise their own error classes
        return None


class _Found:
    """What the checks learned, for the later checks."""

    def __init__(self) -> None:
        self.addresses: list[str] = []
        self.proxy: str | None = None           # the proxy URL (redacted) in effect for the registry
        self.proxy_raw: str | None = None
        self.scheme: str = "https"             # how the registry is spoken to after the TLS check
        self.trust: str | None = None           # system | ca_cert | certs_d | insecure | http
        self.trust_ca: str | None = None        # the CA file that verified the registry
        self.verified = False                   # certificate and name verified
        self.challenge: tuple[str, dict] | None = None
        self.client: RegistryClient | None = None
        self.credentials: Credentials | None = None
        self.pulled = None                      # True/False/None: pull of the image worked


class Diagnosis:
    """Runs the checks for one registry (and optionally one image) from this host."""

    def __init__(self, params: dict, retry_stats: RetryStats | None = None, *,
                 getaddrinfo: Callable[..., list] = socket.getaddrinfo,
                 wall_clock: Callable[[], float] = time.time,
                 environ: dict | None = None) -> None:
        self.params = params
        self.retry_stats = retry_stats if retry_stats is not None else RetryStats()
        self._getaddrinfo = getaddrinfo
        self._now = wall_clock
        self._environ = environ
        self.checks: list[Check] = []
        self.found = _Found()
        self.registry: Registry | None = None
        self.image: ImageReference | None = None
        timeout = params.get("timeout") or DEFAULT_TIMEOUT
        self.connect_timeout = min(CONNECT_TIMEOUT, timeout)
        self._date: str | None = None           # the registry's Date header (from the /v2/ answer)
        self._untrusted: str | None = None      # why credentials must not be sent (TLS did not verify)

    # -- bookkeeping ----------------------------------------------------------------------

    def add(self, name: str, status: str, detail: str, fix: str | None = None) -> Check:
        check = Check(name, status, detail, fix)
        self.checks.append(check)
        return check

    def skip_rest(self, reason: str, until: str | None = None) -> None:
        """Mark every check not yet run as skipped (up to, not including, ``until``)."""
        done = set(c.name for c in self.checks)
        for name in CHECK_NAMES:
            if name == until:
                return
            if name not in done:
                self.add(name, "skip", reason)

    def _hostport(self) -> tuple[str, int]:
        parts = urlsplit(self.registry.base_url)
        port = parts.port or (443 if self.registry.scheme == "https" else 80)
        return parts.hostname or "", port

    # -- the run --------------------------------------------------------------------------

    def run(self) -> dict:
        steps = [self.check_reference, self.check_resolve, self.check_connect, self.check_tls, self.check_api,
                 self.check_clock, self.check_credentials, self.check_image, self.check_permissions]
        try:
            for step in steps:
                if not step():
                    break
            failed = [c.name for c in self.checks if c.status in ("fail", "warn")]
            self.skip_rest("skipped: the %s check failed" % (failed[-1] if failed else "previous"), until="engines")
            self.check_engines()
        finally:
            if self.found.client is not None:
                self.found.client.close()
        checks = [c.as_dict() for c in self.checks]
        result = {
            "changed": False,
            "ok": not any(c["status"] == "fail" for c in checks),
            "checks": checks,
            "summary": summary_lines(checks),
            "registry": self.registry.display if self.registry else None,
            "image": str(self.image) if self.image else None,
        }
        return result

    # 1 ---------------------------------------------------------------------------------------

    def check_reference(self) -> bool:
        given_registry = self.params.get("registry")
        given_image = self.params.get("image")
        registry = None
        if given_registry:
            try:
                registry = parse_registry(given_registry)
            except InvalidInput as exc:
                self.add("reference", "fail", str(exc),
                         "give the registry as host[:port], https://host[:port] or http://host[:port]")
                return False
        if not given_image:
            self.registry = registry
            self.add("reference", "ok", "registry %s (%s); no image given, so the image checks are skipped"
                     % (registry.display, "plain HTTP" if registry.scheme == "http" else "HTTPS"))
            return True
        notes = []
        fix = None
        status = "ok"
        text = given_image.strip()
        scheme_given = None
        for prefix in ("http://", "https://"):
            if text.lower().startswith(prefix):
                scheme_given = prefix[:-3]
                text = text[len(prefix):]
        try:
            image = parse_reference(text)
        except InvalidInput as exc:
            lowered = text.lower()
            fix = "write the reference the way docker reads it"
            if lowered != text:
                fix = "repository names are lower case: write %s" % lowered
            self.add("reference", "fail", str(exc), fix)
            return False
        if scheme_given:
            status = "warn"
            notes.append("docker does not take a scheme in an image reference (%s://...: 'invalid reference "
                         "format')" % scheme_given)
            insecure = ""
            if scheme_given == "http":
                insecure = " and mark %s insecure on the engine (%s, insecure: true)" % (image.registry.host, ROLE_FIX)
            fix = "write %s without %s://%s" % (image, scheme_given, insecure)
            image = ImageReference(Registry(image.registry.host, scheme_given), image.repository, image.tag,
                                   image.digest)
        first = text.split("/", 1)[0]
        has_registry = "/" in text and ("." in first or ":" in first or first == "localhost" or first.startswith("["))
        if not has_registry and registry is not None and not registry.is_docker_hub:
            status = "warn"
            ours = parse_reference(text, default_registry=registry)
            hub = image if image.tag or image.digest else image.with_tag("latest")
            notes.append("but docker reads %r as %s (Docker Hub), not as an image on %s" % (text, hub, registry.display))
            fix = "write the registry into the name: %s" % str(ours).replace("http://", "")
            image = ours
        elif has_registry and registry is not None and (image.registry.host != registry.host):
            self.add("reference", "fail", "the image %s names registry %s, but registry is %s"
                     % (image, image.registry.display, registry.display),
                     "give one registry: drop the registry option or make the image name start with %s"
                     % registry.host)
            return False
        elif registry is not None and registry.scheme == "http" and image.registry.scheme == "https":
            image = ImageReference(registry, image.repository, image.tag, image.digest)
        if image.tag is None and image.digest is None:
            notes.append("no tag given: docker pulls %s" % image.with_tag("latest"))
            image = image.with_tag("latest")
        self.image = image
        self.registry = image.registry
        detail = ("%s (as the docker CLI reads it)" % image) if str(image) == given_image else (
            "%s is %s" % (given_image, image))
        if self.registry.scheme == "http":
            detail += " (plain HTTP)"
        if notes:
            detail += "; " + "; ".join(notes)
        self.add("reference", status, detail, fix)
        return True

    # 2 ---------------------------------------------------------------------------------------

    def _proxy_for(self) -> str | None:
        host, port = self._hostport()
        env = self._environ
        proxies = {k.lower(): v for k, v in (getproxies() if env is None else
                                             {k[:-6].lower(): v for k, v in env.items()
                                              if k.lower().endswith("_proxy") and v}).items()}
        proxy = proxies.get(self.registry.scheme)  # type: ignore[union-attr]
        if not proxy:
            return None
        if env is None:
            bypass = proxy_bypass("%s:%d" % (host, port)) or proxy_bypass(host)
        else:
            no_proxy = [n.strip().lower() for n in (env.get("no_proxy") or env.get("NO_PROXY") or "").split(",")]
            bypass = any(n == "*" or (n and (host == n.lstrip(".") or host.endswith("." + n.lstrip("."))
                                             or "%s:%d" % (host, port) == n)) for n in no_proxy)
        return None if bypass else proxy

    def check_resolve(self) -> bool:
        host, port = self._hostport()
        proxy = self._proxy_for()
        if proxy:
            self.found.proxy_raw = proxy
            self.found.proxy = _redact_url(proxy)
        try:
            infos = self._getaddrinfo(host.strip("[]"), port, 0, socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            why = getattr(exc, "strerror", None) or str(exc)
            if proxy:
                self.add("resolve", "warn", "%s does not resolve on this host (%s); the proxy %s resolves it for "
                         "this module, but an engine without that proxy cannot" % (host, why, self.found.proxy),
                         "check the name, or give the engines the same proxy (HTTPS_PROXY in their environment)")
                return True
            self.add("resolve", "fail", "%s does not resolve on this host (%s)" % (host, why),
                     "check the spelling of %s, /etc/hosts and the DNS servers in /etc/resolv.conf" % host)
            return False
        addresses = []
        for info in infos:
            if info[4][0] not in addresses:
                addresses.append(info[4][0])
        self.found.addresses = addresses
        self.add("resolve", "ok", "%s resolves to %s" % (host, ", ".join(addresses)))
        return True

    # 3 ---------------------------------------------------------------------------------------

    def _proxy_socket(self, timeout: float) -> socket.socket:
        """A TCP connection to the registry through the proxy's CONNECT tunnel."""
        host, port = self._hostport()
        proxy = self.found.proxy_raw or ""
        parts = urlsplit(proxy if "://" in proxy else "http://" + proxy)
        sock = socket.create_connection((parts.hostname, parts.port or 3128), timeout=timeout)
        headers = "CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n" % (host, port, host, port)
        if parts.username:
            raw = ("%s:%s" % (parts.username, parts.password or "")).encode("utf-8")
            headers += "Proxy-Authorization: Basic %s\r\n" % base64.b64encode(raw).decode("ascii")
        sock.sendall((headers + "\r\n").encode("latin-1"))
        answer = b""
        while b"\r\n\r\n" not in answer and len(answer) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        status = answer.split(b"\r\n", 1)[0].decode("latin-1", "replace")
        if " 200" not in status:
            sock.close()
            raise ConnectionError("the proxy answered %r to CONNECT %s:%d" % (status[:80], host, port))
        return sock

    def _socket(self) -> socket.socket:
        host, port = self._hostport()
        if self.found.proxy:
            return self._proxy_socket(self.connect_timeout)
        return socket.create_connection((host.strip("[]"), port), timeout=self.connect_timeout)

    def check_connect(self) -> bool:
        host, port = self._hostport()
        environ = self._environ if self._environ is not None else os.environ
        env_names = []
        for key, value in sorted(environ.items()):
            if key.lower() in ("https_proxy", "http_proxy", "all_proxy") and value:
                env_names.append("%s=%s" % (key, _redact_url(value)))
            elif key.lower() == "no_proxy" and value:
                env_names.append("%s=%s" % (key, value))
        proxy_note = ("proxy variables here: %s" % ", ".join(env_names)) if env_names else "no proxy variables set"
        if self.found.proxy:
            try:
                self._proxy_socket(self.connect_timeout).close()
            except OSError as exc:
                self.add("connect", "fail", "through the proxy %s (%s): %s" % (self.found.proxy, proxy_note, exc),
                         "check the proxy, or add %s to NO_PROXY when the registry is reached directly" % host)
                return False
            self.add("connect", "ok", "TCP to %s:%d through the proxy %s (%s)" % (host, port, self.found.proxy,
                                                                                  proxy_note))
            return True
        reached, failed = [], []
        for address in self.found.addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.settimeout(self.connect_timeout)
            try:
                sock.connect((address, port))
                reached.append(address)
            except socket.timeout:
                failed.append("%s: no answer within %gs (a firewall dropping packets?)" % (address, self.connect_timeout))
            except OSError as exc:
                failed.append("%s: %s" % (address, exc.strerror or exc))
            finally:
                sock.close()
        if not reached:
            self.add("connect", "fail", "nothing accepts TCP connections on port %d: %s (%s)"
                     % (port, "; ".join(failed), proxy_note),
                     "start the registry or fix the port: is %s:%d the address it listens on (and is a firewall "
                     "in the way)?" % (host, port))
            return False
        detail = "TCP to port %d: %s reached" % (port, ", ".join(reached))
        if failed:
            self.add("connect", "warn", "%s; %s (%s)" % (detail, "; ".join(failed), proxy_note),
                     "clients that try the other addresses first wait or fail: make the registry listen on every "
                     "address %s resolves to, or fix the name" % host)
            return True
        self.add("connect", "ok", "%s (%s)" % (detail, proxy_note))
        return True

    # 4 ---------------------------------------------------------------------------------------

    def _handshake(self, context: ssl.SSLContext) -> ssl.SSLSocket:
        host, _port = self._hostport()
        sock = self._socket()
        try:
            return context.wrap_socket(sock, server_hostname=host.strip("[]"))
        except BaseException:
            sock.close()
            raise

    def _speaks_http(self) -> bool:
        """Whether the port answers a plain-HTTP request."""
        host, port = self._hostport()
        try:
            sock = self._socket()
        except OSError:
            return False
        try:
            sock.sendall(("GET /v2/ HTTP/1.0\r\nHost: %s:%d\r\n\r\n" % (host, port)).encode("latin-1"))
            return sock.recv(5) == b"HTTP/"
        except OSError:
            return False
        finally:
            sock.close()

    def _certs_d_cas(self, directory: str) -> list[str]:
        return sorted(glob.glob(os.path.join(directory, self.registry.host, "*.crt")))

    def _verify_with(self, cafiles: list[str] | None, system: bool) -> tuple[bool, str | None, int | None]:
        """Whether the chain verifies with these CAs (names not checked): (ok, reason, openssl code)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_REQUIRED
        if system:
            context.load_default_certs()
        for cafile in cafiles or []:
            try:
                context.load_verify_locations(cafile=cafile)
            except (OSError, ssl.SSLError):
                continue
        try:
            self._handshake(context).close()
            return True, None, None
        except ssl.SSLCertVerificationError as exc:
            return False, exc.verify_message or str(exc), exc.verify_code
        except (ssl.SSLError, OSError) as exc:
            return False, str(exc), None

    def _name_ok(self, cafiles: list[str], system: bool) -> tuple[bool, str | None]:
        context = ssl.create_default_context() if system else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        for cafile in cafiles:
            context.load_verify_locations(cafile=cafile)
        try:
            self._handshake(context).close()
            return True, None
        except ssl.SSLCertVerificationError as exc:
            return False, exc.verify_message or str(exc)
        except (ssl.SSLError, OSError) as exc:
            return False, str(exc)

    def check_tls(self) -> bool:
        host, port = self._hostport()
        if self.registry.scheme == "http":
            self.found.scheme = "http"
            self.found.trust = "http"
            detail = "plain HTTP: no TLS to check"
            if self._speaks_tls():
                self.add("tls", "warn", "%s, but port %d speaks TLS" % (detail, port),
                         "the registry speaks HTTPS: write it as %s (without http://)" % self.registry.host)
                self.found.scheme = "https"
                return False
            self.add("tls", "ok", detail + " (written http://)")
            return True
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        probe.check_hostname = False
        probe.verify_mode = ssl.CERT_NONE
        try:
            # Only to learn what the server speaks: allow the old protocols OpenSSL 3 refuses by default.
            probe.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            probe.set_ciphers("DEFAULT:@SECLEVEL=0")
        except (ValueError, ssl.SSLError):  # pragma: no cover - builds without the old protocols
            pass
        try:
            tls_sock = self._handshake(probe)
        except ssl.SSLError as exc:
            reason = getattr(exc, "reason", None) or str(exc)
            if any(r in str(reason) for r in _PLAIN_HTTP_REASONS) and self._speaks_http():
                self.found.scheme = "http"
                self.found.trust = "http"
                self.add("tls", "fail", "port %d speaks plain HTTP, not TLS (%s)" % (port, reason),
                         "plain HTTP: write http://%s and mark it insecure on the engine (%s with insecure: true)"
                         % (self.registry.host, ROLE_FIX))
                return self._continue_untrusted("the registry speaks plain HTTP")
            self.add("tls", "fail", "the TLS handshake with %s:%d failed: %s" % (host, port, reason),
                     "check that port %d is the registry's TLS port and that it has a certificate configured" % port)
            return False
        except OSError as exc:
            self.add("tls", "fail", "the connection broke during the TLS handshake: %s" % exc,
                     "check that port %d is the registry's port" % port)
            return False
        try:
            version = tls_sock.version() or "unknown"
            cert = _decode_certificate(tls_sock.getpeercert(binary_form=True) or b"")
        finally:
            tls_sock.close()
        problems: list[str] = []
        warnings: list[str] = []
        fixes: list[str] = []
        facts = ["%s" % version]
        old_protocol = version in ("SSLv3", "TLSv1", "TLSv1.1")
        if old_protocol:
            problems.append("the server speaks only %s; docker, containerd and this collection need TLS 1.2 or newer"
                            % version)
            fixes.append("enable TLS 1.2 or 1.3 on the registry (or the proxy in front of it)")
        names = _cert_names(cert)
        if names:
            facts.append("certificate for %s" % ", ".join(names))
        not_after = cert.get("notAfter")
        expires = ssl.cert_time_to_seconds(not_after) if not_after else None
        not_before = cert.get("notBefore")
        starts = ssl.cert_time_to_seconds(not_before) if not_before else None
        now = self._now()
        if expires is not None:
            facts.append("valid until %s" % time.strftime("%Y-%m-%d", time.gmtime(expires)))
            if expires < now:
                problems.append("the certificate expired on %s"
                                % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(expires)))
                fixes.append("renew the registry's certificate (the dockyard.registry.registry role re-issues it "
                             "when it nears expiry)")
            elif expires - now < EXPIRY_WARNING_DAYS * 86400:
                warnings.append("the certificate expires in %d days" % int((expires - now) // 86400))
                fixes.append("renew the registry's certificate before %s"
                             % time.strftime("%Y-%m-%d", time.gmtime(expires)))
        if starts is not None and starts > now:
            problems.append("the certificate is not valid before %s (is this host's clock behind?)"
                            % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(starts)))
            fixes.append("check the clock of this host and of the machine that issued the certificate")
        self_signed = bool(cert) and _dn(cert, "subject") == _dn(cert, "issuer")
        if names and not name_matches(host, names):
            problems.append("the certificate is for %s, not %s" % (", ".join(names), host))
            fixes.append("reach the registry by a name the certificate carries (%s), or re-issue it with %s in its "
                         "subject alternative names (registry_tls_san)" % (", ".join(names), host))
        # Which trust store verifies the chain
        ca_cert = self.params.get("ca_cert")
        certs_d = self._certs_d_cas(self.params.get("docker_certs_dir") or "/etc/docker/certs.d")
        sources: list[tuple[str, list[str], bool, str]] = [("system", [], True, "the system CA store")]
        if ca_cert:
            sources.append(("ca_cert", [ca_cert], True, "ca_cert %s" % ca_cert))
        if certs_d:
            sources.append(("certs_d", certs_d, True, ", ".join(certs_d)))
        trusted_by = None
        codes: list[int | None] = []
        last_reason = None
        for kind, cafiles, system, label in ([] if old_protocol else sources):
            ok, reason, code = self._verify_with(cafiles, system)
            if ok:
                trusted_by = (kind, cafiles, label)
                break
            codes.append(code)
            last_reason = reason
        if trusted_by is None and not old_protocol:
            # the most specific store (given CA, certs.d) tried last says the most
            what = _VERIFY_CODES.get(codes[-1] if codes and codes[-1] is not None else -1,
                                     last_reason or "does not verify")
            if self_signed:
                what = "self-signed"
            tried = ", ".join(label for _k, _f, _s, label in sources)
            # an expired or not-yet-valid certificate is said above; the chain is otherwise fine
            if not any(code in (9, 10) for code in codes):
                problems.append("the certificate chain does not verify (%s) against %s" % (what, tried))
                fixes.append("give the registry's CA as ca_cert here, and to the engines with %s (ca_cert)"
                             % ROLE_FIX)
        elif trusted_by is not None:
            kind, cafiles, label = trusted_by
            self.found.trust = kind
            self.found.trust_ca = cafiles[0] if cafiles else None
            facts.append("verified by %s" % label)
            if self_signed:
                warnings.append("the certificate is self-signed (it is its own CA)")
                fixes.append("a CA-signed certificate lets clients trust the CA once instead of every certificate")
            name_ok, name_reason = self._name_ok(cafiles, True)
            if not name_ok and not any("not %s" % host in p for p in problems):
                problems.append("name check failed: %s" % name_reason)
                fixes.append("reach the registry by a name the certificate carries")
            elif name_ok and not problems:
                self.found.verified = True
        detail = "; ".join(facts)
        if problems:
            self.add("tls", "fail", "%s: %s" % ("; ".join(problems), detail), "; ".join(fixes[:2]))
            if self.params.get("validate_certs") is False:
                self.found.trust = "insecure"
                return True
            if old_protocol:
                return False
            return self._continue_untrusted("TLS does not verify")
        if warnings:
            self.add("tls", "warn", "%s: %s" % ("; ".join(warnings), detail), "; ".join(fixes[:2]))
            return True
        self.add("tls", "ok", detail)
        return True

    def _speaks_tls(self) -> bool:
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        probe.check_hostname = False
        probe.verify_mode = ssl.CERT_NONE
        try:
            self._handshake(probe).close()
            return True
        except (ssl.SSLError, OSError):
            return False

    def _continue_untrusted(self, why: str) -> bool:
        """After a TLS failure: /v2/ and the clock are still checked (anonymously, nothing secret is sent);
        credentials, image and permissions are not, since that would send secrets to an unverified server."""
        self._untrusted = why
        return True

    # 5 ---------------------------------------------------------------------------------------

    def _validating(self) -> bool:
        """Whether later requests verify TLS: only when the tls check verified the certificate."""
        return self.found.trust in ("system", "ca_cert", "certs_d") and self._untrusted is None

    def _client(self, credentials: Credentials | None) -> RegistryClient:
        registry = Registry(self.registry.host, self.found.scheme)
        validate = self._validating()
        ca = self.found.trust_ca if validate else None
        retries = self.params.get("retries")
        return RegistryClient(
            registry, credentials,
            validate_certs=validate if registry.scheme == "https" else self.params.get("validate_certs", True),
            ca_cert=ca,
            client_cert=self.params.get("client_cert"), client_key=self.params.get("client_key"),
            timeout=self.params.get("timeout") or DEFAULT_TIMEOUT,
            retries=DEFAULT_RETRIES if retries is None else retries,
            retry_stats=self.retry_stats,
        )

    def check_api(self) -> bool:
        validate = self._validating()
        context = None
        if self.found.scheme == "https":
            context = tls_context(validate, self.found.trust_ca if validate else None,
                                  self.params.get("client_cert"), self.params.get("client_key"),
                                  registry=self.registry.display)
        transport = HttpTransport(context)
        url = "%s://%s/v2/" % (self.found.scheme, self.registry.host)
        try:
            response = transport.request("GET", url, {"User-Agent": "dockyard.registry"}, None,
                                         self.params.get("timeout") or DEFAULT_TIMEOUT)
            status = response.status
            version = response.getheader(API_VERSION_HEADER)
            challenge = response.getheader("WWW-Authenticate") or ""
            self._date = response.getheader("Date")
            content_type = response.getheader("Content-Type") or ""
            response.read()
            response.close()
        except (OSError, ssl.SSLError) as exc:
            self.add("api", "fail", "GET %s failed: %s" % (url, exc), "check the address and port of the registry")
            return False
        finally:
            transport.close()
        facts = ["GET /v2/ answered HTTP %d" % status]
        if version:
            facts.append("%s: %s" % (API_VERSION_HEADER, version))
        if status not in (200, 401):
            fix = "this is not a registry's API root: check the port, or whether a proxy or login page answers"
            if status == 404:
                fix = "nothing serves /v2/ here: is this the registry's port (not a web UI or another service)?"
            self.add("api", "fail", "; ".join(facts) + ("; an HTML page" if "html" in content_type else ""), fix)
            return False
        if status == 200:
            facts.append("no authentication required")
            self.found.challenge = ("", {})
        else:
            scheme, params = parse_challenge(challenge)
            self.found.challenge = (scheme, params)
            if scheme == "bearer":
                facts.append("auth: Bearer token, realm %s, service %s" % (params.get("realm"), params.get("service")))
                realm_problem = self._check_realm(params.get("realm") or "")
                if realm_problem:
                    self.add("api", "fail", "; ".join(facts) + "; " + realm_problem[0], realm_problem[1])
                    return False
                facts.append("token realm reachable")
            elif scheme == "basic":
                facts.append("auth: Basic, realm %s" % params.get("realm", "-"))
            else:
                facts.append("auth: %s" % (scheme or "a 401 without a challenge"))
        if not version:
            self.add("api", "warn", "; ".join(facts) + "; no %s header" % API_VERSION_HEADER,
                     "a registry sends %s: registry/2.0; a proxy in front may strip it, or this is not a registry"
                     % API_VERSION_HEADER)
            return True
        self.add("api", "ok", "; ".join(facts))
        return True

    def _check_realm(self, realm: str) -> tuple[str, str] | None:
        """Whether the token realm answers from this host (any HTTP answer will do)."""
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return ("the token realm %r is not a URL" % realm, "fix auth.token.realm in the registry's configuration")
        context = None
        if parts.scheme == "https":
            validate = self._validating()
            context = tls_context(validate, self.found.trust_ca if validate else None)
        transport = HttpTransport(context)
        try:
            response = transport.request("GET", realm, {"User-Agent": "dockyard.registry"}, None,
                                         self.params.get("timeout") or DEFAULT_TIMEOUT)
            response.read()
            response.close()
        except ssl.SSLCertVerificationError as exc:
            return ("the token realm %s://%s does not verify (%s)" % (parts.scheme, parts.netloc, exc.verify_message),
                    "trust the CA of the token server on this host too (ca_cert / %s)" % ROLE_FIX)
        except (OSError, ssl.SSLError) as exc:
            return ("the token realm %s://%s is unreachable from this host (%s)"
                    % (parts.scheme, parts.netloc, getattr(exc, "strerror", None) or exc),
                    "the registry sends clients to %s for tokens: make that address reachable from here, or fix "
                    "auth.token.realm in the registry's configuration" % parts.netloc)
        finally:
            transport.close()
        return None

    # 6 ---------------------------------------------------------------------------------------

    def check_clock(self) -> bool:
        date = self._date
        if not date:
            self.add("clock", "warn", "the registry sent no Date header: the clocks cannot be compared",
                     "a registry sends Date; is a proxy in front stripping it?")
            return True
        try:
            theirs = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, IndexError):
            self.add("clock", "warn", "the registry's Date header %r does not parse" % date[:60], None)
            return True
        skew = self._now() - theirs
        where = "ahead of" if skew > 0 else "behind"
        detail = "this host's clock is %ds %s the registry's (Date: %s)" % (abs(skew), where, date)
        fix = ("synchronise the clocks (chrony or systemd-timesyncd) of this host and the registry host: tokens and "
               "certificates are refused when clocks differ by minutes")
        if abs(skew) > CLOCK_FAIL_SECONDS:
            self.add("clock", "fail", detail, fix)
        elif abs(skew) > CLOCK_WARN_SECONDS:
            self.add("clock", "warn", detail, fix)
        else:
            self.add("clock", "ok", detail)
        untrusted = self._untrusted
        if untrusted:
            self.skip_rest("%s: credentials are not sent and the image is not read until it is fixed" % untrusted,
                           until="engines")
            return False
        return True

    # 7 ---------------------------------------------------------------------------------------

    def _credential_source(self) -> tuple[str, Credentials | None]:
        params = self.params
        if params.get("username") or params.get("password"):
            if not (params.get("username") and params.get("password")):
                raise InvalidInput("username and password must be given together")
            return ("the username/password options (user %s)" % params["username"],
                    Credentials(username=params["username"], password=params["password"]))
        path = params.get("config_path") or default_config_path()
        config = load_config(path)
        helper = helper_for(config, self.registry)
        helpers = config.get("credHelpers") if isinstance(config.get("credHelpers"), dict) else {}
        if helper is not None:
            where = "credHelpers" if any(helpers.get(k) for k in (self.registry.config_key, self.registry.host)) \
                else "credsStore"
            creds = find_credentials(self.registry, path)
            label = "%s in %s: %s" % (where, path, helper.program)
            return label, creds
        creds = stored_entry(config, self.registry)
        if creds is not None:
            kind = "an identity token" if creds.identity_token else (
                "a registry token" if creds.registry_token else "user %s" % creds.username)
            return "the auths entry in %s (%s)" % (path, kind), creds
        return "none: no username/password options and nothing for %s in %s" % (self.registry.config_key, path), None

    def check_credentials(self) -> bool:
        try:
            source, creds = self._credential_source()
        except RegistryError as exc:
            self.add("credentials", "fail", "the credentials cannot be read: %s" % exc,
                     "fix the docker config (or install the credential helper it names), or give username/password")
            return False
        notes = []
        fix = None
        status = "ok"
        if creds is not None and _ECR_HOST.match(self.registry.host):
            expiry = ecr_token_expiry(creds.password)
            if expiry is not None:
                left = expiry - self._now()
                if left <= 0:
                    self.add("credentials", "fail", "%s: an ECR token that expired %d min ago (ECR tokens live 12 h)"
                             % (source, -left // 60),
                             "log in again with dockyard.registry.registry_login (provider: ecr); schedule it, "
                             "or use the amazon-ecr-credential-helper")
                    return False
                notes.append("ECR token, %dh%02dm left of its 12 h" % (left // 3600, (left % 3600) // 60))
        self.found.credentials = creds
        scheme = self.found.challenge[0] if self.found.challenge else ""
        client = self._client(creds)
        self.found.client = client
        try:
            client.ping()
        except Unauthorized as exc:
            if creds is None or creds.is_anonymous:
                self.add("credentials", "fail", "source: %s; the registry wants a login (%s)"
                         % (source, scheme or "auth"),
                         "log in with dockyard.registry.registry_login (or docker login %s), or give username "
                         "and password" % self.registry.host)
            else:
                self.add("credentials", "fail", "source: %s; refused: unauthorized (%s)" % (source, exc.message),
                         LOGIN_FIX % self.registry.host)
            return False
        except RegistryError as exc:
            self.add("credentials", "fail", "source: %s; GET /v2/ with them failed: %s" % (source, exc),
                     "see the message; earlier checks passed, so this is the registry or its token server")
            return False
        if not scheme:
            accepted = "the registry needs no login"
        elif creds is None:
            accepted = "anonymous access accepted (%s)" % scheme
        else:
            accepted = "accepted (%s)" % scheme
        self.add("credentials", status, "source: %s; %s%s" % (source, accepted,
                                                              "; " + "; ".join(notes) if notes else ""), fix)
        return True

    # 8 ---------------------------------------------------------------------------------------

    def check_image(self) -> bool:
        image = self.image
        client = self.found.client
        if image is None or client is None:
            self.add("image", "skip", "no image given")
            return True
        repository = image.repository
        try:
            tags = client.tags(repository)
        except NotFound:
            return self._missing_repository(image)
        except (Denied, Unauthorized) as exc:
            self.found.pulled = False
            self.add("image", "fail", "the registry refused to list the tags of %s: %s" % (repository, exc.message),
                     "the account lacks pull on %s: check its roles/IAM policy (see permissions)" % repository)
            return True
        except RegistryError as exc:
            self.add("image", "fail", "listing the tags of %s failed: %s" % (repository, exc), None)
            return False
        try:
            descriptor = client.manifest_head(repository, image.reference)
        except (Denied, Unauthorized) as exc:
            self.found.pulled = False
            self.add("image", "fail", "the registry refused the manifest of %s: %s" % (image, exc.message),
                     "the account lacks pull on %s: check its roles/IAM policy" % repository)
            return True
        except RegistryError as exc:
            self.add("image", "fail", "reading the manifest of %s failed: %s" % (image, exc), None)
            return False
        if descriptor is None:
            self.found.pulled = True  # the tag list was readable: pull is granted
            near = closest(image.tag, tags) if image.tag else []
            detail = "manifest unknown: %s has no %s %s (%d tags)" % (
                repository, "tag" if image.tag else "digest", image.reference, len(tags))
            if near:
                detail += "; closest: %s" % ", ".join(near)
            fix = "check the name and tag"
            if near:
                fix = "did you mean %s?" % image.with_tag(near[0])
            elif image.tag == "latest" and tags:
                fix = "no tag means :latest, which was never pushed: give one of %s" % ", ".join(tags[:5])
            elif not tags:
                fix = "the repository has no tags: push the image first"
            self.add("image", "fail", detail, fix)
            return True
        self.found.pulled = True
        self.add("image", "ok", "%s exists: %s (%s)" % (image, descriptor.digest, descriptor.media_type))
        return True

    def _missing_repository(self, image: ImageReference) -> bool:
        client = self.found.client
        repository = image.repository
        self.found.pulled = True
        near: list[str] = []
        catalog_note = ""
        try:
            near = closest(repository, client.catalog())
        except RegistryError as exc:
            catalog_note = "; the catalog is not readable with these credentials (%s)" % type(exc).__name__
        detail = "repository %s does not exist on %s (NAME_UNKNOWN)%s" % (repository, image.registry.display,
                                                                          catalog_note)
        if near:
            detail += "; closest in the catalog: %s" % ", ".join(near)
        fix = "check the name"
        if near:
            fix = "did you mean %s?" % str(ImageReference(image.registry, near[0], image.tag, image.digest))
        if image.registry.is_docker_hub:
            fix += ("; on Docker Hub official images are library/<name> (docker.io/library/alpine), others "
                    "<user>/<name>, and a private or missing repository answers 'unauthorized'")
        self.add("image", "fail", detail, fix)
        return True

    # 9 ---------------------------------------------------------------------------------------

    def check_permissions(self) -> bool:
        image = self.image
        client = self.found.client
        if image is None or client is None:
            self.add("permissions", "skip", "no image given")
            return True
        parts = []
        status = "ok"
        fix = None
        if self.found.pulled is False:
            parts.append("pull on %s: denied" % image.repository)
            status = "fail"
            fix = ("denied: the account lacks pull on %s: check its roles (token server ACL, Harbor project "
                   "membership, IAM policy ecr:BatchGetImage)" % image.repository)
        else:
            parts.append("pull on %s: granted" % image.repository)
        if self.params.get("check_push"):
            try:
                client.upload_probe(image.repository)
                parts.append("push: granted (an upload session was opened and cancelled)")
            except (Denied, Unauthorized) as exc:
                status = "fail"
                parts.append("push: denied (%s)" % exc.message)
                fix = ("denied: the account may pull but not push %s: check its roles/IAM policy (push scope, "
                       "ecr:InitiateLayerUpload...)" % image.repository)
            except RegistryError as exc:
                status = "fail"
                parts.append("push: %s" % exc)
                fix = "the registry refused to start an upload: see the message (a read-only registry answers 405)"
        else:
            parts.append("push not checked (check_push=false)")
        self.add("permissions", status, "; ".join(parts), fix)
        return True

    # 10 --------------------------------------------------------------------------------------

    def _wanted(self) -> str | None:
        trust = self.found.trust
        if trust in ("http", "insecure"):
            return "insecure"
        if trust in ("ca_cert", "certs_d"):
            return "ca"
        if trust == "system":
            return "system"
        return None

    def _engines(self) -> list[str]:
        given = self.params.get("runtimes")
        wanted = ["auto"] if given is None else list(given)
        if "auto" not in wanted:
            return [r for r in ("docker", "containerd", "podman") if r in wanted]
        found = []
        if find_command("dockerd") or find_command("docker") or os.path.exists(
                self.params.get("docker_daemon_json") or "/etc/docker/daemon.json"):
            found.append("docker")
        if find_command("containerd"):
            found.append("containerd")
        if any(find_command(c) for c in ("podman", "skopeo", "buildah", "crio")):
            found.append("podman")
        return found

    def _verifies(self, cafiles: list[str]) -> bool:
        return bool(cafiles) and self._verify_with(cafiles, True)[0]

    def _loopback(self) -> bool:
        addresses = self.found.addresses
        return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)

    def _docker(self, wanted: str) -> tuple[bool, str]:
        host = self.registry.host
        path = self.params.get("docker_daemon_json") or "/etc/docker/daemon.json"
        text = _read_text(path)
        try:
            config = rc.parse_daemon_json(text or "", path)
        except InvalidInput as exc:
            return False, "docker: %s" % exc
        insecure = [str(v).lower() for v in config.get("insecure-registries") or []]
        listed = host in insecure
        for entry in insecure:
            if "/" in entry:
                try:
                    network = ipaddress.ip_network(entry, strict=False)
                    if self.found.addresses and all(ipaddress.ip_address(a.split("%")[0]) in network
                                                    for a in self.found.addresses):
                        listed = True
                except ValueError:
                    continue
        if not listed and self._loopback():
            listed = True
            how = "insecure (Docker treats 127.0.0.0/8 as insecure by default)"
        else:
            how = "in insecure-registries of %s" % path
        if wanted == "insecure":
            if listed:
                return True, "docker: %s is %s" % (host, how)
            return False, "docker: %s is not in insecure-registries of %s" % (host, path)
        if wanted == "system":
            return True, "docker: the system CA store verifies %s" % host
        cas = self._certs_d_cas(self.params.get("docker_certs_dir") or "/etc/docker/certs.d")
        if cas and self._verifies(cas):
            return True, "docker: %s verifies" % ", ".join(cas)
        if listed:
            return True, "docker: no CA in certs.d, but %s is %s (verification skipped)" % (host, how)
        if cas:
            return False, "docker: %s does not verify the registry" % ", ".join(cas)
        return False, "docker: no %s/%s/ca.crt" % (self.params.get("docker_certs_dir") or "/etc/docker/certs.d",
                                                   host)

    def _containerd(self, wanted: str) -> tuple[bool, str]:
        host = self.registry.host
        certs_dir = self.params.get("containerd_certs_dir") or "/etc/containerd/certs.d"
        notes = []
        command = find_command("containerd")
        config = self.params.get("containerd_config") or "/etc/containerd/config.toml"
        if command and os.path.exists(config):
            try:
                proc = subprocess.run([command, "--config", config, "config", "dump"], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, timeout=30, check=False)
                config_path = rc.dump_config_path(proc.stdout.decode("utf-8", "replace")) if proc.returncode == 0 \
                    else None
                if proc.returncode == 0 and not rc.path_covers(config_path, certs_dir):
                    notes.append("the CRI plugin's config_path in %s does not name %s (ctr needs --hosts-dir)"
                                 % (config, certs_dir))
            except (OSError, subprocess.SubprocessError):
                pass
        path = os.path.join(certs_dir, host, "hosts.toml")
        text = _read_text(path)
        if text is None:
            if wanted == "system":
                return True, "containerd: no hosts.toml needed (system CAs verify)"
            return False, "containerd: no %s" % path
        data = _toml_load(text, path)
        servers = []
        cas: list[str] = []
        skip_verify = False
        if data is not None:
            if data.get("server"):
                servers.append(str(data["server"]))
            if data.get("ca"):
                cas.extend(data["ca"] if isinstance(data["ca"], list) else [data["ca"]])
            skip_verify = bool(data.get("skip_verify"))
            for name, table in (data.get("host") or {}).items():
                servers.append(name)
                if isinstance(table, dict):
                    ca = table.get("ca")
                    if ca:
                        cas.extend(ca if isinstance(ca, list) else [ca])
                    skip_verify = skip_verify or bool(table.get("skip_verify"))
        else:
            servers = re.findall(r'^\s*(?:server\s*=\s*"([^"]+)"|\[host\."([^"]+)"\])', text, re.MULTILINE)
            servers = [a or b for a, b in servers]  # type: ignore[misc]
            cas = re.findall(r'^\s*ca\s*=\s*"([^"]+)"', text, re.MULTILINE)
            skip_verify = bool(re.search(r"^\s*skip_verify\s*=\s*true", text, re.MULTILINE))
        if wanted == "insecure":
            ok = any(s.startswith("http://") for s in servers) or (self.found.scheme == "https" and skip_verify)
            verdict = "plain HTTP/skip_verify configured" if ok else "no http:// server and no skip_verify"
        elif wanted == "ca":
            ok = skip_verify or self._verifies([str(c) for c in cas])
            verdict = ("CA %s verifies" % ", ".join(cas)) if ok and not skip_verify else (
                "skip_verify = true" if ok else "no ca that verifies the registry (ca = %s)" % (cas or "none"))
        else:
            ok, verdict = True, "system CAs verify"
        text = "containerd: %s: %s" % (path, verdict)
        if notes:
            text += "; " + "; ".join(notes)
        return ok, text

    def _podman(self, wanted: str) -> tuple[bool, str]:
        host = self.registry.host
        root = self.params.get("containers_dir") or "/etc/containers"
        if wanted == "system":
            return True, "podman: the system CA store verifies %s" % host
        if wanted == "ca":
            docker_dir = self.params.get("docker_certs_dir") or "/etc/docker/certs.d"
            for directory in (os.path.join(root, "certs.d"), docker_dir):
                cas = self._certs_d_cas(directory)
                if cas and self._verifies(cas):
                    return True, "podman: %s verifies" % ", ".join(cas)
        files = [os.path.join(root, "registries.conf")] + sorted(glob.glob(os.path.join(root, "registries.conf.d",
                                                                                        "*.conf")))
        insecure_in = None
        for path in files:
            text = _read_text(path)
            if not text:
                continue
            data = _toml_load(text, path)
            entries = data.get("registry", []) if isinstance(data, dict) else []
            for entry in entries if isinstance(entries, list) else []:
                location = str(entry.get("location") or entry.get("prefix") or "").lower()
                if location == host and entry.get("insecure") is True:
                    insecure_in = path
            if data is None and re.search(r'location\s*=\s*"%s"\s*\n\s*insecure\s*=\s*true' % re.escape(host), text):
                insecure_in = path
        if insecure_in:
            return True, "podman: %s marks %s insecure" % (insecure_in, host)
        if wanted == "insecure":
            return False, "podman: no registries.conf(.d) entry marks %s insecure" % host
        docker_dir = self.params.get("docker_certs_dir") or "/etc/docker/certs.d"
        return False, "podman: no CA for %s in %s/certs.d or %s" % (host, root, docker_dir)

    def check_engines(self) -> None:
        wanted = self._wanted()
        if self.registry is None or wanted is None:
            self.add("engines", "skip", "the checks above could not find out how the registry must be trusted")
            return
        engines = self._engines()
        if self.params.get("runtimes") == []:
            self.add("engines", "skip", "not checked (runtimes is empty)")
            return
        if not engines:
            self.add("engines", "skip", "no Docker, containerd or Podman/skopeo/buildah/CRI-O found on this host")
            return
        verdicts = []
        bad = []
        for engine in engines:
            ok, text = getattr(self, "_" + engine)(wanted)
            verdicts.append(text)
            if not ok:
                bad.append(engine)
        need = {"insecure": "plain HTTP or unverified TLS: insecure", "ca": "a private CA",
                "system": "the system CAs"}[wanted]
        detail = "needed: %s; %s" % (need, "; ".join(verdicts))
        if bad:
            entry = "{host: %s, insecure: true}" % self.registry.host if wanted == "insecure" else \
                "{host: %s, ca_cert: <the CA file>}" % self.registry.host
            self.add("engines", "fail", detail,
                     "%s do(es) not trust %s: run %s with registry_client_registries: [%s]"
                     % (", ".join(bad), self.registry.host, ROLE_FIX, entry))
            return
        self.add("engines", "ok", detail)


def registry_diagnose(params: dict, check_mode: bool = False, diff: bool = False,
                      retry_stats: RetryStats | None = None) -> dict:
    """The module's result for its parameters (what ``run_registry_module`` calls). Read-only."""
    if not params.get("registry") and not params.get("image"):
        raise InvalidInput("give registry, image, or both")
    result = Diagnosis(params, retry_stats).run()
    bad = failing(result["checks"], params.get("fail_on") or "never")
    if bad:
        result["failed"] = True
        result["msg"] = "registry_diagnose: %s" % "; ".join(
            "%s %s: %s (fix: %s)" % (c["name"], c["status"], c["detail"], c["fix"] or "-") for c in bad)
    else:
        result["msg"] = "%d checks: %s" % (len(result["checks"]), ", ".join(
            "%d %s" % (n, s) for s, n in ((s, sum(1 for c in result["checks"] if c["status"] == s))
                                          for s in STATUSES) if n))
    return result
