"""A service survives the broker closing its connections: it reconnects, re-declares, resumes
consuming, and nothing is lost or applied twice."""

from __future__ import annotations

import asyncio
import json
import uuid

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel

from messaging import db
from messaging.message import Delivery, OutgoingMessage
from messaging.runtime import ServiceRuntime
from messaging.settings import RuntimeSettings
from tests.messaging.conftest import EFFECTS, ScratchExchange
from tests.support import (
    Infra,
    close_broker_connections,
    eventually,
    local_postgres,
    restart_postgres,
)


async def record(conn: db.Connection, delivery: Delivery, n: int) -> None:
    await conn.execute(
        "INSERT INTO effects (message_id, body) VALUES ($1, $2)", delivery.message_id, str(n)
    )


@pytest.mark.broker_restart
async def test_consuming_resumes_after_the_broker_closes_every_connection(
    infra: Infra,
    settings: RuntimeSettings,
    schema: str,
    exchange: ScratchExchange,
    channel: AbstractChannel,
) -> None:
    if not infra.local_broker:
        pytest.skip("needs rabbitmqctl for the broker under test")
    queue = exchange.queue("job")
    runtime = ServiceRuntime(
        service="tests",
        schema=schema,
        settings=settings,
        migrations=[EFFECTS],
        declare_topology=False,
        relay_poll_interval=0.5,
    )
    runtime.consume(
        queue, decode=lambda d: json.loads(d.body)["n"], handle=record, batch_size=5, prefetch=20
    )

    async def send(numbers: range) -> None:
        for n in numbers:
            async with runtime.pool.acquire() as conn, conn.transaction():
                await runtime.outbox.add(
                    conn,
                    OutgoingMessage(
                        exchange=exchange.name,
                        routing_key="job",
                        type="job",
                        app_id="tests",
                        body=json.dumps({"n": n}).encode(),
                    ),
                )

    async def applied() -> list[str]:
        return [r["body"] for r in await runtime.pool.fetch("SELECT body FROM effects")]

    async with runtime:
        assert await runtime.broker.wait_connected(20)
        await send(range(0, 50))
        await close_broker_connections()  # mid-stream: some are in flight, some not yet sent
        await send(range(50, 100))
        await eventually(applied, lambda rows: len(rows) >= 100, timeout=60)
        await asyncio.sleep(0.5)  # a redelivery applied twice would show up now
        rows = await applied()
        assert runtime.broker.connections_made >= 2

    assert sorted(int(r) for r in rows) == list(range(100))  # each exactly once


@pytest.mark.postgres_restart
async def test_a_postgres_restart_holds_messages_and_loses_none(
    infra: Infra,
    settings: RuntimeSettings,
    schema: str,
    exchange: ScratchExchange,
    channel: AbstractChannel,
) -> None:
    if not local_postgres(infra):
        pytest.skip("needs pg_ctlcluster for the database under test")
    queue = exchange.queue("job")
    runtime = ServiceRuntime(
        service="tests",
        schema=schema,
        settings=settings,
        migrations=[EFFECTS],
        declare_topology=False,
        relay_poll_interval=0.5,
    )
    runtime.consume(
        queue, decode=lambda d: json.loads(d.body)["n"], handle=record, batch_size=5, prefetch=20
    )
    target = await channel.get_exchange(exchange.name)

    async def publish(numbers: range) -> None:
        for n in numbers:
            await target.publish(
                aio_pika.Message(json.dumps({"n": n}).encode(), message_id=str(uuid.uuid4())), "job"
            )

    async def applied() -> list[str]:
        try:
            return [r["body"] for r in await runtime.pool.fetch("SELECT body FROM effects")]
        except Exception:  # still restarting
            return []

    async with runtime:
        assert await runtime.broker.wait_connected(20)
        await publish(range(0, 30))
        restart = asyncio.create_task(restart_postgres())
        await publish(range(30, 60))  # arrive while the database is going away
        await restart
        await publish(range(60, 90))
        # and the outbox still works afterwards: its LISTEN connection came back
        async with runtime.pool.acquire() as conn, conn.transaction():
            await runtime.outbox.add(
                conn,
                *(
                    OutgoingMessage(
                        exchange=exchange.name,
                        routing_key="job",
                        type="job",
                        app_id="tests",
                        body=json.dumps({"n": n}).encode(),
                    )
                    for n in range(90, 100)
                ),
            )
        await eventually(applied, lambda rows: len(rows) >= 100, timeout=90)
        await asyncio.sleep(0.5)
        rows = await applied()

    assert sorted(int(r) for r in rows) == list(range(100))
