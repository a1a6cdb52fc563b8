"""A private certificate authority for trying TLS on one machine: `tutorstream-server dev-certs`, `TLS=1 make run`
and the tests. Its certificates are trusted by nothing until you pass its CA file to a client; production uses
certificates from the organisation's own CA or a public one (docs/tls.md)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
CA_DAYS = 365
LEAF_DAYS = 30


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tutorstream development"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _subject_alt_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def spki_sha256(cert_pem: bytes) -> str:
    """Base64 SHA-256 of a certificate's public key: what Chromium's --ignore-certificate-errors-spki-list takes."""
    public_key = x509.load_pem_x509_certificate(cert_pem).public_key()
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@dataclass(frozen=True)
class Issued:
    """A certificate (PEM) and its private key (PEM, unencrypted)."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def spki_sha256(self) -> str:
        return spki_sha256(self.cert_pem)


@dataclass(frozen=True)
class Authority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, common_name: str = "tutorstream development CA") -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
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
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert=cert, key=key)

    @classmethod
    def load(cls, cert_file: Path, key_file: Path) -> Authority:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_file}: not an EC key made by dev-certs")
        return cls(cert=x509.load_pem_x509_certificate(cert_file.read_bytes()), key=key)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return _key_pem(self.key)

    def issue(self, common_name: str, *, hosts: Sequence[str] = (), client: bool = False) -> Issued:
        """A leaf certificate: for a server when `hosts` are given (its subject alternative names), for a
        client when `client` is set, or both."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] if hosts else []
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        if not usages:
            raise ValueError("a certificate needs hosts (server), client=True, or both")
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=LEAF_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if hosts:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_subject_alt_name(host) for host in hosts]), critical=False
            )
        cert = builder.sign(self.key, hashes.SHA256())
        return Issued(cert_pem=cert.public_bytes(serialization.Encoding.PEM), key_pem=_key_pem(key))


@dataclass(frozen=True)
class DevCerts:
    """The files `write_dev_certs` leaves in its directory."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca-key.pem"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.directory / "server-key.pem"

    @property
    def client_cert(self) -> Path:
        return self.directory / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.directory / "client-key.pem"


def _write(path: Path, data: bytes, *, private: bool) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def write_dev_certs(directory: Path, hosts: Sequence[str] = LOCAL_HOSTS) -> tuple[DevCerts, Issued]:
    """A CA (kept while it outlives what it issues, so a client that trusts it keeps trusting it), a server
    certificate for `hosts` and a client certificate (for Envoy and operators when the server asks for one),
    both issued anew on every call. Returns the file names and the server certificate."""
    files = DevCerts(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    authority = Authority.load(files.ca, files.ca_key) if files.ca.exists() and files.ca_key.exists() else None
    expiring = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=LEAF_DAYS)
    if authority is None or authority.cert.not_valid_after_utc < expiring:
        authority = Authority.create()
        _write(files.ca_key, authority.key_pem, private=True)
        _write(files.ca, authority.cert_pem, private=False)
    server = authority.issue("tutorstream server", hosts=hosts)
    _write(files.server_key, server.key_pem, private=True)
    _write(files.server_cert, server.cert_pem, private=False)
    client = authority.issue("tutorstream client", client=True)
    _write(files.client_key, client.key_pem, private=True)
    _write(files.client_cert, client.cert_pem, private=False)
    return files, server
