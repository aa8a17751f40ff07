"""NOTIFY payloads for dispatched outbox batches (pure)."""

from __future__ import annotations

import json
import uuid

import pytest

from domain.outbox.rules import (
    MAX_PAYLOAD_BYTES,
    ChangeNotification,
    MalformedNotification,
    change_notifications,
    parse_notification,
)

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


def test_a_payload_reads_back_as_written() -> None:
    rows = [(10_000_000 + n, ("exception.opened", "shipment.timeline_changed")[n % 2]) for n in range(3_000)]
    payloads = change_notifications(TENANT, rows)
    read = [parse_notification(payload) for payload in payloads]
    assert {notification.tenant_id for notification in read} == {TENANT}
    # every row comes back exactly once (grouped by topic within each payload)
    assert sorted((i, topic) for n in read for topic, ids in n.topics.items() for i in ids) == sorted(rows)
    assert parse_notification(payloads[0]) == ChangeNotification(TENANT, json.loads(payloads[0])["topics"])


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ("", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"topics": {}}', "tenant_id: missing or not a UUID"),
        ('{"tenant_id": "acme", "topics": {}}', "tenant_id: missing or not a UUID"),
        (f'{{"tenant_id": "{TENANT}"}}', "topics: missing or not an object"),
        (f'{{"tenant_id": "{TENANT}", "topics": []}}', "topics: missing or not an object"),
        (f'{{"tenant_id": "{TENANT}", "topics": {{"a.b": 7}}}}', "topics.a.b: not a list of outbox ids"),
        (f'{{"tenant_id": "{TENANT}", "topics": {{"a.b": ["7"]}}}}', "topics.a.b: not a list of outbox ids"),
        (f'{{"tenant_id": "{TENANT}", "topics": {{"a.b": [true]}}}}', "topics.a.b: not a list of outbox ids"),
    ],
)
def test_a_payload_the_dispatcher_did_not_write_is_refused_with_the_reason(
    payload: str, problem: str
) -> None:
    with pytest.raises(MalformedNotification) as refused:
        parse_notification(payload)
    assert str(refused.value) == problem
