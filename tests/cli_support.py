"""Running `milepost` commands in tests, as an operator would."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from click.testing import CliRunner, Result

from milepost.cli import main


async def milepost(
    env: dict[str, str | None], *args: str, input: str | None = None, **extra_env: str
) -> Result:
    # the commands run their own event loop (asyncio.run), so they cannot run on the test's
    return await asyncio.to_thread(
        CliRunner().invoke, main, list(args), env={**env, **extra_env}, input=input
    )


def printed(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data
