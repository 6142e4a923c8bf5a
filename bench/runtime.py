"""The messaging runtime's hot paths against the bare yardstick, measured in one run.

  1. outbox relay: N events already committed to the outbox → published with confirms and
     marked sent (what every state change costs on its way out);
  2. idempotent consumer: N messages waiting in a quorum queue → inbox dedup + one INSERT as the
     handler's effect + ack after commit, with batch_size 1 and 100;
  3. ../shared/bench/baseline_broker.py: raw aio-pika publish with confirms and consume with acks,
     no database at all.

    python bench/runtime.py [N=20000]

Prints one line per figure and the ratios; absolute numbers drift on a shared machine, the
ratios measured in the same run are what to compare.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aio_pika
import asyncpg

from contracts.topology import Binding, Queue
from messaging import db, topology
from messaging.broker import Broker
from messaging.consumer import Consumer
from messaging.logs import configure_logging
from messaging.message import Delivery, OutgoingMessage
from messaging.outbox import Outbox, OutboxRelay
from messaging.settings import RuntimeSettings

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
SHARED_BENCH = Path(__file__).resolve().parents[2] / "shared" / "bench"
EFFECTS = db.Migration(
    "bench", 1, "effects", "CREATE TABLE effects (message_id text NOT NULL, n int NOT NULL);"
)


def progress(label: str, done: int, total: int) -> None:
    """A bar redrawn in place on a terminal; elsewhere (a log, a pipe) only the finished one."""
    if done < total and not sys.stderr.isatty():
        return
    width = 30
    filled = width * done // max(total, 1)
    print(
        f"\r  {label:<28} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}",
        end="",
        file=sys.stderr,
        flush=True,
    )
    if done >= total:
        print(file=sys.stderr)


async def wait_until(label: str, count: Callable[[], Awaitable[int]], total: int) -> None:
    while (done := await count()) < total:
        progress(label, done, total)
        await asyncio.sleep(0.2)
    progress(label, total, total)


async def relay_rate(
    settings: RuntimeSettings, pool: asyncpg.Pool, broker: Broker, schema: str, exchange: str
) -> float:
    outbox = Outbox(schema)
    for start in range(0, N, 1000):
        async with pool.acquire() as conn, conn.transaction():
            await outbox.add(
                conn,
                *(
                    OutgoingMessage(
                        exchange=exchange,
                        routing_key="bench.runtime",
                        type="bench",
                        app_id="bench",
                        body=json.dumps({"n": n, "pad": "x" * 200}).encode(),
                    )
                    for n in range(start, min(start + 1000, N))
                ),
            )
    relay = OutboxRelay(pool, broker, dsn=settings.database_url, schema=schema)
    started = time.perf_counter()
    relay.start()

    async def sent() -> int:
        return int(await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL"))

    await wait_until("outbox relay", sent, N)
    elapsed = time.perf_counter() - started
    await relay.stop()
    return N / elapsed


async def consume_rate(
    pool: asyncpg.Pool, broker: Broker, queue: Queue, batch: int, count: int
) -> tuple[float, int]:
    """(msg/s, messages handled): consume until at least `count` are handled (a few more may
    be in flight when the count is reached)."""

    async def handle(conn: db.Connection, delivery: Delivery, n: int) -> None:
        await conn.execute("INSERT INTO effects VALUES ($1, $2)", delivery.message_id, n)

    await pool.execute("TRUNCATE effects")
    consumer: Consumer[int] = Consumer(
        queue,
        pool=pool,
        decode=lambda d: json.loads(d.body)["n"],
        handle=handle,
        prefetch=max(200, batch * 2),
        batch_size=batch,
        workers=2 if batch > 1 else 4,
    )
    assert broker._connection is not None
    started = time.perf_counter()
    await consumer.attach(broker._connection)

    async def done() -> int:
        return consumer.stats.handled + consumer.stats.duplicates

    await wait_until(f"consumer, batch {batch}", done, count)
    await consumer.stop()
    elapsed = time.perf_counter() - started
    handled = await done()  # after stop: what was in flight has been handled or given back
    return handled / elapsed, handled


def baseline() -> tuple[float, float]:
    out = subprocess.run(
        # Only N: its queue type is quorum by default, and a second argument trips its import of
        # baseline_reserve, which parses sys.argv as well.
        [sys.executable, "baseline_broker.py", str(N)],
        cwd=SHARED_BENCH,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"publish (\d+) msg/s, consume (\d+) msg/s", out)
    if match is None:
        raise SystemExit(f"unexpected baseline output: {out!r}")
    return float(match[1]), float(match[2])


async def main() -> None:
    settings = RuntimeSettings.from_env()
    configure_logging("bench", level="WARNING")
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    exchange = f"bench.runtime.{uuid.uuid4().hex[:8]}"
    queue = Queue(f"{exchange}.q", None, (Binding(exchange, "#"),))
    await db.prepare_schema(settings.database_url, schema, [EFFECTS])
    pool = await db.create_pool(settings.database_url, schema, min_size=4, max_size=8)
    broker = Broker(settings.amqp_url, app_id="bench", topology=None)
    broker.start()
    assert await broker.wait_connected(30)
    connection = await aio_pika.connect(settings.amqp_url)
    channel = await connection.channel()
    await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    await topology.declare_queue(channel, queue)
    try:
        relay = await relay_rate(settings, pool, broker, schema, exchange)
        single_count = min(N // 4, 5000)
        batched, _ = await consume_rate(pool, broker, queue, 100, N - single_count)
        # What the first consumer left: its channel is closed, so what it had not acked is
        # back in the queue (counting what it handled would miss a message acked as it was
        # stopped, and the second consumer would wait for it forever).
        declared = await channel.declare_queue(queue.name, passive=True)
        left = declared.declaration_result.message_count or 0
        single, _ = await consume_rate(pool, broker, queue, 1, left)
    finally:
        await channel.queue_delete(queue.name)
        await channel.queue_delete(queue.dead_letter_queue)
        await channel.exchange_delete(exchange)
        await connection.close()
        await broker.close()
        await pool.close()
        admin = await asyncpg.connect(settings.database_url)
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()
    base_publish, base_consume = baseline()
    print(
        f"runtime outbox relay:        {relay:8.0f} msg/s  "
        f"(baseline publish {base_publish:.0f} msg/s, ratio {relay / base_publish:.2f})"
    )
    print(
        f"runtime consumer, batch 100: {batched:8.0f} msg/s  "
        f"(baseline consume {base_consume:.0f} msg/s, ratio {batched / base_consume:.2f})"
    )
    print(f"runtime consumer, batch 1:   {single:8.0f} msg/s  (ratio {single / base_consume:.2f})")


if __name__ == "__main__":
    asyncio.run(main())
