"""What API processes hear about a dispatched outbox batch: compact ``NOTIFY`` payloads, ids only."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class ChangeNotification:
    """One ``NOTIFY`` payload read back: a tenant and its dispatched outbox ids per topic."""

    tenant_id: uuid.UUID
    topics: dict[str, list[int]]


class MalformedNotification(ValueError):
    """A payload on the channel that :func:`change_notifications` did not write; the message says why."""


def parse_notification(payload: str) -> ChangeNotification:
    """The inverse of :func:`change_notifications` (any process may ``NOTIFY`` on the channel, so every
    part is checked)."""
    try:
        decoded = json.loads(payload)
    except ValueError:
        raise MalformedNotification("not JSON") from None
    if not isinstance(decoded, dict):
        raise MalformedNotification("not a JSON object")
    try:
        tenant_id = uuid.UUID(str(decoded["tenant_id"]))
    except (KeyError, ValueError):
        raise MalformedNotification("tenant_id: missing or not a UUID") from None
    topics = decoded.get("topics")
    if not isinstance(topics, dict):
        raise MalformedNotification("topics: missing or not an object")
    for topic, ids in topics.items():
        if not isinstance(ids, list) or not all(type(i) is int for i in ids):
            raise MalformedNotification(f"topics.{topic}: not a list of outbox ids")
    return ChangeNotification(tenant_id=tenant_id, topics=topics)
