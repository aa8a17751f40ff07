"""Token buckets per caller, in this process's memory.

Each API process keeps its own buckets, so behind N processes a caller gets up to N times the configured
rate (the load balancer spreads its requests). That is enough to stop one runaway client or script from
starving the others; a shared limit would need a shared store (Redis, PostgreSQL), which the core does not
require.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

# Beyond this many callers the least recently seen are forgotten, so a flood of distinct addresses cannot
# grow memory without bound; a forgotten caller starts again with a full bucket.
MAX_BUCKETS = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """``per_minute`` requests per key on average, up to ``burst`` at once; ``per_minute == 0`` is off."""

    def __init__(self, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.burst = burst
        self._rate = per_minute / 60.0  # tokens per second
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str) -> int | None:
        """Spend one token of ``key``'s bucket: ``None`` when allowed, else the whole seconds to wait."""
        if self.per_minute == 0:
            return None
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(tokens=float(self.burst), updated=now)
            self._buckets[key] = bucket
            self._forget_oldest()
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self._rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return max(1, math.ceil((1.0 - bucket.tokens) / self._rate))

    def _forget_oldest(self) -> None:
        while len(self._buckets) > MAX_BUCKETS:
            self._buckets.popitem(last=False)
