"""Client credential and signing-key rules, without a database."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from joserfc.jwk import ECKey

from domain.signing.rules import (
    KeyRing,
    KeyStatus,
    KeyTimes,
    NoSigningKey,
    RetiredKey,
    RingKey,
    UnknownKey,
    key_status,
    retirements,
    signing_kid,
)
from domain.tenancy.rules import (
    SCOPE_DESCRIPTIONS,
    Revocations,
    Scope,
    SecretMatch,
    client_revocation_expiry,
    describe_unknown_scopes,
    grace_problem,
    previous_secret_match,
    token_lifetime,
    token_lifetime_problem,
    unknown_scopes,
)

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)


def test_the_scope_list_is_closed_and_every_scope_is_described() -> None:
    assert sorted(Scope) == [
        "billing:read",
        "exceptions:read",
        "exceptions:write",
        "ingest",
        "shipments:read",
        "shipments:write",
        "webhooks:manage",
    ]
    assert set(SCOPE_DESCRIPTIONS) == set(Scope)
    assert unknown_scopes(["ingest", "rules:read", "everything", "ingest"]) == ["everything", "rules:read"]
    assert unknown_scopes(["shipments:read", "webhooks:manage"]) == []
    assert describe_unknown_scopes(["rules:read"]) == (
        "unknown scope(s) rules:read; expected some of billing:read, exceptions:read, exceptions:write, "
        "ingest, shipments:read, shipments:write, webhooks:manage"
    )


def test_token_lifetimes_default_override_and_cap() -> None:
    assert token_lifetime(None, 900, 3600) == 900
    assert token_lifetime(120, 900, 3600) == 120
    assert token_lifetime(7200, 900, 3600) == 3600  # the maximum was lowered after the client was set up
    assert token_lifetime_problem(60, 3600) is None
    assert token_lifetime_problem(3600, 3600) is None
    assert token_lifetime_problem(59, 3600) == (
        "a client's token lifetime must be 60 to 3600 seconds (MILEPOST_ACCESS_TOKEN_MAX_TTL_SECONDS), got 59"
    )
    assert token_lifetime_problem(3601, 3600) == (
        "a client's token lifetime must be 60 to 3600 seconds (MILEPOST_ACCESS_TOKEN_MAX_TTL_SECONDS), got 3601"
    )


def test_the_previous_secret_works_until_its_grace_ends() -> None:
    assert previous_secret_match(T0 + HOUR, T0) is SecretMatch.PREVIOUS
    assert previous_secret_match(T0 + HOUR, T0 + HOUR - dt.timedelta(microseconds=1)) is SecretMatch.PREVIOUS
    assert previous_secret_match(T0 + HOUR, T0 + HOUR) is SecretMatch.PREVIOUS_EXPIRED
    assert previous_secret_match(None, T0) is SecretMatch.PREVIOUS_EXPIRED
    limit = dt.timedelta(days=30)
    assert grace_problem(dt.timedelta(0), limit) is None
    assert grace_problem(limit, limit) is None
    assert grace_problem(-HOUR, limit) == "the grace period must be 0 to 720 hours, got -1"
    assert grace_problem(limit + HOUR, limit) == "the grace period must be 0 to 720 hours, got 721"


def test_a_client_revocation_is_kept_until_its_last_token_has_expired() -> None:
    assert client_revocation_expiry(T0, HOUR) == T0 + HOUR + 5 * MIN
    client = uuid.uuid4()
    revocations = Revocations().with_client(client).with_token("abc")
    assert revocations == Revocations(frozenset({client}), frozenset({"abc"}))
    assert Revocations() == Revocations(frozenset(), frozenset())


def keys(*times: KeyTimes) -> list[KeyTimes]:
    return list(times)


def test_the_latest_activated_unretired_key_signs() -> None:
    first = KeyTimes("k1", T0, None)
    pending = KeyTimes("k2", T0 + 5 * MIN, None)
    ring = keys(first, pending)

    assert signing_kid(ring, T0 - MIN) is None
    assert signing_kid(ring, T0) == "k1"
    assert signing_kid(ring, T0 + 5 * MIN - dt.timedelta(microseconds=1)) == "k1"
    assert signing_kid(ring, T0 + 5 * MIN) == "k2"
    assert [key_status(key, ring, T0 + MIN) for key in ring] == [KeyStatus.SIGNING, KeyStatus.PENDING]
    assert [key_status(key, ring, T0 + 5 * MIN) for key in ring] == [KeyStatus.VERIFYING, KeyStatus.SIGNING]
    retired = keys(KeyTimes("k1", T0, T0 + HOUR), pending)
    assert [key_status(key, retired, T0 + HOUR) for key in retired] == [KeyStatus.RETIRED, KeyStatus.SIGNING]
    # every key retired: nothing may sign
    assert signing_kid(keys(KeyTimes("k1", T0, T0 + MIN)), T0 + MIN) is None


def test_a_rotation_retires_earlier_keys_when_their_last_token_expires() -> None:
    ring = keys(
        KeyTimes("old", T0 - HOUR, T0 + 10 * MIN),
        KeyTimes("k1", T0 - MIN, None),
        KeyTimes("gone", T0 - HOUR, T0),
    )

    changed = retirements(
        ring,
        new_activates_at=T0 + 5 * MIN,
        max_token_lifetime=HOUR,
        stale_for=dt.timedelta(seconds=15),
        now=T0,
    )

    # k1 signs until the new key activates, stale processes 15 s longer, and its tokens live an hour;
    # "old" keeps its earlier deadline; "gone" is retired already
    assert changed == {"k1": T0 + 5 * MIN + dt.timedelta(seconds=15) + HOUR}


def test_a_compromised_key_is_retired_at_once() -> None:
    ring = keys(KeyTimes("k1", T0 - HOUR, None), KeyTimes("k2", T0 - MIN, T0 + HOUR))

    changed = retirements(
        ring, new_activates_at=T0, max_token_lifetime=HOUR, stale_for=MIN, now=T0, at_once=True
    )

    assert changed == {"k1": T0, "k2": T0}


def ring_key(kid_at: dt.datetime, retire_at: dt.datetime | None = None, *, private: bool = True) -> RingKey:
    key = ECKey.generate_key("P-256", private=True)
    public = ECKey.import_key(key.as_dict(private=False))
    return RingKey(key.thumbprint(), public, key if private else None, kid_at, retire_at)


def test_the_key_ring_signs_verifies_and_publishes_by_the_rules() -> None:
    verifying = ring_key(T0 - HOUR, T0 + HOUR, private=False)
    signing = ring_key(T0 - MIN)
    pending = ring_key(T0 + 5 * MIN)
    ring = KeyRing([pending, verifying, signing])

    assert ring.signer(T0) == signing
    assert ring.signer(T0 + 5 * MIN) == pending
    assert ring.verifier(verifying.kid, T0) == verifying
    assert [entry["kid"] for entry in ring.published(T0)] == [verifying.kid, signing.kid, pending.kid]
    entry = ring.published(T0)[0]
    assert set(entry) == {"kty", "crv", "x", "y", "kid", "use", "alg"}
    assert (entry["kty"], entry["crv"], entry["use"], entry["alg"]) == ("EC", "P-256", "sig", "ES256")
    # an hour on, the verifying key is retired by the clock, whatever the ring was loaded with
    assert [entry["kid"] for entry in ring.published(T0 + HOUR)] == [signing.kid, pending.kid]
    with pytest.raises(RetiredKey):
        ring.verifier(verifying.kid, T0 + HOUR)
    with pytest.raises(UnknownKey):
        ring.verifier("no-such-kid", T0)
    with pytest.raises(NoSigningKey):
        KeyRing([verifying]).signer(T0)  # its private half is gone
    with pytest.raises(NoSigningKey):
        KeyRing([]).signer(T0)


def test_a_ring_of_one_key_signs_always_with_its_thumbprint_as_kid() -> None:
    key = ECKey.generate_key("P-256", private=True)
    ring = KeyRing.of(key)

    assert ring.signer(T0).kid == key.thumbprint()
    assert "d" not in ring.published(T0)[0]
