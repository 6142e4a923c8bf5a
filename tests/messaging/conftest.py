"""Fixtures for the runtime's tests: a fresh schema, a raw AMQP connection, a test exchange."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aio_pika
import asyncpg
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection

from contracts.topology import Binding, Queue
from messaging import db
from messaging.broker import Broker
from tests.support import Infra, unique

#: What test handlers write: one row per effect, deliberately without a unique key, so a
#: second effect of the same message would show as a second row.
EFFECTS = db.Migration(
    "tests",
    1,
    "effects",
    """
    CREATE TABLE effects (
        id bigserial PRIMARY KEY,
        message_id text NOT NULL,
        body text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
    );""",
)


@pytest.fixture
async def schema(infra: Infra) -> AsyncIterator[str]:
    name = unique("t_")
    await db.prepare_schema(infra.database_url, name, [EFFECTS])
    yield name
    conn = await asyncpg.connect(infra.database_url)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    finally:
        await conn.close()


@pytest.fixture
async def pool(infra: Infra, schema: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(infra.database_url, schema, min_size=1, max_size=5)
    yield pool
    await pool.close()


@pytest.fixture
async def amqp(infra: Infra) -> AsyncIterator[AbstractConnection]:
    connection = await aio_pika.connect_robust(infra.amqp_url)
    yield connection
    await connection.close()


@pytest.fixture
async def channel(amqp: AbstractConnection) -> AsyncIterator[AbstractChannel]:
    channel = await amqp.channel()
    yield channel
    with contextlib.suppress(Exception):  # may already be gone with a closed connection
        await channel.close()


class ScratchExchange:
    """A topic exchange of the test's own and the queues bound to it, removed afterwards."""

    def __init__(self, channel: AbstractChannel) -> None:
        self.channel = channel
        self.name = unique("test.exchange.")
        self.queues: list[str] = []

    def queue(self, *routing_keys: str, delivery_limit: int = 20) -> Queue:
        spec = Queue(
            unique("test.queue."),
            None,
            tuple(Binding(self.name, key) for key in routing_keys or ("#",)),
            delivery_limit=delivery_limit,
        )
        self.queues += [spec.name, spec.dead_letter_queue]
        return spec


@pytest.fixture
async def exchange(channel: AbstractChannel, infra: Infra) -> AsyncIterator[ScratchExchange]:
    test_exchange = ScratchExchange(channel)
    await channel.declare_exchange(test_exchange.name, aio_pika.ExchangeType.TOPIC, durable=True)
    yield test_exchange
    # A connection of its own: the test may have had the broker close every other one.
    connection = await aio_pika.connect(infra.amqp_url)
    try:
        cleanup = await connection.channel()
        for name in test_exchange.queues:
            await cleanup.queue_delete(name)
        await cleanup.exchange_delete(test_exchange.name)
    finally:
        await connection.close()


@pytest.fixture
async def broker(infra: Infra) -> AsyncIterator[Broker]:
    broker = Broker(infra.amqp_url, app_id="tests", topology=None)
    broker.start()
    assert await broker.wait_connected(15), "RabbitMQ not reachable"
    yield broker
    await broker.close()
