"""TLS on the gRPC port: credentials from the configured PEM files, each checked at startup so a bad file is one
clear sentence, and the rule that only loopback is served in plaintext unless that is explicitly allowed."""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

import grpc

from server.config import ConfigurationError, Settings


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the port on this machine. A host name other than localhost counts as
    reachable from the network: it may resolve to any interface."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _read_pem(setting: str, path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{setting}={path}: cannot read it ({exc.strerror or exc})") from None
    if b"-----BEGIN " not in data:
        raise ConfigurationError(f"{setting}={path}: not a PEM file")
    return data


def _encrypted_key() -> bytes:
    raise ConfigurationError("TLS_KEY_FILE is encrypted: the server needs the key without a passphrase")


def _check_key_pair(cert: Path, key: Path) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=_encrypted_key)
    except ssl.SSLError as exc:
        reason = (
            "the key does not belong to the certificate"
            if exc.reason == "KEY_VALUES_MISMATCH"
            else f"not a usable certificate and key ({exc.reason or exc})"
        )
        raise ConfigurationError(f"TLS_CERT_FILE={cert}, TLS_KEY_FILE={key}: {reason}") from None


def _check_authorities(path: Path) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        raise ConfigurationError(f"TLS_CLIENT_CA_FILE={path}: no usable CA certificate ({exc.reason or exc})") from None


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """The port's TLS credentials, or None for plaintext (which only loopback gets unless allowed).

    Raises ConfigurationError naming the setting when the files are missing, unreadable, not PEM, or the key
    does not match the certificate."""
    cert, key, client_ca = settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
    if (cert is None) != (key is None):
        raise ConfigurationError("TLS_CERT_FILE and TLS_KEY_FILE go together: set both or neither")
    if cert is None or key is None:
        if client_ca is not None:
            raise ConfigurationError(
                "TLS_CLIENT_CA_FILE is set but TLS_CERT_FILE and TLS_KEY_FILE are not: client certificates are "
                "only asked for over TLS"
            )
        if not is_loopback(settings.host) and not settings.allow_plaintext_non_loopback:
            raise ConfigurationError(
                f"refusing to serve plaintext gRPC on HOST={settings.host}: bearer tokens would cross the network "
                "in the clear. Set TLS_CERT_FILE and TLS_KEY_FILE (docs/tls.md), bind HOST=127.0.0.1, or set "
                "ALLOW_PLAINTEXT_NON_LOOPBACK=true where a private network and a TLS-terminating proxy guard the port"
            )
        return None
    chain, private_key = _read_pem("TLS_CERT_FILE", cert), _read_pem("TLS_KEY_FILE", key)
    _check_key_pair(cert, key)
    authorities = None
    if client_ca is not None:
        authorities = _read_pem("TLS_CLIENT_CA_FILE", client_ca)
        _check_authorities(client_ca)
    return grpc.ssl_server_credentials(
        [(private_key, chain)],
        root_certificates=authorities,
        require_client_auth=authorities is not None,
    )
