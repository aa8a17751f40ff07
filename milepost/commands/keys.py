"""`milepost keys list|rotate`: the JWT signing keys (the JWKS lists what may still verify a token)."""

from __future__ import annotations

import json
import time

import click

from api.auth.tokens import RETIRE_MARGIN_SECONDS, load_or_create_key, retired_keys, rotate_signing_key


@click.group()
def keys() -> None:
    """JWT signing keys."""


@keys.command("list")
def list_keys() -> None:
    """Print the signing key and the retired keys still trusted, as JSON."""
    from milepost.cli import load_settings  # the CLI imports this module

    settings = load_settings()
    path = settings.signing_key_path
    now = time.time()
    current = load_or_create_key(path)
    retired = [
        {"kid": key.thumbprint(), "trusted_until": int(until)} for key, until in retired_keys(path, now)
    ]
    click.echo(json.dumps({"signing": current.thumbprint(), "retired": retired}, indent=2))


@keys.command("rotate")
def rotate() -> None:
    """Sign new tokens with a new key. The old key keeps verifying until every token it signed has
    expired (the access-token lifetime plus a minute), then leaves the JWKS. Running processes pick the
    new key up by themselves within seconds."""
    from milepost.cli import load_settings

    settings = load_settings()
    keep = settings.access_token_ttl_seconds + RETIRE_MARGIN_SECONDS
    old, new = rotate_signing_key(settings.signing_key_path, keep_seconds=keep)
    click.echo(
        json.dumps({"retired": old, "trusted_until": int(time.time()) + keep, "signing": new}, indent=2)
    )


COMMANDS = [keys]
