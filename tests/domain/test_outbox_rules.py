"""NOTIFY payloads for dispatched outbox batches (pure)."""

from __future__ import annotations

import json
import uuid

from domain.outbox.rules import MAX_PAYLOAD_BYTES, change_notifications

TENANT = uuid.UUID("6f1c2f0e-8d8a-4a53-9a57-0c2d7f3e9b10")


def test_one_small_batch_is_one_compact_payload_grouped_by_topic() -> None:
    payloads = change_notifications(
        TENANT, [(7, "shipment.timeline_changed"), (8, "exception.opened"), (9, "shipment.timeline_changed")]
    )
    assert payloads == [
        '{"tenant_id":"6f1c2f0e-8d8a-4a53-9a57-0c2d7f3e9b10",'
        '"topics":{"shipment.timeline_changed":[7,9],"exception.opened":[8]}}'
    ]


def test_a_large_batch_is_split_below_the_limit_keeping_every_id_once_in_order() -> None:
    rows = [(10_000_000 + n, ("a.b", "c.d")[n % 3 == 0]) for n in range(5_000)]
    for limit in (MAX_PAYLOAD_BYTES, 200, 90):
        payloads = change_notifications(TENANT, rows, max_bytes=limit)
        assert all(len(p.encode()) <= limit for p in payloads)
        decoded = [json.loads(p) for p in payloads]
        assert {d["tenant_id"] for d in decoded} == {str(TENANT)}
        for topic in ("a.b", "c.d"):
            assert [i for d in decoded for i in d["topics"].get(topic, [])] == [
                i for i, t in rows if t == topic
            ]
    # payloads are filled: the next id would not have fitted
    payloads = change_notifications(TENANT, rows)
    assert len(payloads) == 6  # 5000 ids of 9 bytes each (with their commas) in about 8000 bytes a payload
    assert all(len(p) > MAX_PAYLOAD_BYTES - 20 for p in payloads[:-1])


def test_no_rows_no_payload() -> None:
    assert change_notifications(TENANT, []) == []
