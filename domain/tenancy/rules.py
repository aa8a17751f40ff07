"""Partner client credentials as pure rules: the closed list of OAuth2 scopes, token lifetimes, which
secret a client may authenticate with, and how long a revocation must be remembered. No I/O; the clock
is always a parameter."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Scope(StrEnum):
    """What a partner client may be granted. The only list: client creation, the token endpoint, the
    permission checks (``api/graphql/access.py``, ``api/ingest.py``), the database CHECK and the
    docs (``docs/api.md``) all follow it. Adding one needs a migration that widens the CHECK."""

    SHIPMENTS_READ = "shipments:read"
    SHIPMENTS_WRITE = "shipments:write"
    EXCEPTIONS_READ = "exceptions:read"
    EXCEPTIONS_WRITE = "exceptions:write"
    INGEST = "ingest"
    BILLING_READ = "billing:read"
    WEBHOOKS_MANAGE = "webhooks:manage"


SCOPE_DESCRIPTIONS: dict[Scope, str] = {
    Scope.SHIPMENTS_READ: "Read shipments, their timelines and references, and accounts "
    "(`shipments`, `shipment`, `shipmentByReference`, `node`, `shipmentUpdates`).",
    Scope.SHIPMENTS_WRITE: "Reserved for creating and changing shipments through GraphQL; grants nothing "
    "yet (partners send shipments through ingest).",
    Scope.EXCEPTIONS_READ: "Read exceptions and subscribe to their events (`exceptions`, `exception`, "
    "`exceptionEvents`).",
    Scope.EXCEPTIONS_WRITE: "Work exceptions: acknowledge, start, assign, comment, record actions, resolve, "
    "close, reopen.",
    Scope.INGEST: "Send tracking data to `POST /ingest/{format}`; read and replay ingest messages; "
    "set code mappings.",
    Scope.BILLING_READ: "Read finance-only fields (`Shipment.declaredValue`), which are invisible without it "
    "(billing anomalies will follow).",
    Scope.WEBHOOKS_MANAGE: "Manage webhook endpoints and their deliveries: the tenant's, or the account's "
    "own for a client bound to an account.",
}

SCOPES_SORTED = sorted(Scope)

# NOTIFY channel telling every API process to reload revocations (payload REVOCATIONS_CHANGED) or signing
# keys (KEYS_CHANGED); the payload carries no ids, a reload reads everything that is in force
CREDENTIALS_CHANNEL = "milepost_credentials"
REVOCATIONS_CHANGED = "revocations"
KEYS_CHANGED = "keys"

# a per-client token lifetime below this would make clients fetch tokens more often than they use them
MIN_CLIENT_TOKEN_TTL_SECONDS = 60
# tokens issued just before a revocation commits may be a little younger than the revocation
REVOCATION_MARGIN = dt.timedelta(minutes=5)


def unknown_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes of ``scopes`` that are not in :class:`Scope`, sorted."""
    return sorted({scope for scope in scopes} - set(Scope))


def describe_unknown_scopes(unknown: Iterable[str]) -> str:
    return f"unknown scope(s) {', '.join(unknown)}; expected some of {', '.join(SCOPES_SORTED)}"


def token_lifetime_problem(seconds: int, maximum: int) -> str | None:
    """Why ``seconds`` cannot be a client's own token lifetime, or ``None``."""
    if not MIN_CLIENT_TOKEN_TTL_SECONDS <= seconds <= maximum:
        return (
            f"a client's token lifetime must be {MIN_CLIENT_TOKEN_TTL_SECONDS} to {maximum} seconds "
            f"(MILEPOST_ACCESS_TOKEN_MAX_TTL_SECONDS), got {seconds}"
        )
    return None


def token_lifetime(client_override: int | None, default: int, maximum: int) -> int:
    """The lifetime of a token issued now: the client's own, else the default; never beyond the maximum
    in force (it may have been lowered since the client was set up)."""
    return min(client_override if client_override is not None else default, maximum)


class SecretMatch(StrEnum):
    """Which of a client's secrets a presented secret matched."""

    CURRENT = "current"
    PREVIOUS = "previous"  # the one before the last rotation, still inside its grace period
    PREVIOUS_EXPIRED = "previous_expired"  # the one before the last rotation, after its grace period
    NONE = "none"


def previous_secret_match(previous_expires_at: dt.datetime | None, now: dt.datetime) -> SecretMatch:
    """What a presented secret that verified against the *previous* hash means at ``now``."""
    if previous_expires_at is not None and now < previous_expires_at:
        return SecretMatch.PREVIOUS
    return SecretMatch.PREVIOUS_EXPIRED


def grace_problem(grace: dt.timedelta, maximum: dt.timedelta) -> str | None:
    if grace < dt.timedelta(0) or grace > maximum:
        hours = maximum.total_seconds() / 3600
        return f"the grace period must be 0 to {hours:g} hours, got {grace.total_seconds() / 3600:g}"
    return None


MAX_SECRET_GRACE = dt.timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Revocations:
    """What bearer verification must refuse although the token itself is valid: every token of the
    ``clients`` (API client row ids) and the single tokens ``token_ids`` (``jti``)."""

    clients: frozenset[uuid.UUID] = frozenset()
    token_ids: frozenset[str] = frozenset()

    def with_client(self, client_row_id: uuid.UUID) -> Revocations:
        return Revocations(self.clients | {client_row_id}, self.token_ids)

    def with_token(self, jti: str) -> Revocations:
        return Revocations(self.clients, self.token_ids | {jti})


def client_revocation_expiry(revoked_at: dt.datetime, max_token_lifetime: dt.timedelta) -> dt.datetime:
    """Until when a client's revocation must be checked on bearer requests: after that every token it
    could have been issued has expired anyway (it gets no new ones)."""
    return revoked_at + max_token_lifetime + REVOCATION_MARGIN
