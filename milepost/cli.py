"""The ``milepost`` command. Every sub-command reads its configuration from the environment."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import click
import uvloop
from pydantic import ValidationError

from milepost.logs import configure_logging
from milepost.settings import Settings


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        lines = ["configuration error:"]
        for problem in error.errors():
            name = env_name(str(problem["loc"][0])) if problem["loc"] else "settings"
            lines.append(f"  {name}: {problem['msg']} (got {problem.get('input')!r})")
        click.echo("\n".join(lines), err=True)
        raise SystemExit(2) from None


def env_name(field_or_alias: str) -> str:
    """The environment variable behind a settings field (errors may name either)."""
    if field_or_alias.isupper():
        return field_or_alias
    field = Settings.model_fields.get(field_or_alias)
    alias = getattr(field, "validation_alias", None) if field else None
    choices = getattr(alias, "choices", None)
    if choices:
        return str(choices[0])
    return f"MILEPOST_{field_or_alias.upper()}"


@contextlib.contextmanager
def refuse_credentials_errors() -> Iterator[None]:
    """A signing set-up problem (key-encryption key file) as one line and exit status 2."""
    from milepost.credentials import CredentialsError

    try:
        yield
    except CredentialsError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from None


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.group()
def main() -> None:
    """Milepost: logistics exception management."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Run the API (GraphQL, OAuth2, ingest, portal)."""
    from milepost.runtime import prepare
    from milepost.runtime import serve as run_server

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    runtime = prepare(settings)
    with refuse_credentials_errors():
        # uvloop (installed with uvicorn[standard]): a faster event loop for the API process
        uvloop.run(run_server(runtime, host, port))


@main.command()
def migrate() -> None:
    """Apply database migrations as the owner (DATABASE_URL, or the embedded database)."""
    from milepost.database import migrate as run_migrations
    from milepost.database import open_database

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    database = open_database(settings)
    try:
        run_migrations(database.owner_url, settings)
    finally:
        database.stop()
    click.echo("migrations applied", err=True)


@main.command()
def schema() -> None:
    """Print the GraphQL SDL (committed as api/schema.graphql)."""
    from api.graphql.schema import schema as graphql_schema

    click.echo(graphql_schema.as_str().rstrip())


def _register() -> None:
    from milepost.commands import admin, capture, demo, detect, jobs

    for command in [*admin.COMMANDS, *demo.COMMANDS, *capture.COMMANDS, *detect.COMMANDS, *jobs.COMMANDS]:
        main.add_command(command)


_register()


if __name__ == "__main__":
    main()
