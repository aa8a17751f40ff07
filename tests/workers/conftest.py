"""Real brokers for the worker tests: Redis and RabbitMQ from TEST_REDIS_URL / TEST_RABBITMQ_URL (defaults:
the local services). When one is not reachable its tests are skipped with the reason, except in CI
(CI=true), where they fail."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import dramatiq
import pika
import pytest
import redis
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from milepost.database import Database
from milepost.settings import Settings
from tests.workers.brokers import RABBITMQ_URL, REDIS_URL
from workers import broker as broker_module
from workers.broker import configure_workers, create_broker


def require(service: str, url: str, probe: Callable[[], object]) -> None:
    try:
        probe()
    except Exception as error:
        reason = f"{service} is not reachable at {url} ({type(error).__name__}: {error})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run these tests against a real {service}")
        pytest.skip(reason)


@pytest.fixture
def redis_url() -> str:
    require("Redis", REDIS_URL, lambda: redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    return REDIS_URL


@pytest.fixture
def rabbitmq_url() -> str:
    def probe() -> None:
        parameters = pika.URLParameters(RABBITMQ_URL)
        parameters.socket_timeout = 2
        pika.BlockingConnection(parameters).close()

    require("RabbitMQ", RABBITMQ_URL, probe)
    return RABBITMQ_URL


@pytest.fixture
def redis_broker(redis_url: str) -> Iterator[dramatiq.Broker]:
    broker = create_broker(redis_url)
    yield broker
    broker.flush_all()  # only this broker's (test) queues
    broker.close()


@pytest.fixture
def rabbitmq_broker(rabbitmq_url: str) -> Iterator[dramatiq.Broker]:
    broker = create_broker(rabbitmq_url)
    yield broker
    assert isinstance(broker, RabbitmqBroker)
    for queue in list(broker.queues):
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            broker.channel.queue_delete(name)
    broker.close()


@pytest.fixture
def process_broker(settings: Settings, database: Database) -> Iterator[dramatiq.Broker]:
    """A fresh in-process broker installed as the process's own (actors and the scheduler send to it)."""
    previous = broker_module.current_broker()
    broker = broker_module.install(create_broker(None))
    configure_workers(settings, database.app_url)
    yield broker
    broker_module.install(previous)
