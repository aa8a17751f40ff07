"""The GraphQL-over-HTTP spec's own audit (npm ``graphql-http``'s ``auditServer``) against a live server.

Milepost runs under uvicorn on a free port inside this test's event loop (so it shares the test
database); ``tests/contract/graphql_http/audit.mjs`` audits it over real HTTP. The npm packages are
installed with ``npm ci`` into that folder's git-ignored ``node_modules`` and reinstalled only when
``package-lock.json`` changes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from api.auth.tokens import TokenService
from api.state import AppState
from tests.api.graphql_support import staff
from tests.shipment_factories import committed_tenant

AUDIT_DIR = Path(__file__).resolve().parent / "graphql_http"
STAMP = AUDIT_DIR / "node_modules" / ".milepost-package-lock.sha256"


def _node_and_npm() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node and npm:
        return node, npm
    message = "the GraphQL-over-HTTP audit needs node and npm (Node 18 or newer) on PATH"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(f"{message}; skipped because this is not CI (CI=true makes it a failure)")


def _install(npm: str) -> None:
    digest = hashlib.sha256((AUDIT_DIR / "package-lock.json").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
        cwd=AUDIT_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"npm ci failed in {AUDIT_DIR}:\n{done.stdout}\n{done.stderr}")
    STAMP.write_text(digest)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _report(results: list[dict[str, Any]]) -> str:
    lines = []
    for result in results:
        if result["status"] != "ok":
            lines.append(
                f"{result['status'].upper():6} {result['id']} {result['name']}\n"
                f"       {result['reason']} (got {result['responseStatus']}: {result['responseBody']})"
            )
    ok = sum(result["status"] == "ok" for result in results)
    return f"{ok} of {len(results)} audits ok\n" + "\n".join(lines)


@pytest.mark.slow
async def test_the_graphql_over_http_audit_passes(
    app_state: AppState, sessions: async_sessionmaker[AsyncSession], tokens: TokenService
) -> None:
    node, npm = _node_and_npm()
    await asyncio.to_thread(_install, npm)
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=0)
    port = _free_port()
    config = uvicorn.Config(
        create_app(app_state),
        host="127.0.0.1",
        port=port,
        log_config=None,
        lifespan="off",
        access_log=False,
        ws="none",
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started or serving.done():
                break
            await asyncio.sleep(0.05)
        assert server.started, "uvicorn did not start"
        audit = await asyncio.create_subprocess_exec(
            node,
            "audit.mjs",
            cwd=AUDIT_DIR,
            env={
                **os.environ,
                "MILEPOST_GRAPHQL_URL": f"http://127.0.0.1:{port}/graphql",
                # a staff user: the audit's queries include `__type`, introspection that staff may use
                "MILEPOST_TOKEN": tokens.issue(staff(world, "operations")),
            },
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(audit.communicate(), timeout=120)
    finally:
        server.should_exit = True
        await serving
    assert audit.returncode == 0, stderr.decode()
    results: list[dict[str, Any]] = json.loads(stdout)
    report = _report(results)
    print(report)
    failures = [r for r in results if r["status"] == "error"]
    warnings = [r for r in results if r["status"] == "warn"]
    assert (len(failures), len(warnings)) == (0, 0), report
    # we also pass every optional (MAY) audit; a notice here means a behaviour was dropped
    assert [r["id"] for r in results if r["status"] != "ok"] == [], report
