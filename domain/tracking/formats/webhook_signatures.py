"""Checking that a tracking webhook really comes from the vendor: HMAC-SHA256 over the raw request body.

Each ingest endpoint is configured with a :class:`SignatureKind` and one or more secrets (more than one
while a secret is being rotated). The check runs on the bytes exactly as received, before any parsing.

- AfterShip: header ``aftership-hmac-sha256`` = base64(HMAC-SHA256(secret, body)).
- EasyPost: header ``X-Hmac-Signature`` = ``hmac-sha256-hex=`` + hex(HMAC-SHA256(NFKD(secret), body)).

Header names are matched case-insensitively; digests are compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum


class SignatureKind(StrEnum):
    AFTERSHIP = "aftership"
    EASYPOST = "easypost"


HEADERS = {
    SignatureKind.AFTERSHIP: "aftership-hmac-sha256",
    SignatureKind.EASYPOST: "x-hmac-signature",
}
EASYPOST_PREFIX = "hmac-sha256-hex="
_DIGEST_SIZE = hashlib.sha256().digest_size


class SignatureError(Exception):
    """The request is not proven to come from the vendor. ``reason`` is a stable code for logs and metrics:
    ``no_secret`` (endpoint not configured), ``missing_header``, ``malformed`` or ``mismatch``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _key(kind: SignatureKind, secret: str) -> bytes:
    # EasyPost's client libraries normalise the secret (NFKD) before using it as the key
    if kind is SignatureKind.EASYPOST:
        secret = unicodedata.normalize("NFKD", secret)
    return secret.encode("utf-8")


def _digest(kind: SignatureKind, secret: str, body: bytes) -> bytes:
    return hmac.new(_key(kind, secret), body, hashlib.sha256).digest()


def sign(kind: SignatureKind | str, secret: str, body: bytes) -> tuple[str, str]:
    """The ``(header, value)`` the vendor would send with ``body``: for simulated feeds and tests."""
    kind = SignatureKind(kind)
    digest = _digest(kind, secret, body)
    if kind is SignatureKind.AFTERSHIP:
        return HEADERS[kind], base64.b64encode(digest).decode("ascii")
    return HEADERS[kind], EASYPOST_PREFIX + digest.hex()


def _header(headers: Mapping[str, str], name: str) -> str:
    values = [value for key, value in headers.items() if key.lower() == name]
    if not values:
        raise SignatureError("missing_header", f"no {name} header: the request is not signed")
    if len(values) > 1:
        raise SignatureError("malformed", f"the {name} header is given {len(values)} times")
    return values[0].strip()


def _given_digest(kind: SignatureKind, value: str) -> bytes:
    name = HEADERS[kind]
    if kind is SignatureKind.AFTERSHIP:
        try:
            digest = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError("malformed", f"the {name} header is not base64") from None
    else:
        if not value.lower().startswith(EASYPOST_PREFIX):
            raise SignatureError("malformed", f"the {name} header does not start with {EASYPOST_PREFIX!r}")
        try:
            digest = bytes.fromhex(value[len(EASYPOST_PREFIX) :])
        except ValueError:
            raise SignatureError("malformed", f"the {name} header does not end in a hex digest") from None
    if len(digest) != _DIGEST_SIZE:
        raise SignatureError(
            "malformed", f"the {name} header holds {len(digest)} bytes, an HMAC-SHA256 has {_DIGEST_SIZE}"
        )
    return digest


def verify(
    kind: SignatureKind | str, secret: str | Sequence[str], headers: Mapping[str, str], body: bytes
) -> None:
    """Return if ``body`` carries a valid signature under (one of) ``secret``; raise :class:`SignatureError`.

    ``headers`` may be any mapping (Starlette's ``Headers`` or a plain dict); ``body`` must be the raw bytes
    as received — re-serialised JSON does not verify.
    """
    kind = SignatureKind(kind)
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets or any(not candidate for candidate in secrets):
        raise SignatureError("no_secret", f"no {kind} webhook secret is configured for this endpoint")
    given = _given_digest(kind, _header(headers, HEADERS[kind]))
    # compare against every secret so the time taken does not tell which one matched
    matches = [hmac.compare_digest(_digest(kind, candidate, body), given) for candidate in secrets]
    if not any(matches):
        raise SignatureError("mismatch", f"the {HEADERS[kind]} signature does not match the body")


@dataclass(frozen=True, slots=True)
class WebhookSignature:
    """The signature check one ingest endpoint is configured with."""

    kind: SignatureKind
    secrets: tuple[str, ...]

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        verify(self.kind, self.secrets, headers, body)
