"""Values the hot paths hand PostgreSQL as text, read back by the server."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import json_text


async def test_json_text_writes_what_the_standard_library_would(session: AsyncSession) -> None:
    awkward = ['a "quoted" one', "back\\slash", "", "ünï©ødé", "\u2028"]
    value = {"int": 2**70, "text": awkward, "nested": {"1": [None, True, 1.5]}}
    read = (await session.execute(text("SELECT CAST(:v AS jsonb)"), {"v": json_text(value)})).scalar_one()
    assert read == value
