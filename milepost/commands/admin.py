"""`milepost tenant|client|user create`: administration commands that print JSON."""

from __future__ import annotations

import click


@click.group()
def tenant() -> None:
    """Manage tenants."""


@click.group()
def client() -> None:
    """Manage partner API clients (OAuth2 client credentials)."""


@click.group()
def user() -> None:
    """Manage users (staff and shippers)."""


COMMANDS = [tenant, client, user]
