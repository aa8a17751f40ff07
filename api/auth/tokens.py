"""Short-lived signed JWT access tokens (ES256, the RFC 9068 profile) and the JWKS that verifies them.

The service holds two snapshots that an API process replaces as they change (``api/auth/watch.py``):
the key ring (``domain.signing``: which key signs, which still verify) and the revocations in force
(``domain.tenancy.rules.Revocations``). Verifying a token reads both from memory, so the revocation check
on every bearer request costs two set look-ups and no query.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError

from domain.signing.rules import ALGORITHM, KeyRing, RetiredKey, UnknownKey
from domain.tenancy.principal import Principal
from domain.tenancy.rules import Revocations, token_lifetime

TOKEN_TYPE = "at+jwt"  # noqa: S105 - the JWT media type of RFC 9068, not a secret

# RFC 6749 §5.2 / RFC 6750 §3: error descriptions may only use %x20-21 / %x23-5B / %x5D-7E
_UNSAFE_DESCRIPTION_CHARS = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


def quoted(value: str, limit: int = 40) -> str:
    """``value`` (from the caller, so untrusted) made safe to echo inside an error description."""
    clipped = value if len(value) <= limit else value[:limit] + "..."
    return "'" + _UNSAFE_DESCRIPTION_CHARS.sub("?", clipped) + "'"


class InvalidToken(Exception):
    """A bearer token that must be refused; ``str()`` is safe to return to the caller."""


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A token whose signature, key and claims are valid (revocation not considered)."""

    principal: Principal
    jti: str
    expires_at: float  # the exp claim, seconds since the epoch


