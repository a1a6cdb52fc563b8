"""Where the CLI finds its server and token: options, then the environment, then the saved login.

Environment: TUTORSTREAM_TARGET, TUTORSTREAM_TOKEN, TUTORSTREAM_CONFIG (the file `login` writes; default
$XDG_CONFIG_HOME/tutorstream/config.json, i.e. ~/.config/tutorstream/config.json), and for TLS
TUTORSTREAM_CA_FILE, TUTORSTREAM_CERT_FILE + TUTORSTREAM_KEY_FILE, or TUTORSTREAM_TLS=1 (the system's CAs).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tutorstream_client.client import DEFAULT_TARGET

TARGET_ENV = "TUTORSTREAM_TARGET"
TOKEN_ENV = "TUTORSTREAM_TOKEN"
CONFIG_ENV = "TUTORSTREAM_CONFIG"
TLS_ENV = "TUTORSTREAM_TLS"
CA_FILE_ENV = "TUTORSTREAM_CA_FILE"
CERT_FILE_ENV = "TUTORSTREAM_CERT_FILE"
KEY_FILE_ENV = "TUTORSTREAM_KEY_FILE"


def config_path() -> Path:
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tutorstream" / "config.json"


@dataclass(frozen=True)
class Tls:
    """A TLS channel: the server's certificate chains to `ca_file` (None: the system's trusted CAs); the client
    presents `cert_file` + `key_file` when given (servers that require client certificates)."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    @classmethod
    def from_environment(cls) -> Tls | None:
        files = cls(
            ca_file=os.environ.get(CA_FILE_ENV) or None,
            cert_file=os.environ.get(CERT_FILE_ENV) or None,
            key_file=os.environ.get(KEY_FILE_ENV) or None,
        )
        enabled = os.environ.get(TLS_ENV, "").lower() in ("1", "true", "yes")
        return files if enabled or files != cls() else None

    def absolute(self) -> Tls:
        """The same files by absolute path, to be saved and found again from any directory."""

        def full(path: str | None) -> str | None:
            return None if path is None else str(Path(path).expanduser().resolve())

        return Tls(full(self.ca_file), full(self.cert_file), full(self.key_file))


@dataclass(frozen=True)
class Profile:
    target: str
    token: str | None
    tls: Tls | None = None


def _saved() -> dict[str, Any]:
    path = config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _saved_tls(saved: dict[str, Any]) -> Tls | None:
    files = saved.get("tls")
    if not isinstance(files, dict):
        return None
    return Tls(**{name: str(files[name]) for name in ("ca_file", "cert_file", "key_file") if files.get(name)})


def resolve(target: str | None = None, token: str | None = None, tls: Tls | None = None) -> Profile:
    """Each of target, token and TLS from the first of: the argument, the environment, the saved login."""
    saved = _saved()
    return Profile(
        target=target or os.environ.get(TARGET_ENV) or str(saved.get("target") or DEFAULT_TARGET),
        token=token or os.environ.get(TOKEN_ENV) or saved.get("token") or None,
        tls=tls or Tls.from_environment() or _saved_tls(saved),
    )


def save(profile: Profile) -> Path:
    """Write the login with owner-only permissions (it holds a bearer token)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    record: dict[str, Any] = {"target": profile.target, "token": profile.token}
    if profile.tls is not None:
        record["tls"] = vars(profile.tls.absolute())
    with os.fdopen(descriptor, "w") as handle:
        json.dump(record, handle)
    temporary.replace(path)
    return path


def forget() -> bool:
    saved = _saved()
    if "token" not in saved:
        return False
    saved.pop("token")
    save(Profile(target=str(saved.get("target") or DEFAULT_TARGET), token=None, tls=_saved_tls(saved)))
    return True


def claims(token: str) -> dict[str, Any]:
    """The JWT payload, unverified (for display; the server verifies)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT: expected three dot-separated parts")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        decoded = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not a JWT: the payload is not base64url JSON") from exc
    if not isinstance(decoded, dict):
        raise ValueError("not a JWT: the payload is not an object")
    return decoded
