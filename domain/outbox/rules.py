"""What API processes hear about a dispatched outbox batch: compact ``NOTIFY`` payloads, ids only."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

CHANGES_CHANNEL = "milepost_changes"
# PostgreSQL refuses a NOTIFY payload of 8000 bytes or more
MAX_PAYLOAD_BYTES = 7_999


def change_notifications(
    tenant_id: uuid.UUID, rows: Sequence[tuple[int, str]], max_bytes: int = MAX_PAYLOAD_BYTES
) -> list[str]:
    """``NOTIFY`` payloads for one tenant's dispatched ``(outbox id, topic)`` rows, each under ``max_bytes``.

    A payload is ``{"tenant_id": "…", "topics": {"<topic>": [<outbox id>, …]}}`` (compact JSON). Listeners
    read the rows they care about from the outbox by id, in that tenant's scope, so nothing but ids travels.
    Usually one payload per batch; more when the ids would not fit in one.
    """
    payloads: list[str] = []
    topics: dict[str, list[int]] = {}
    empty = _encode(tenant_id, {})
    size = len(empty)
    for outbox_id, topic in rows:
        added = len(str(outbox_id))
        if topic in topics:
            added += 1  # the comma before it
        else:
            added += len(json.dumps(topic)) + len(":[]") + (1 if topics else 0)
        if topics and size + added > max_bytes:
            payloads.append(_encode(tenant_id, topics))
            topics, size = {}, len(empty)
            added = len(str(outbox_id)) + len(json.dumps(topic)) + len(":[]")
        topics.setdefault(topic, []).append(outbox_id)
        size += added
    if topics:
        payloads.append(_encode(tenant_id, topics))
    return payloads


def _encode(tenant_id: uuid.UUID, topics: dict[str, list[int]]) -> str:
    return json.dumps({"tenant_id": str(tenant_id), "topics": topics}, separators=(",", ":"))
