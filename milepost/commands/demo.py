"""`milepost demo` (what `make run` starts) and `milepost worker`."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
