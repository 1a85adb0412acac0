"""A throwaway certificate authority for a TLS local stack (``make run
TLS=1``): it lives as long as the stack, in the stack's 0700 secrets folder.

Three certificates, all ECDSA P-256, valid for a week:

- ``edge``: what nginx shows clients (``localhost``, ``127.0.0.1`` and the
  address nginx listens on);
- ``services``: what every service shows nginx; its names are the upstream
  names nginx checks (``gateway``, ``reservation_service``, ...) and
  ``127.0.0.1`` for the launcher's health checks;
- ``proxy``: nginx's client certificate, the only one the services accept
  (mutual TLS), also used by the launcher's health checks.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..private import write_private

VALIDITY = datetime.timedelta(days=7)


@dataclass(frozen=True)
class Pair:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class StackTls:
    """The CA and the certificates of one stack."""

    ca: Path
    edge: Pair
    services: Pair
    proxy: Pair

    def read(self, pair: Pair) -> tuple[bytes, bytes]:
        """``(private key, certificate chain)``, as gRPC takes them."""
        return pair.key.read_bytes(), pair.cert.read_bytes()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ticketing local stack"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _alt_names(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    write_private(
        path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def generate(folder: Path, *, edge_hosts: Iterable[str], service_names: Iterable[str]) -> StackTls:
    """Creates the CA and the three certificates in ``folder`` (made 0700)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("ticketing local stack CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca = folder / "ca.crt"
    write_private(ca, ca_cert.public_bytes(serialization.Encoding.PEM))

    def issue(name: str, hosts: Iterable[str], usage: x509.ObjectIdentifier) -> Pair:
        key = ec.generate_private_key(ec.SECP256R1())
        hosts = list(hosts)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(hosts[0] if hosts else name))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if hosts:
            cert = cert.add_extension(_alt_names(hosts), critical=False)
        signed = cert.sign(ca_key, hashes.SHA256())
        pair = Pair(folder / f"{name}.crt", folder / f"{name}.key")
        write_private(pair.cert, signed.public_bytes(serialization.Encoding.PEM))
        _write_key(pair.key, key)
        return pair

    server, client = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
    return StackTls(
        ca=ca,
        edge=issue("edge", ["localhost", "127.0.0.1", *edge_hosts], server),
        services=issue("services", [*service_names, "localhost", "127.0.0.1"], server),
        proxy=issue("proxy", [], client),
    )
