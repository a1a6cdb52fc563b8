"""Where the CLI finds its server and token: options, then the environment, then the saved login.

Environment: TUTORSTREAM_TARGET, TUTORSTREAM_TOKEN, TUTORSTREAM_CONFIG (the file `login` writes; default
$XDG_CONFIG_HOME/tutorstream/config.json, i.e. ~/.config/tutorstream/config.json).
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


def config_path() -> Path:
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tutorstream" / "config.json"


@dataclass(frozen=True)
class Profile:
    target: str
    token: str | None


def _saved() -> dict[str, Any]:
    path = config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def resolve(target: str | None = None, token: str | None = None) -> Profile:
    saved = _saved()
    return Profile(
        target=target or os.environ.get(TARGET_ENV) or str(saved.get("target") or DEFAULT_TARGET),
        token=token or os.environ.get(TOKEN_ENV) or saved.get("token") or None,
    )


def save(profile: Profile) -> Path:
    """Write the login with owner-only permissions (it holds a bearer token)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump({"target": profile.target, "token": profile.token}, handle)
    temporary.replace(path)
    return path


def forget() -> bool:
    saved = _saved()
    if "token" not in saved:
        return False
    saved.pop("token")
    save(Profile(target=str(saved.get("target") or DEFAULT_TARGET), token=None))
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
