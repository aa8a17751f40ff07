"""Where the worker tests find their brokers (TEST_REDIS_URL / TEST_RABBITMQ_URL, else the local services)."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import redis

# a Redis database of this checkout's own (1-15, from its path): two checkouts testing at once on one
# machine would otherwise take each other's messages off the shared queues
_CHECKOUT_DB = 1 + int(hashlib.sha256(str(Path(__file__).resolve().parent).encode()).hexdigest(), 16) % 15
REDIS_URL = os.environ.get("TEST_REDIS_URL", f"redis://127.0.0.1:6379/{_CHECKOUT_DB}")
RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def clear_redis() -> None:
    """Drop what an earlier run left on the test Redis database: a worker stopped with messages still queued
    (sweeps, evaluations) for tenants the next run's database does not have."""
    with contextlib.suppress(redis.RedisError):  # no Redis here: its tests are skipped (or fail in CI)
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).flushdb()
