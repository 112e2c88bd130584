# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Certificates for the registry_client test, made with cryptography directly (an independent judge).

pki.py DIR NAME...  writes DIR/ca.crt, ca.key, server.crt, server.key (for the NAMEs, ::1 and 127.0.0.1),
                    client.crt/client.key (a client certificate of the CA), expired-ca.crt (a CA whose
                    validity ended yesterday) and not-a-ca.crt (a self-signed certificate without CA:TRUE).
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def key():
    return ec.generate_private_key(ec.SECP256R1())


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def cert(subject, issuer, pub, signer, start, days, ca, sans=None, usage=None):
    builder = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
               .public_key(pub).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(signer, hashes.SHA256())


def write(path, data, mode=0o644):
    with open(path, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)


def main():
    directory, names = sys.argv[1], sys.argv[2:]
    os.makedirs(directory, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    pem = serialization.Encoding.PEM

    def key_pem(k):
        return k.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    ca_key = key()
    ca = cert("dyrc test CA", "dyrc test CA", ca_key.public_key(), ca_key, now, 30, True)
    write(os.path.join(directory, "ca.crt"), ca.public_bytes(pem))
    write(os.path.join(directory, "ca.key"), key_pem(ca_key), 0o600)
    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(a)) for a in ("::1", "127.0.0.1")]
    server_key = key()
    server = cert(names[0], "dyrc test CA", server_key.public_key(), ca_key, now, 30, False, sans,
                  ExtendedKeyUsageOID.SERVER_AUTH)
    write(os.path.join(directory, "server.crt"), server.public_bytes(pem))
    write(os.path.join(directory, "server.key"), key_pem(server_key), 0o600)
    client_key = key()
    client = cert("dyrc client", "dyrc test CA", client_key.public_key(), ca_key, now, 30, False, None,
                  ExtendedKeyUsageOID.CLIENT_AUTH)
    write(os.path.join(directory, "client.crt"), client.public_bytes(pem))
    write(os.path.join(directory, "client.key"), key_pem(client_key), 0o600)
    old_key = key()
    expired = cert("dyrc expired CA", "dyrc expired CA", old_key.public_key(), old_key,
                   now - datetime.timedelta(days=40), 39, True)
    write(os.path.join(directory, "expired-ca.crt"), expired.public_bytes(pem))
    leaf_key = key()
    leaf = cert("dyrc not a CA", "dyrc not a CA", leaf_key.public_key(), leaf_key, now, 30, False)
    write(os.path.join(directory, "not-a-ca.crt"), leaf.public_bytes(pem))


if __name__ == "__main__":
    main()
