"""Short-lived signed JWT access tokens (ES256) and the JWKS that verifies them.

Signing keys rotate (``milepost keys rotate``): the key file always holds the key that signs; a rotated-out
key moves to ``<key file>.retired/`` with the time until which it still verifies (the token lifetime
plus a margin), so the JWKS lists every key that can verify a live token and no other. A process that
meets a token signed by a key it does not know re-reads the ring once (at most every few seconds): after a
rotation by another process, every process verifies the new key's tokens without a restart.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import ECKey, KeySet

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


RETIRE_MARGIN_SECONDS = 60
RELOAD_AT_MOST_EVERY_SECONDS = 5.0


def _retired_dir(path: Path) -> Path:
    return path.with_name(path.name + ".retired")


def _write_private(path: Path, key: ECKey) -> None:
    """Write a PEM atomically with mode 0600 (a reader sees the old key or the new, never half of one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.as_pem(private=True))
    os.replace(temporary, path)


def retired_keys(path: Path, now: float) -> list[tuple[ECKey, float]]:
    """The rotated-out keys that may still verify a live token, each with the time it stops
    (``<kid>.<until>.pem``, until > now)."""
    folder = _retired_dir(path)
    keys = []
    for file in sorted(folder.glob("*.pem")) if folder.exists() else []:
        _kid, _, until = file.stem.rpartition(".")
        if until.isdigit() and int(until) > now:
            keys.append((ECKey.import_key(file.read_bytes()), float(until)))
    return keys


def rotate_signing_key(path: Path, *, keep_seconds: int, now: float | None = None) -> tuple[str, str]:
    """Make a new signing key; the current one keeps verifying for ``keep_seconds`` (then it leaves the
    JWKS and its tokens are refused). Expired retired keys are deleted. Returns (old kid, new kid)."""
    moment = time.time() if now is None else now
    current = load_or_create_key(path)
    folder = _retired_dir(path)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write_private(folder / f"{current.thumbprint()}.{int(moment) + keep_seconds}.pem", current)
    for file in folder.glob("*.pem"):
        _kid, _, until = file.stem.rpartition(".")
        if until.isdigit() and int(until) <= moment:
            file.unlink()
    fresh = ECKey.generate_key("P-256", private=True)
    _write_private(path, fresh)
    return current.thumbprint(), fresh.thumbprint()


class TokenService:
    def __init__(
        self,
        key: ECKey,
        *,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        clock: Callable[[], float] = time.time,
        retired: Sequence[tuple[ECKey, float]] = (),
        key_file: Path | None = None,
    ) -> None:
        self._clock = clock
        self._key_file = key_file
        self._reloaded_at = clock()
        self._seen_mtime = self._mtime()
        self._use(key, retired)
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

    @classmethod
    def from_key_file(
        cls,
        path: Path,
        *,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> TokenService:
        """The service for a key file and its retired keys (created on first use)."""
        return cls(
            load_or_create_key(path),
            issuer=issuer,
            audience=audience,
            ttl_seconds=ttl_seconds,
            clock=clock,
            retired=retired_keys(path, clock()),
            key_file=path,
        )

    def _use(self, key: ECKey, retired: Sequence[tuple[ECKey, float]]) -> None:
        self._key = key
        self.kid = key.thumbprint()
        self._retired = {k.thumbprint(): (k, until) for k, until in retired if k.thumbprint() != self.kid}
        self._key_set = KeySet([key, *(k for k, _ in self._retired.values())])

    def _mtime(self) -> float:
        try:
            return self._key_file.stat().st_mtime if self._key_file else 0.0
        except FileNotFoundError:
            return 0.0

    def reload(self) -> bool:
        """Re-read the key file and the retired keys (another process may have rotated them); whether the
        set of keys changed."""
        if self._key_file is None:
            return False
        before = {self.kid, *self._retired}
        now = self._clock()
        self._reloaded_at, self._seen_mtime = now, self._mtime()
        self._use(load_or_create_key(self._key_file), retired_keys(self._key_file, now))
        return {self.kid, *self._retired} != before

    def _follow_rotation(self) -> None:
        """Sign with the newest key: re-read the ring when the key file changed (checked every few
        seconds), so a process never keeps signing with a key another process retired."""
        if self._clock() - self._reloaded_at >= RELOAD_AT_MOST_EVERY_SECONDS:
            self._reloaded_at = self._clock()
            if self._mtime() != self._seen_mtime:
                self.reload()

    def _trusted(self, kid: str) -> bool:
        if kid == self.kid:
            return True
        retired = self._retired.get(kid)
        return retired is not None and retired[1] > self._clock()

    def issue(self, principal: Principal) -> str:
        self._follow_rotation()
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
            try:
                decoded = jwt.decode(token, self._key_set, algorithms=[ALGORITHM])
            except InvalidKeyIdError:
                # perhaps rotated by another process: look at the ring again, at most every few seconds
                if self._clock() - self._reloaded_at < RELOAD_AT_MOST_EVERY_SECONDS or not self.reload():
                    raise
                decoded = jwt.decode(token, self._key_set, algorithms=[ALGORITHM])
            if not self._trusted(str(decoded.header.get("kid"))):
                raise InvalidToken("the token is signed by a retired key")
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
        """Every key that can verify a live token: the signing key first, then retired ones still in
        their window."""
        self._follow_rotation()
        keys = []
        live = [self._key, *(k for kid, (k, _) in self._retired.items() if self._trusted(kid))]
        for key in live:
            public = key.as_dict(private=False)
            public.update({"kid": key.thumbprint(), "use": "sig", "alg": ALGORITHM})
            keys.append(public)
        return {"keys": keys}


def _describe(error: JoseError) -> str:
    name = type(error).__name__
    messages = {
        "ExpiredTokenError": "the token has expired",
        "BadSignatureError": "the token's signature does not verify",
        "InvalidClaimError": f"the token has an invalid claim ({error.description})",
        "MissingClaimError": f"the token lacks a required claim ({error.description})",
        "InvalidTokenError": "the token is not yet valid",
        "InvalidKeyIdError": "the token is signed by a key this server does not know (or no longer trusts)",
    }
    return messages.get(name, "the token is invalid")
