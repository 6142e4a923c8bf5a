"""Idempotent consumer: dedup, ack after commit, retries, dead letters and their replay."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aio_pika
import asyncpg
import msgspec
import pytest
import structlog
from aio_pika.abc import AbstractChannel

from contracts.topology import Queue
from messaging import db, topology
from messaging.broker import Broker
from messaging.consumer import Consumer, RetryPolicy
from messaging.dead_letters import drain_consumer, list_dead_letters, replay_dead_letters
from messaging.message import Delivery
from messaging.outbox import Outbox, OutboxRelay
from tests.messaging.conftest import ScratchExchange
from tests.support import Infra, eventually


class Job(msgspec.Struct, frozen=True):
    n: int
    mode: str = "ok"


_decoder = msgspec.json.Decoder(Job)


def decode(delivery: Delivery) -> Job:
    return _decoder.decode(delivery.body)


class Worker:
    """A handler whose failures the test controls; its effect is one row in `effects`."""

    def __init__(self) -> None:
        self.calls: Counter[int] = Counter()
        self.broken = True

    async def __call__(self, conn: db.Connection, delivery: Delivery, job: Job) -> None:
        self.calls[job.n] += 1
        await conn.execute(
            "INSERT INTO effects (message_id, body) VALUES ($1, $2)",
            delivery.message_id,
            str(job.n),
        )
        if job.mode == "flaky" and self.calls[job.n] < 3:
            raise ConnectionResetError("the payment gateway hung up")  # transient
        if job.mode == "fail" and self.broken:
            raise ValueError(f"job {job.n} cannot be done")


Start = Callable[..., Awaitable[Consumer[Any]]]


@pytest.fixture
async def start(
    broker: Broker, pool: asyncpg.Pool, channel: AbstractChannel
) -> AsyncIterator[Start]:
    started: list[Consumer[Any]] = []

    async def start(queue: Queue, handle: Any, **options: Any) -> Consumer[Any]:
        options.setdefault("retry", RetryPolicy(max_attempts=4, initial_delay=0.01))
        consumer: Consumer[Any] = Consumer(
            queue, pool=pool, decode=decode, handle=handle, **options
        )
        await topology.declare_queue(channel, queue)
        connection = broker._connection
        assert connection is not None
        await consumer.attach(connection)
        started.append(consumer)
        return consumer

    yield start
    for consumer in started:
        await consumer.stop()


async def publish(
    channel: AbstractChannel,
    exchange: str,
    body: bytes | Job,
    message_id: str | None = None,
    routing_key: str = "job",
) -> str:
    message_id = message_id or str(uuid.uuid4())
    raw = body if isinstance(body, bytes) else msgspec.json.encode(body)
    target = await channel.get_exchange(exchange)
    await target.publish(
        aio_pika.Message(raw, message_id=message_id, type=routing_key, correlation_id="order-1"),
        routing_key,
    )
    return message_id


async def effects(pool: asyncpg.Pool) -> Counter[str]:
    rows = await pool.fetch("SELECT body FROM effects")
    return Counter(r["body"] for r in rows)


async def test_a_duplicate_has_no_second_effect(
    start: Start, channel: AbstractChannel, exchange: ScratchExchange, pool: asyncpg.Pool
) -> None:
    worker = Worker()
    consumer = await start(exchange.queue(), worker)
    message_id = str(uuid.uuid4())

    await publish(channel, exchange.name, Job(n=1), message_id)
    await publish(channel, exchange.name, Job(n=1), message_id)
    await publish(channel, exchange.name, Job(n=2))

    await eventually(
        lambda: asyncio.sleep(0, consumer.stats.by_outcome.copy()),
        lambda s: s.get("handled", 0) + s.get("duplicate", 0) == 3,
    )
    assert await effects(pool) == {"1": 1, "2": 1}
    assert consumer.stats.duplicates == 1
    assert await pool.fetchval("SELECT count(*) FROM inbox") == 2


async def test_poison_message_between_two_good_ones_is_dead_lettered_and_work_goes_on(
    start: Start, channel: AbstractChannel, exchange: ScratchExchange, pool: asyncpg.Pool
) -> None:
    queue = exchange.queue()
    await start(queue, Worker())

    await publish(channel, exchange.name, Job(n=1))
    poison = await publish(channel, exchange.name, b"{not json")
    await publish(channel, exchange.name, Job(n=2))

    await eventually(lambda: effects(pool), lambda e: e == {"1": 1, "2": 1})
    async with pool.acquire() as conn:
        letters = await eventually(lambda: list_dead_letters(conn), lambda d: len(d) == 1)
    assert letters[0].message_id == poison
    assert letters[0].queue == queue.name
    assert letters[0].reason.startswith("undecodable")
    assert letters[0].body == b"{not json"
    assert letters[0].attempts == 1  # never retried: it cannot get better


async def test_wrong_field_type_is_dead_lettered_naming_the_field(
    start: Start, channel: AbstractChannel, exchange: ScratchExchange, pool: asyncpg.Pool
) -> None:
    await start(exchange.queue(), Worker())

    await publish(channel, exchange.name, b'{"n": "one"}')

    async with pool.acquire() as conn:
        letters = await eventually(lambda: list_dead_letters(conn), lambda d: len(d) == 1)
    assert "$.n" in letters[0].reason


async def test_transient_failure_is_retried_and_applied_once(
    start: Start, channel: AbstractChannel, exchange: ScratchExchange, pool: asyncpg.Pool
) -> None:
    worker = Worker()
    consumer = await start(exchange.queue(), worker)

    await publish(channel, exchange.name, Job(n=7, mode="flaky"))

    await eventually(lambda: effects(pool), lambda e: e == {"7": 1})
    assert worker.calls[7] == 3  # failed twice (rolled back), then succeeded
    assert consumer.stats.retried == 2


async def test_failure_past_the_retry_budget_is_dead_lettered_then_replayed_after_a_fix(
    start: Start,
    channel: AbstractChannel,
    exchange: ScratchExchange,
    pool: asyncpg.Pool,
    broker: Broker,
    infra: Infra,
    schema: str,
) -> None:
    worker = Worker()
    queue = exchange.queue()
    await start(queue, worker)

    failing = await publish(channel, exchange.name, Job(n=5, mode="fail"))
    await publish(channel, exchange.name, Job(n=6))

    async with pool.acquire() as conn:
        letters = await eventually(lambda: list_dead_letters(conn), lambda d: len(d) == 1)
    # the failed attempts left nothing behind; the next message went through
    await eventually(lambda: effects(pool), lambda e: e == {"6": 1})
    assert worker.calls[5] == 4
    letter = letters[0]
    assert (letter.message_id, letter.attempts) == (failing, 4)
    assert "ValueError: job 5 cannot be done" in letter.reason

    worker.broken = False  # the fix is deployed
    relay = OutboxRelay(pool, broker, dsn=infra.database_url, schema=schema)
    relay.start()
    try:
        async with pool.acquire() as conn:
            replayed = await replay_dead_letters(conn, Outbox(schema), app_id="tests")
        assert replayed == [letter.id]
        await eventually(lambda: effects(pool), lambda e: e == {"5": 1, "6": 1})
    finally:
        await relay.stop()
    async with pool.acquire() as conn:
        assert await list_dead_letters(conn) == []
        assert (await list_dead_letters(conn, include_replayed=True))[0].replay_count == 1
        # replaying again finds nothing left to replay
        assert await replay_dead_letters(conn, Outbox(schema), app_id="tests") == []


async def test_batch_with_one_bad_message_keeps_the_good_ones(
    start: Start, channel: AbstractChannel, exchange: ScratchExchange, pool: asyncpg.Pool
) -> None:
    queue = exchange.queue()
    await topology.declare_queue(channel, queue)  # a backlog waits, so batches fill up
    for n in range(30):
        await publish(channel, exchange.name, Job(n=n, mode="fail" if n == 13 else "ok"))

    await start(queue, Worker(), batch_size=10, prefetch=30, workers=2)

    await eventually(lambda: effects(pool), lambda e: len(e) == 29)
    assert await effects(pool) == {str(n): 1 for n in range(30) if n != 13}
    async with pool.acquire() as conn:
        letters = await eventually(lambda: list_dead_letters(conn), lambda d: len(d) == 1)
    assert "job 13" in letters[0].reason


async def test_broker_dead_letters_past_the_delivery_limit_and_the_drain_keeps_it(
    broker: Broker, pool: asyncpg.Pool, channel: AbstractChannel, exchange: ScratchExchange
) -> None:
    queue = exchange.queue(delivery_limit=2)
    amqp_queue = await topology.declare_queue(channel, queue)
    drain = drain_consumer(queue, pool)
    assert broker._connection is not None
    await drain.attach(broker._connection)
    try:
        message_id = await publish(channel, exchange.name, Job(n=1))
        # A consumer that dies with the message every time (requeued, never acked).
        for _ in range(3):
            incoming = await amqp_queue.get(timeout=5)
            await incoming.nack(requeue=True)

        async with pool.acquire() as conn:
            letters = await eventually(lambda: list_dead_letters(conn), lambda d: len(d) == 1)
    finally:
        await drain.stop()
    assert letters[0].message_id == message_id
    assert letters[0].queue == queue.name
    assert letters[0].routing_key == "job"
    assert "delivery limit" in letters[0].reason


async def test_each_handled_message_logs_one_line_with_its_context(
    start: Start, channel: AbstractChannel, exchange: ScratchExchange, pool: asyncpg.Pool
) -> None:
    with structlog.testing.capture_logs() as logs:
        await start(exchange.queue(), Worker())
        message_id = await publish(channel, exchange.name, Job(n=1))
        await eventually(lambda: effects(pool), lambda e: e == {"1": 1})
        await eventually(
            lambda: asyncio.sleep(0, len(logs)),
            lambda _: any(e.get("message_id") == message_id for e in logs),
        )

    lines = [e for e in logs if e.get("message_id") == message_id]
    assert len(lines) == 1
    assert lines[0]["event"] == "message handled"
    assert lines[0]["message_event"] == "job"
    assert lines[0]["order_id"] == "order-1"


async def test_a_duplicate_inside_one_batch_has_no_second_effect(
    start: Start, channel: AbstractChannel, exchange: ScratchExchange, pool: asyncpg.Pool
) -> None:
    queue = exchange.queue()
    await topology.declare_queue(channel, queue)
    message_id = str(uuid.uuid4())
    for n in (1, 1, 2):  # waiting together, so they share one transaction
        await publish(channel, exchange.name, Job(n=n), message_id if n == 1 else None)

    consumer = await start(queue, Worker(), batch_size=10, prefetch=10)

    await eventually(
        lambda: asyncio.sleep(0, sum(consumer.stats.by_outcome.values())), lambda n: n == 3
    )
    assert await effects(pool) == {"1": 1, "2": 1}
    assert consumer.stats.duplicates == 1


async def test_prepare_sees_each_batch_of_fresh_payloads_before_the_handlers(
    start: Start, channel: AbstractChannel, exchange: ScratchExchange, pool: asyncpg.Pool
) -> None:
    queue = exchange.queue()
    await topology.declare_queue(channel, queue)
    repeated = str(uuid.uuid4())
    for n in range(6):
        await publish(channel, exchange.name, Job(n=n), repeated if n == 5 else None)
    await publish(channel, exchange.name, Job(n=5), repeated)  # a duplicate: not prepared
    await publish(channel, exchange.name, b"poison")  # nor is poison
    prepared: list[list[int]] = []
    worker = Worker()

    async def prepare(conn: db.Connection, jobs: list[Job]) -> None:
        assert not any(worker.calls[job.n] for job in jobs)  # its handlers run after
        prepared.append(sorted(job.n for job in jobs))

    consumer = await start(queue, worker, batch_size=10, prefetch=10, prepare=prepare)

    await eventually(
        lambda: asyncio.sleep(0, sum(consumer.stats.by_outcome.values())), lambda n: n == 8
    )
    # batches form as messages arrive; every fresh payload is prepared once, nothing else is
    assert sorted(n for batch in prepared for n in batch) == [0, 1, 2, 3, 4, 5]
    assert await effects(pool) == {str(n): 1 for n in range(6)}