class TokenService:
    def __init__(
        self,
        keys: KeyRing,
        *,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        max_ttl_seconds: int | None = None,
        clock: Callable[[], float] = time.time,
        revocations: Revocations | None = None,
    ) -> None:
        self._keys = keys
        self._revocations = revocations or Revocations()
        # open WebSockets, closed when their token is revoked: key -> (principal, jti, close)
        self._holders: dict[object, tuple[Principal, str, Callable[[], None]]] = {}
        self._clock = clock
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds
        self.max_ttl_seconds = max(max_ttl_seconds or ttl_seconds, ttl_seconds)
        self._claims = jwt.JWTClaimsRegistry(
            now=lambda: int(self._clock()),
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            iat={"essential": True},
            jti={"essential": True},
            sub={"essential": True},
            tid={"essential": True},
        )

    # --- the snapshots -------------------------------------------------------------------------------

    @property
    def keys(self) -> KeyRing:
        return self._keys

    def use_keys(self, keys: KeyRing) -> None:
        self._keys = keys

    @property
    def revocations(self) -> Revocations:
        return self._revocations

    def use_revocations(self, revocations: Revocations) -> None:
        self._revocations = revocations
        self._revocations_changed()

    def revoked_client(self, client_row_id: uuid.UUID) -> None:
        """Refuse the client's tokens in this process now, not at the next reload (which keeps it)."""
        self._revocations = self._revocations.with_client(client_row_id)
        self._revocations_changed()

    def revoked_token(self, jti: str) -> None:
        self._revocations = self._revocations.with_token(jti)
        self._revocations_changed()

    def on_revoked(self, verified: VerifiedToken, close: Callable[[], None]) -> Callable[[], None]:
        """Call ``close`` once if this token gets revoked (a WebSocket it opened must end then); returns
        the function that forgets it (call it when the connection ends)."""
        key = object()
        self._holders[key] = (verified.principal, verified.jti, close)

        def forget() -> None:
            self._holders.pop(key, None)

        return forget

    def _revoked_why(self, principal: Principal, jti: str) -> str | None:
        if principal.subject_kind == "api_client" and principal.subject_id in self._revocations.clients:
            return "the token's client has been revoked"
        if jti in self._revocations.token_ids:
            return "the token has been revoked"
        return None

    def _revocations_changed(self) -> None:
        for key, (principal, jti, close) in list(self._holders.items()):
            if self._revoked_why(principal, jti) is not None:
                del self._holders[key]
                close()

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._clock(), dt.UTC)

    # --- issuing ---------------------------------------------------------------------------------------

    def lifetime(self, client_override: int | None = None) -> int:
        """Seconds a token issued now lives: the client's own lifetime or the default, within the maximum."""
        return token_lifetime(client_override, self.ttl_seconds, self.max_ttl_seconds)

    def issue(
        self, principal: Principal, *, ttl_seconds: int | None = None, client_id: str | None = None
    ) -> str:
        """A signed access token for ``principal`` living ``ttl_seconds`` (default: the configured one);
        ``client_id`` is the OAuth2 client it was issued to (RFC 9068), for partner clients."""
        issued_at = int(self._clock())
        key = self._keys.signer(self._now())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": f"{principal.subject_kind}:{principal.subject_id}",
            "tid": str(principal.tenant_id),
            "roles": sorted(principal.roles),
            "scope": " ".join(sorted(principal.scopes)),
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + (ttl_seconds if ttl_seconds is not None else self.ttl_seconds),
            "jti": uuid.uuid4().hex,
        }
        if client_id is not None:
            claims["client_id"] = client_id
        if principal.account_id is not None:
            claims["acc"] = str(principal.account_id)
        assert key.private is not None  # signer() returns only keys with their private half
        return jwt.encode({"alg": ALGORITHM, "kid": key.kid, "typ": TOKEN_TYPE}, claims, key.private)

    # --- verifying -------------------------------------------------------------------------------------

    def verify(self, token: str) -> Principal:
        return self.verify_with_expiry(token)[0]

    def verify_with_expiry(self, token: str) -> tuple[Principal, float]:
        """The token's principal and the seconds until it expires; refused when anything is wrong with
        it, including a revocation."""
        verified = self.verify_token(token)
        return verified.principal, self.seconds_left(verified)

    def verify_token(self, token: str) -> VerifiedToken:
        """The verified token (signature, key, claims, revocations)."""
        verified = self.decode(token)
        why = self._revoked_why(verified.principal, verified.jti)
        if why is not None:
            raise InvalidToken(why)
        return verified

    def seconds_left(self, verified: VerifiedToken) -> float:
        return verified.expires_at - self._clock()

    def decode(self, token: str) -> VerifiedToken:
        """Check the header (algorithm, type, a known and unretired key), the signature and the claims;
        not revocations."""
        header = _header(token)
        algorithm = header.get("alg")
        if algorithm != ALGORITHM:
            raise InvalidToken(
                f"the token's algorithm {quoted(str(algorithm))} is not accepted; tokens are signed with "
                f"{ALGORITHM}"
            )
        if header.get("typ") != TOKEN_TYPE:
            raise InvalidToken(f"the token's type must be {TOKEN_TYPE} (RFC 9068)")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("the token does not name its signing key (kid)")
        try:
            key = self._keys.verifier(kid, self._now())
        except UnknownKey:
            raise InvalidToken(f"the token's signing key {quoted(kid, 64)} is unknown") from None
        except RetiredKey:
            raise InvalidToken(f"the token's signing key {quoted(kid, 64)} has been retired") from None
        try:
            decoded = jwt.decode(token, key.public, algorithms=[ALGORITHM])
            self._claims.validate(decoded.claims)
        except JoseError as error:
            raise InvalidToken(_describe(error)) from None
        except ValueError:
            raise InvalidToken("the token is not a well-formed JWT") from None
        claims = decoded.claims
        try:
            kind, _, subject = str(claims["sub"]).partition(":")
            principal = Principal(
                tenant_id=uuid.UUID(str(claims["tid"])),
                subject_kind=kind,
                subject_id=uuid.UUID(subject),
                account_id=uuid.UUID(str(claims["acc"])) if claims.get("acc") else None,
                roles=frozenset(claims.get("roles") or ()),
                scopes=frozenset(str(claims.get("scope") or "").split()),
            )
            return VerifiedToken(principal, str(claims["jti"]), float(claims["exp"]))
        except (KeyError, ValueError, TypeError):
            raise InvalidToken("the token's claims are malformed") from None

    def jwks(self) -> dict[str, Any]:
        """Every key that may verify a live token: the one signing, those whose tokens have not all
        expired yet, and one published ahead of a rotation."""
        return {"keys": self._keys.published(self._now())}


def _header(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("the token is not a well-formed JWT")
    try:
        encoded = parts[0] + "=" * (-len(parts[0]) % 4)
        header = json.loads(base64.urlsafe_b64decode(encoded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error, RecursionError):
        raise InvalidToken("the token is not a well-formed JWT") from None
    if not isinstance(header, dict):
        raise InvalidToken("the token is not a well-formed JWT")
    return header


def _describe(error: JoseError) -> str:
    name = type(error).__name__
    messages = {
        "ExpiredTokenError": "the token has expired",
        "BadSignatureError": "the token's signature does not verify",
        "InvalidClaimError": f"the token has an invalid claim ({error.description})",
        "MissingClaimError": f"the token lacks a required claim ({error.description})",
        "InvalidTokenError": "the token is not yet valid",
    }
    return messages.get(name, "the token is invalid")
