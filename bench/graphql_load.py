"""The load generator of ``bench_graphql``, run in a process of its own (``python -m bench.graphql_load``): a
:class:`Load` as JSON on stdin, a :class:`Outcome` as JSON on stdout.

Two kinds of load, each over the given requests in turn (POST bodies with their bearer tokens):

- *closed*: ``concurrency`` clients, each sending its next request when the previous answer has been read,
  for ``seconds``; a request counts when its answer arrived within the window;
- *open*: requests scheduled at a fixed ``rate`` for ``seconds``, whatever the answers do; latency runs from
  the scheduled time (so waiting for a connection counts, and a slow server cannot slow the schedule down).
  At most ``max_in_flight`` requests are in flight; a request that starts more than ``late_ms`` after its time
  is *late*, one that cannot start until ``give_up_seconds`` after the schedule ended is *missed*.

A request fails when the answer is not ``200`` or carries GraphQL ``errors``; the CPU time of this process
during the window is reported, to show the generator is not the bottleneck.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from dataclasses import asdict, dataclass, field

import httpx


@dataclass(frozen=True)
class Request:
    authorization: str
    body: str


@dataclass(frozen=True)
class Load:
    url: str
    requests: list[Request]
    mode: str  # "closed" or "open"
    seconds: float
    concurrency: int = 8  # closed
    rate: float = 80.0  # open: requests per second
    max_in_flight: int = 64  # open
    late_ms: float = 10.0  # open
    give_up_seconds: float = 2.0  # open
    timeout_seconds: float = 60.0

    @classmethod
    def from_json(cls, text: str) -> Load:
        raw = json.loads(text)
        raw["requests"] = [Request(**r) for r in raw["requests"]]
        return cls(**raw)


@dataclass
class Outcome:
    seconds: float  # the window (closed) / until the last answer (open)
    completed: int = 0  # answered within the window (closed) / answered at all (open)
    scheduled: int = 0  # open
    late: int = 0  # open: started more than late_ms after the scheduled time
    missed: int = 0  # open: never started
    failed: int = 0
    first_failure: str = ""
    response_bytes: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0  # this process's, during the window


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Sender:
    def __init__(self, load: Load, http: httpx.AsyncClient, outcome: Outcome) -> None:
        self.load = load
        self.http = http
        self.outcome = outcome
        self.headers = [
            {
                "authorization": r.authorization,
                "content-type": "application/json",
                "accept": "application/json",
            }
            for r in load.requests
        ]
        self.bodies = [r.body.encode() for r in load.requests]

    async def send(self, index: int) -> int | None:
        """Send request ``index`` (cycling): the size of a successful answer, else ``None``."""
        position = index % len(self.bodies)
        try:
            response = await self.http.post(
                self.load.url, content=self.bodies[position], headers=self.headers[position]
            )
        except httpx.HTTPError as error:
            self.fail(f"{type(error).__name__}: {error}")
            return None
        content = response.content
        if response.status_code != 200 or b'"errors"' in content:
            self.fail(f"{response.status_code} {content[:500]!r}")
            return None
        return len(content)

    def fail(self, text: str) -> None:
        self.outcome.failed += 1
        if not self.outcome.first_failure:
            self.outcome.first_failure = text

    def count(self, size: int, latency: float) -> None:
        self.outcome.completed += 1
        self.outcome.response_bytes += size
        self.outcome.latencies_ms.append(latency * 1000)


async def closed_loop(load: Load) -> Outcome:
    outcome = Outcome(seconds=load.seconds)
    limits = httpx.Limits(max_connections=load.concurrency, max_keepalive_connections=load.concurrency)
    async with httpx.AsyncClient(timeout=load.timeout_seconds, limits=limits) as http:
        sender = _Sender(load, http, outcome)
        taken = 0
        cpu = _cpu()
        started = time.perf_counter()
        end = started + load.seconds

        async def client() -> None:
            nonlocal taken
            while time.perf_counter() < end and not outcome.failed:
                index, taken = taken, taken + 1
                began = time.perf_counter()
                size = await sender.send(index)
                done = time.perf_counter()
                if size is not None and done <= end:
                    sender.count(size, done - began)

        await asyncio.gather(*(client() for _ in range(load.concurrency)))
        outcome.cpu_seconds = _cpu() - cpu
    return outcome


async def open_loop(load: Load) -> Outcome:
    outcome = Outcome(seconds=load.seconds)
    count = int(load.rate * load.seconds)
    outcome.scheduled = count
    limits = httpx.Limits(max_connections=load.max_in_flight, max_keepalive_connections=load.max_in_flight)
    async with httpx.AsyncClient(timeout=load.timeout_seconds, limits=limits) as http:
        sender = _Sender(load, http, outcome)
        slots = asyncio.Semaphore(load.max_in_flight)
        cpu = _cpu()
        started = time.perf_counter()
        give_up_at = started + load.seconds + load.give_up_seconds

        async def one(index: int, due: float) -> None:
            try:
                await asyncio.wait_for(slots.acquire(), timeout=max(0.0, give_up_at - time.perf_counter()))
            except TimeoutError:
                outcome.missed += 1
                return
            try:
                if (time.perf_counter() - due) * 1000 > load.late_ms:
                    outcome.late += 1
                if (size := await sender.send(index)) is not None:
                    sender.count(size, time.perf_counter() - due)
            finally:
                slots.release()

        tasks = []
        for index in range(count):
            due = started + index / load.rate
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(one(index, due)))
        await asyncio.gather(*tasks)
        outcome.seconds = time.perf_counter() - started  # to the last answer: answered / seconds is the rate
        outcome.cpu_seconds = _cpu() - cpu
    return outcome


async def run(load: Load) -> Outcome:
    if load.mode == "closed":
        return await closed_loop(load)
    if load.mode == "open":
        return await open_loop(load)
    raise ValueError(f"mode must be 'closed' or 'open', got {load.mode!r}")


def main() -> None:
    load = Load.from_json(sys.stdin.read())
    try:
        import uvloop  # the lighter event loop, when installed (it comes with uvicorn[standard])
    except ImportError:
        outcome = asyncio.run(run(load))
    else:
        outcome = uvloop.run(run(load))
    sys.stdout.write(json.dumps(asdict(outcome)))


if __name__ == "__main__":
    main()
