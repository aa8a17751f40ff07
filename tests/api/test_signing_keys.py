"""Signing-key rotation: the JWKS lists exactly the keys that can verify a live token; tokens of a rotated
key verify until its window ends, then are refused; other processes follow a rotation by themselves."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from joserfc import jwt
from joserfc.jwk import ECKey

from api.auth.tokens import InvalidToken, TokenService, rotate_signing_key
from domain.tenancy.principal import Principal
from milepost.cli import main

PRINCIPAL = Principal(uuid.uuid4(), "api_client", uuid.uuid4(), scopes=frozenset({"shipments:read"}))


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def service(path: Path, clock: Clock) -> TokenService:
    return TokenService.from_key_file(path, issuer="https://mp", audience="api", ttl_seconds=900, clock=clock)


def kids(tokens: TokenService) -> list[str]:
    return [key["kid"] for key in tokens.jwks()["keys"]]


def test_rotation_keeps_old_tokens_valid_for_their_lifetime_then_refuses_them(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    clock = Clock(1_800_000_000)
    first = service(path, clock)
    old_token = first.issue(PRINCIPAL)
    old_kid = first.kid
    assert kids(first) == [old_kid]

    retired, new_kid = rotate_signing_key(path, keep_seconds=960, now=clock.now)
    assert retired == old_kid
    second = service(path, clock)  # a process started after the rotation
    assert kids(second) == [new_kid, old_kid]
    assert second.verify(old_token).subject_id == PRINCIPAL.subject_id
    new_token = second.issue(PRINCIPAL)
    assert jwt.decode(new_token, ECKey.import_key(path.read_bytes())).header["kid"] == new_kid

    clock.now += 961  # the old key's window has passed: it leaves the JWKS and its tokens are refused
    assert kids(second) == [new_kid]
    with pytest.raises(InvalidToken):
        second.verify(old_token)


def test_a_running_process_follows_a_rotation_made_elsewhere(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    clock = Clock(1_800_000_000)
    running = service(path, clock)
    _, new_kid = rotate_signing_key(path, keep_seconds=960, now=clock.now)
    fresh = service(path, clock)
    clock.now += 10  # past the reload interval
    assert (
        running.verify(fresh.issue(PRINCIPAL)).tenant_id == PRINCIPAL.tenant_id
    )  # reloads on the unknown kid
    assert running.kid == new_kid  # and signs with the new key from then on
    assert jwt.decode(running.issue(PRINCIPAL), ECKey.import_key(path.read_bytes())).header["kid"] == new_kid


def test_tokens_from_an_unknown_key_or_without_signature_are_refused(tmp_path: Path) -> None:
    clock = Clock(1_800_000_000)
    tokens = service(tmp_path / "key.pem", clock)
    stranger = TokenService(
        ECKey.generate_key("P-256", private=True),
        issuer="https://mp",
        audience="api",
        ttl_seconds=900,
        clock=clock,
    )
    with pytest.raises(InvalidToken, match="signed by a key this server does not know"):
        tokens.verify(stranger.issue(PRINCIPAL))
    _header, claims, _ = tokens.issue(PRINCIPAL).split(".")
    unsigned = ".".join(["eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0", claims, ""])  # alg: none
    with pytest.raises(InvalidToken):
        tokens.verify(unsigned)


def test_the_cli_rotates_and_lists_keys(tmp_path: Path) -> None:
    env = {"MILEPOST_DATA_DIR": str(tmp_path), "MILEPOST_JWT_SIGNING_KEY_FILE": str(tmp_path / "k.pem")}
    runner = CliRunner()
    before = json.loads(runner.invoke(main, ["keys", "list"], env=env).output)
    assert before["retired"] == []
    rotated = json.loads(runner.invoke(main, ["keys", "rotate"], env=env).output)
    assert rotated["retired"] == before["signing"]
    after = json.loads(runner.invoke(main, ["keys", "list"], env=env).output)
    assert after["signing"] == rotated["signing"] != before["signing"]
    assert [k["kid"] for k in after["retired"]] == [before["signing"]]
    assert oct((tmp_path / "k.pem").stat().st_mode & 0o777) == "0o600"
