"""JWT authentication: HS256 with a shared secret for development, RS256 with a public key or JWKS file."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import jwt

from server.config import Settings
from server.core.errors import InvalidArgument, Unauthenticated
from server.core.ids import ID_PATTERN


class Role(StrEnum):
    STUDENT = "student"
    INSTRUCTOR = "instructor"
    SERVICE = "service"


class Tier(StrEnum):
    FREE = "free"
    PRO = "pro"
    INSTRUCTOR = "instructor"
    SERVICE = "service"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: str
    role: Role
    tier: Tier
    # The token's `courses` claim: ids of the courses an instructor teaches, as an LMS issues them (None
    # when the token has no such claim).
    courses: frozenset[str] | None = None

    @property
    def is_privileged(self) -> bool:
        return self.role in (Role.INSTRUCTOR, Role.SERVICE)


MAX_USER_ID_LENGTH = 128
MAX_COURSES_CLAIM = 1000


def load_or_create_secret(settings: Settings) -> str:
    """The HS256 secret: configured, or generated once into the data directory (mode 0600)."""
    if settings.jwt_secret is not None and settings.jwt_secret.get_secret_value():
        return settings.jwt_secret.get_secret_value()
    path = settings.data_dir / "jwt-secret"
    if path.exists():
        return path.read_text().strip()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secret)
    return secret


# Verified tokens remembered per process (a client sends the same token on every call until it expires).
VERIFIED_TOKENS = 4096


class Authenticator:
    """Verifies bearer tokens. Construct once. A token that verified is remembered, with its principal, until
    its expiry (plus the leeway): the same string again skips the signature check, and any other string —
    a tampered one included — is verified in full. After its expiry a remembered token is verified again,
    which refuses it."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._leeway = settings.jwt_leeway_seconds
        self._jwks: jwt.PyJWKSet | None = None
        self._key: Any
        if settings.jwt_jwks_file is not None:
            self._jwks = jwt.PyJWKSet.from_dict(json.loads(Path(settings.jwt_jwks_file).read_text()))
            self._algorithms = ["RS256"]
            self._key = None
        elif settings.jwt_public_key_file is not None:
            self._key = Path(settings.jwt_public_key_file).read_text()
            self._algorithms = ["RS256"]
        else:
            self._key = load_or_create_secret(settings)
            self._algorithms = ["HS256"]

    @property
    def algorithm(self) -> str:
        return self._algorithms[0]

    def _key_for(self, token: str) -> Any:
        if self._jwks is None:
            return self._key
        kid = jwt.get_unverified_header(token).get("kid")
        for candidate in self._jwks.keys:
            if kid is None or candidate.key_id == kid:
                return candidate.key
        raise Unauthenticated("token signed with an unknown key id", reason="UNKNOWN_KEY_ID")

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthenticated("missing `authorization: Bearer <token>` metadata", reason="MISSING_CREDENTIALS")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("authorization metadata must be `Bearer <token>`", reason="MALFORMED_CREDENTIALS")
        token = token.strip()
        remembered = self._verified.get(token)
        if remembered is not None:
            if self._clock() <= remembered[1]:
                self._verified.move_to_end(token)
                return remembered[0]
            del self._verified[token]
        principal, expires = self._verify(token)
        self._verified[token] = (principal, expires + self._leeway)
        if len(self._verified) > VERIFIED_TOKENS:
            self._verified.popitem(last=False)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        """The token's principal and expiry (seconds since the epoch), or Unauthenticated saying why not."""
        try:
            claims = jwt.decode(
                token,
                key=self._key_for(token),
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token expired", reason="TOKEN_EXPIRED") from exc
        except jwt.InvalidSignatureError as exc:
            raise Unauthenticated("token signature is invalid", reason="INVALID_SIGNATURE") from exc
        except jwt.InvalidAlgorithmError as exc:
            raise Unauthenticated(
                f"token algorithm not accepted (expected {self.algorithm})", reason="INVALID_ALGORITHM"
            ) from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthenticated("token audience is not accepted", reason="INVALID_AUDIENCE") from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthenticated("token issuer is not accepted", reason="INVALID_ISSUER") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"token lacks the `{exc.claim}` claim", reason="MISSING_CLAIM") from exc
        except jwt.ImmatureSignatureError as exc:
            raise Unauthenticated("token is not valid yet", reason="TOKEN_NOT_YET_VALID") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated("token is malformed", reason="MALFORMED_TOKEN") from exc
        return principal_from_claims(claims), float(claims["exp"])


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    subject = str(claims.get("sub", ""))
    if not subject or len(subject) > MAX_USER_ID_LENGTH or not subject.isprintable():
        raise Unauthenticated("token subject must be 1 to 128 printable characters", reason="INVALID_SUBJECT")
    try:
        role = Role(str(claims.get("role", Role.STUDENT.value)))
    except ValueError as exc:
        raise Unauthenticated("token role must be student, instructor or service", reason="INVALID_ROLE") from exc
    default_tier = {Role.STUDENT: Tier.FREE, Role.INSTRUCTOR: Tier.INSTRUCTOR, Role.SERVICE: Tier.SERVICE}[role]
    try:
        tier = Tier(str(claims.get("tier", default_tier.value)))
    except ValueError as exc:
        raise Unauthenticated("token tier must be free, pro, instructor or service", reason="INVALID_TIER") from exc
    return Principal(user_id=subject, role=role, tier=tier, courses=_courses_claim(claims))


def _courses_claim(claims: dict[str, Any]) -> frozenset[str] | None:
    if "courses" not in claims:
        return None
    courses = claims["courses"]
    if (
        not isinstance(courses, list)
        or len(courses) > MAX_COURSES_CLAIM
        or not all(isinstance(course, str) and ID_PATTERN.match(course) for course in courses)
    ):
        raise Unauthenticated(
            f"token `courses` claim must be a list of at most {MAX_COURSES_CLAIM} course ids", reason="INVALID_COURSES"
        )
    return frozenset(courses)


def mint_token(
    settings: Settings,
    *,
    user_id: str,
    role: Role,
    tier: Tier | None = None,
    ttl_seconds: int = 12 * 3600,
    private_key_pem: str | None = None,
    key_id: str | None = None,
    courses: list[str] | None = None,
) -> str:
    """A signed token for development and tests (HS256 with the server secret, or RS256 with a key)."""
    if not user_id or len(user_id) > MAX_USER_ID_LENGTH:
        raise InvalidArgument.field("user", "must be 1 to 128 characters")
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": user_id,
        "role": role.value,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if tier is not None:
        claims["tier"] = tier.value
    if courses is not None:
        if len(courses) > MAX_COURSES_CLAIM or not all(ID_PATTERN.match(course) for course in courses):
            raise InvalidArgument.field("courses", f"must be at most {MAX_COURSES_CLAIM} course ids")
        claims["courses"] = courses
    if private_key_pem is not None:
        headers = {"kid": key_id} if key_id else None
        return jwt.encode(claims, private_key_pem, algorithm="RS256", headers=headers)
    return jwt.encode(claims, load_or_create_secret(settings), algorithm="HS256")
