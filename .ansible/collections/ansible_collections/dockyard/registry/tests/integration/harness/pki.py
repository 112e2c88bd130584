# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A private CA for the integration harness, made with ``cryptography`` directly.

The harness is an independent judge of the collection, so it never uses the
collection's own code (nor community.crypto) to make its certificates.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import typing as t

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Pki", "make_pki"]


def _write(path: str, data: bytes, mode: int = 0o644) -> None:
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dockyard.registry integration tests"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


class Pki:
    """Paths of the files :func:`make_pki` wrote."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.ca_cert = os.path.join(directory, "ca.crt")
        self.ca_key = os.path.join(directory, "ca.key")
        self.server_cert = os.path.join(directory, "server.crt")
        self.server_key = os.path.join(directory, "server.key")
        self.signer_cert = os.path.join(directory, "token-signer.crt")
        self.signer_key = os.path.join(directory, "token-signer.key")


def make_pki(directory: str, extra_ips: t.Sequence[str] = (), ca_name: str = "dockyard-it CA") -> Pki:
    """Write a CA, a server certificate (localhost, 127.0.0.1 and ``extra_ips``) and a token-signing certificate."""
    os.makedirs(directory, mode=0o755, exist_ok=True)
    pki = Pki(directory)
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    # a year: registry_diagnose warns about certificates that expire within 30 days
    later = now + datetime.timedelta(days=365)

    ca_key = _key()
    ca_name = _name(ca_name)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(common_name: str, server: bool) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
        key = _key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(later)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=server,
                    data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ] + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in extra_ips]),
                critical=False,
            ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        return key, builder.sign(ca_key, hashes.SHA256())

    server_key, server_cert = leaf("localhost", server=True)
    signer_key, signer_cert = leaf("dockyard-it token signer", server=False)

    pem = serialization.Encoding.PEM
    _write(pki.ca_key, _key_pem(ca_key), 0o600)
    _write(pki.ca_cert, ca_cert.public_bytes(pem))
    # Registries read the key inside their container as root; 0600 is enough.
    _write(pki.server_key, _key_pem(server_key), 0o600)
    _write(pki.server_cert, server_cert.public_bytes(pem))
    _write(pki.signer_key, _key_pem(signer_key), 0o600)
    _write(pki.signer_cert, signer_cert.public_bytes(pem))
    return pki
