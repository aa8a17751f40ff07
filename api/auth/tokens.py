"""Short-lived signed JWT access tokens (ES256) and the JWKS that verifies them."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from domain.tenancy.principal import Principal

ALGORITHM = "ES256"


class InvalidToken(Exception):
    """A bearer token that must be refused; ``str()`` is safe to return to the caller."""


def load_or_create_key(path: Path) -> ECKey:
    """The signing key from a PEM file, generated there on first use (mode 0600).

    Every API process must share it: in production point ``MILEPOST_JWT_SIGNING_KEY_FILE`` at one file.
    """
    if path.exists():
        return ECKey.import_key(path.read_bytes())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = ECKey.generate_key("P-256", private=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.as_pem(private=True))
    return key


class TokenService:
    def __init__(
        self,
        key: ECKey,
        *,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._clock = clock
        self.kid = key.thumbprint()
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds
        self._claims = jwt.JWTClaimsRegistry(
            now=lambda: int(self._clock()),
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            sub={"essential": True},
            tid={"essential": True},
        )

    def issue(self, principal: Principal) -> str:
        issued_at = int(self._clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": f"{principal.subject_kind}:{principal.subject_id}",
            "tid": str(principal.tenant_id),
            "roles": sorted(principal.roles),
            "scope": " ".join(sorted(principal.scopes)),
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + self.ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        if principal.account_id is not None:
            claims["acc"] = str(principal.account_id)
        return jwt.encode({"alg": ALGORITHM, "kid": self.kid, "typ": "at+jwt"}, claims, self._key)

    def verify(self, token: str) -> Principal:
        return self.verify_with_expiry(token)[0]

    def verify_with_expiry(self, token: str) -> tuple[Principal, float]:
        """The token's principal and the seconds until it expires (a WebSocket ends then)."""
        try:
            decoded = jwt.decode(token, self._key, algorithms=[ALGORITHM])
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
            return principal, float(claims["exp"]) - self._clock()
        except (KeyError, ValueError, TypeError):
            raise InvalidToken("the token's claims are malformed") from None

    def jwks(self) -> dict[str, Any]:
        public = self._key.as_dict(private=False)
        public.update({"kid": self.kid, "use": "sig", "alg": ALGORITHM})
        return {"keys": [public]}


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
