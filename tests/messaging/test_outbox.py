"""Transactional outbox and relay against the live broker and database."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from messaging import topology
from messaging.broker import Broker
from messaging.message import OutgoingMessage
from messaging.outbox import Outbox, OutboxRelay
from tests.messaging.conftest import ScratchExchange
from tests.support import (
    Infra,
    eventually,
    local_postgres,
    start_broker,
    stop_broker,
    stop_postgres_for,
)


def event(exchange: str, n: int, routing_key: str = "order.created") -> OutgoingMessage:
    return OutgoingMessage(
        exchange=exchange,
        routing_key=routing_key,
        type=routing_key,
        app_id="tests",
        body=json.dumps({"n": n}).encode(),
    )


class Collector:
    """Consumes a queue and keeps every message it got, in arrival order."""

    def __init__(self) -> None:
        self.messages: list[AbstractIncomingMessage] = []

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        self.messages.append(message)
        await message.ack()

    @property
    def numbers(self) -> list[int]:
        return [json.loads(m.body)["n"] for m in self.messages]

    @property
    def ids(self) -> Counter[str | None]:
        return Counter(m.message_id for m in self.messages)

    async def count(self) -> int:
        return len(self.messages)


@pytest.fixture
async def bound(
    channel: AbstractChannel, exchange: ScratchExchange
) -> AsyncIterator[tuple[AbstractQueue, Collector]]:
    queue = await topology.declare_queue(channel, exchange.queue("#"))
    collector = Collector()
    tag = await queue.consume(collector)
    yield queue, collector
    with contextlib.suppress(Exception):
        await queue.cancel(tag)


@pytest.fixture
async def relay(
    pool: asyncpg.Pool, broker: Broker, infra: Infra, schema: str
) -> AsyncIterator[OutboxRelay]:
    relay = OutboxRelay(pool, broker, dsn=infra.database_url, schema=schema, poll_interval=60)
    relay.start()
    yield relay
    await relay.stop()


async def pending_rows(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))


async def test_add_refuses_to_run_outside_a_transaction(pool: asyncpg.Pool, schema: str) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError, match="inside the transaction"):
            await Outbox(schema).add(conn, event("x", 1))


async def test_committed_events_go_out_in_order_and_rolled_back_ones_never(
    pool: asyncpg.Pool,
    schema: str,
    exchange: ScratchExchange,
    relay: OutboxRelay,
    bound: tuple[AbstractQueue, Collector],
) -> None:
    _, collector = bound
    outbox = Outbox(schema)
    async with pool.acquire() as conn:
        async with conn.transaction():
            await outbox.add(conn, *(event(exchange.name, n) for n in range(3)))
        with contextlib.suppress(ZeroDivisionError):
            async with conn.transaction():
                await outbox.add(conn, event(exchange.name, 99))
                raise ZeroDivisionError  # the state change failed: its event must not leave
        async with conn.transaction():
            await outbox.add(conn, event(exchange.name, 3))

    await eventually(collector.count, lambda n: n >= 4)
    await asyncio.sleep(0.2)  # anything extra would arrive right behind
    assert collector.numbers == [0, 1, 2, 3]
    assert await pending_rows(pool) == 0


async def test_relay_is_woken_by_notify_not_by_polling(
    pool: asyncpg.Pool,
    schema: str,
    exchange: ScratchExchange,
    relay: OutboxRelay,
    bound: tuple[AbstractQueue, Collector],
) -> None:
    _, collector = bound
    await asyncio.sleep(0.3)  # the relay is idle now; its fallback poll is 60 s away
    async with pool.acquire() as conn, conn.transaction():
        await Outbox(schema).add(conn, event(exchange.name, 1))

    await eventually(collector.count, lambda n: n == 1, timeout=3)


async def test_several_relays_deliver_every_event_exactly_once_in_order(
    pool: asyncpg.Pool,
    broker: Broker,
    infra: Infra,
    schema: str,
    exchange: ScratchExchange,
    bound: tuple[AbstractQueue, Collector],
) -> None:
    _, collector = bound
    relays = [
        OutboxRelay(
            pool, broker, dsn=infra.database_url, schema=schema, poll_interval=0.5, batch_size=50
        )
        for _ in range(3)
    ]
    for r in relays:
        r.start()
    try:
        outbox = Outbox(schema)
        for start in range(0, 600, 60):
            async with pool.acquire() as conn, conn.transaction():
                await outbox.add(conn, *(event(exchange.name, n) for n in range(start, start + 60)))
        await eventually(collector.count, lambda n: n >= 600, timeout=30)
        await asyncio.sleep(0.3)
    finally:
        for r in relays:
            await r.stop()

    assert collector.numbers == list(range(600))
    assert set(collector.ids.values()) == {1}
    assert sum(r.published for r in relays) == 600


async def test_unroutable_event_waits_with_its_error_instead_of_vanishing(
    pool: asyncpg.Pool, schema: str, exchange: ScratchExchange, relay: OutboxRelay
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await Outbox(schema).add(conn, event(exchange.name, 1, routing_key="nobody.binds"))

    row = await eventually(
        lambda: pool.fetchrow("SELECT attempts, last_error, sent_at FROM outbox"),
        lambda r: r is not None and r["attempts"] >= 1,
    )
    assert row is not None
    assert row["sent_at"] is None
    assert "unroutable" in row["last_error"]


@pytest.mark.broker_restart
async def test_writes_succeed_while_the_broker_is_down_and_go_out_once_when_back(
    infra: Infra,
    pool: asyncpg.Pool,
    broker: Broker,
    schema: str,
    exchange: ScratchExchange,
    bound: tuple[AbstractQueue, Collector],
) -> None:
    if not infra.local_broker:
        pytest.skip("needs rabbitmqctl for the broker under test")
    _, collector = bound
    relay = OutboxRelay(pool, broker, dsn=infra.database_url, schema=schema, poll_interval=1)
    relay.start()
    outbox = Outbox(schema)
    try:
        await stop_broker()
        try:
            for n in range(20):
                async with pool.acquire() as conn, conn.transaction():
                    await outbox.add(conn, event(exchange.name, n))
            await asyncio.sleep(1.5)
            assert await pending_rows(pool) == 20  # written, waiting
        finally:
            await start_broker()
        await eventually(collector.count, lambda n: n >= 20, timeout=60)
        await asyncio.sleep(0.5)
    finally:
        await relay.stop()

    assert sorted(collector.numbers) == list(range(20))
    assert set(collector.ids.values()) == {1}
    assert await pending_rows(pool) == 0


@pytest.mark.postgres_restart
async def test_a_batch_confirmed_as_postgres_goes_down_is_marked_when_it_is_back_not_resent(
    infra: Infra,
    pool: asyncpg.Pool,
    broker: Broker,
    schema: str,
    exchange: ScratchExchange,
    bound: tuple[AbstractQueue, Collector],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not local_postgres(infra):
        pytest.skip("needs pg_ctlcluster for the database the tests use")
    _, collector = bound
    back: list[asyncio.Task[None]] = []
    lost = asyncio.Event()
    publish_many = broker.publish_many

    async def confirmed_then_postgres_lost(messages: list[OutgoingMessage]) -> list[Any]:
        outcomes = await publish_many(messages)
        if not back:
            back.append(await stop_postgres_for(1.0))
            lost.set()
        return outcomes

    monkeypatch.setattr(broker, "publish_many", confirmed_then_postgres_lost)
    async with pool.acquire() as conn, conn.transaction():
        await Outbox(schema).add(conn, *(event(exchange.name, n) for n in range(5)))
    relay = OutboxRelay(pool, broker, dsn=infra.database_url, schema=schema, poll_interval=1)
    relay.start()
    try:
        await asyncio.wait_for(lost.wait(), 10)
        await back[0]
        await eventually(lambda: pending_rows(pool), lambda n: n == 0, timeout=30)
        await asyncio.sleep(1.5)  # past the relay's next poll: a second copy would be out
    finally:
        await relay.stop()
        await asyncio.gather(*back)

    assert sorted(collector.numbers) == list(range(5))
    assert set(collector.ids.values()) == {1}  # published once: marked, not sent again
    assert relay.published == 5


async def test_stop_returns_when_a_wake_up_meets_the_cancellation(
    pool: asyncpg.Pool, broker: Broker, infra: Infra, schema: str
) -> None:
    # A NOTIFY (or a broker reconnect) landing just as the service shuts down: the relay must
    # still stop. (asyncio.wait_for on Python 3.11 lost such a cancellation and hung shutdown.)
    relay = OutboxRelay(pool, broker, dsn=infra.database_url, schema=schema, poll_interval=60)
    for _ in range(5):
        relay.start()
        await asyncio.sleep(0.05)  # the relay is waiting for a wake-up
        relay.wake()
        stopping = asyncio.create_task(relay.stop())
        done, _ = await asyncio.wait({stopping}, timeout=5)
        assert stopping in done, "relay.stop() hangs"


async def test_a_standby_relay_takes_over_when_the_leader_stops(
    pool: asyncpg.Pool,
    broker: Broker,
    infra: Infra,
    schema: str,
    exchange: ScratchExchange,
    bound: tuple[AbstractQueue, Collector],
) -> None:
    _, collector = bound
    outbox = Outbox(schema)

    def relay() -> OutboxRelay:
        return OutboxRelay(pool, broker, dsn=infra.database_url, schema=schema, poll_interval=60)

    leader, standby = relay(), relay()
    leader.start()
    async with pool.acquire() as conn, conn.transaction():
        await outbox.add(conn, event(exchange.name, 1))
    await eventually(collector.count, lambda n: n == 1)
    assert leader.published == 1
    standby.start()
    try:
        async with pool.acquire() as conn, conn.transaction():
            await outbox.add(conn, event(exchange.name, 2))
        await eventually(collector.count, lambda n: n == 2)
        assert (leader.published, standby.published) == (2, 0)  # the standby only stood by

        await leader.stop()  # its session ends, and with it the lock
        async with pool.acquire() as conn, conn.transaction():
            await outbox.add(conn, event(exchange.name, 3))  # the NOTIFY wakes the standby
        await eventually(collector.count, lambda n: n == 3, timeout=5)
    finally:
        await standby.stop()
    assert standby.published == 1
    assert collector.numbers == [1, 2, 3]
    assert await pending_rows(pool) == 0
