"""The life of a signing key, as pure rules over plain data and ``now``.

A key is

- **pending** from its creation until ``activates_at``: published in the JWKS (so verifiers that cache
  the key set know it before any token carries it) but not signing yet;
- **signing** from ``activates_at`` while it is the newest active key;
- **verifying** once a newer key signs: it signs nothing more, but tokens it signed are still accepted and
  it stays in the JWKS until ``retire_at``, set at the rotation to the moment its last token expires;
- **retired** from ``retire_at`` on: gone from the JWKS, and tokens it signed are refused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from joserfc.jwk import ECKey

ALGORITHM = "ES256"
CURVE = "P-256"


class KeyStatus(StrEnum):
    PENDING = "pending"
    SIGNING = "signing"
    VERIFYING = "verifying"
    RETIRED = "retired"


@dataclass(frozen=True, slots=True)
class KeyTimes:
    kid: str
    activates_at: dt.datetime
    retire_at: dt.datetime | None


def is_retired(key: KeyTimes, now: dt.datetime) -> bool:
    return key.retire_at is not None and now >= key.retire_at


def signing_kid(keys: Iterable[KeyTimes], now: dt.datetime) -> str | None:
    """The key that signs at ``now``: the latest-activated of the active, unretired keys."""
    active = [key for key in keys if key.activates_at <= now and not is_retired(key, now)]
    if not active:
        return None
    return max(active, key=lambda key: (key.activates_at, key.kid)).kid


def key_status(key: KeyTimes, keys: Iterable[KeyTimes], now: dt.datetime) -> KeyStatus:
    if is_retired(key, now):
        return KeyStatus.RETIRED
    if key.activates_at > now:
        return KeyStatus.PENDING
    return KeyStatus.SIGNING if signing_kid(keys, now) == key.kid else KeyStatus.VERIFYING


def retirements(
    keys: Iterable[KeyTimes],
    *,
    new_activates_at: dt.datetime,
    max_token_lifetime: dt.timedelta,
    stale_for: dt.timedelta,
    now: dt.datetime,
    at_once: bool = False,
) -> dict[str, dt.datetime]:
    """The ``retire_at`` each earlier unretired key gets when a new key starts signing at
    ``new_activates_at``: tokens they sign until then (and, in a process whose copy of the key ring is up
    to ``stale_for`` old, a little after) live ``max_token_lifetime`` at most. ``at_once`` (a compromised
    key) retires them now. An earlier deadline is never moved later."""
    deadline = now if at_once else new_activates_at + stale_for + max_token_lifetime
    changed = {}
    for key in keys:
        if is_retired(key, now):
            continue
        retire_at = deadline if key.retire_at is None else min(key.retire_at, deadline)
        if retire_at != key.retire_at:
            changed[key.kid] = retire_at
    return changed


@dataclass(frozen=True, slots=True)
class RingKey:
    """One key as the token service uses it; ``private`` is ``None`` for keys that sign no more."""

    kid: str
    public: ECKey
    private: ECKey | None
    activates_at: dt.datetime
    retire_at: dt.datetime | None

    @property
    def times(self) -> KeyTimes:
        return KeyTimes(self.kid, self.activates_at, self.retire_at)


class NoSigningKey(Exception):
    """No key may sign now (none yet, all retired, or the signing key's private half is not loaded)."""


class UnknownKey(Exception):
    """No key of the ring has this kid."""


class RetiredKey(Exception):
    """The key with this kid is retired: tokens it signed are refused."""


@dataclass(frozen=True, slots=True)
class KeyRing:
    """Every stored key that is not retired, as of one load. Immutable: a reload makes a new ring."""

    keys: Sequence[RingKey]

    @classmethod
    def of(cls, private: ECKey, *, since: dt.datetime | None = None) -> KeyRing:
        """A ring of one key that signs from ``since`` (default: always) and never retires; its kid is
        the key's RFC 7638 thumbprint."""
        start = since or dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
        public = ECKey.import_key(private.as_dict(private=False))
        return cls([RingKey(private.thumbprint(), public, private, start, None)])

    def _by_kid(self) -> Mapping[str, RingKey]:
        return {key.kid: key for key in self.keys}

    def signer(self, now: dt.datetime) -> RingKey:
        kid = signing_kid((key.times for key in self.keys), now)
        key = self._by_kid().get(kid) if kid is not None else None
        if key is None or key.private is None:
            raise NoSigningKey("no signing key is active: run `milepost keys rotate --activate-in 0`")
        return key

    def verifier(self, kid: str, now: dt.datetime) -> RingKey:
        """The key that verifies tokens carrying ``kid``; :class:`UnknownKey` or :class:`RetiredKey`
        (retired by now, whatever this ring was loaded with) when there is none."""
        key = self._by_kid().get(kid)
        if key is None:
            raise UnknownKey(kid)
        if is_retired(key.times, now):
            raise RetiredKey(kid)
        return key

    def published(self, now: dt.datetime) -> list[dict[str, Any]]:
        """The JWKS ``keys``: every key that may verify a live token, oldest first."""
        entries = []
        for key in sorted(self.keys, key=lambda key: (key.activates_at, key.kid)):
            if is_retired(key.times, now):
                continue
            public = dict(key.public.as_dict(private=False))
            public.update({"kid": key.kid, "use": "sig", "alg": ALGORITHM})
            entries.append(public)
        return entries
