"""Reservation consumer throughput, against the bare baseline consumer in the same run.

    .venv/bin/python bench/reservations.py [N=10000]

What is measured: N `order.placed` events (one SKU of 100, quantity 1, all from one bin, one
organization) are pre-loaded into the `inventory_order_consumer` queue of a namespace of its own;
the clock starts when the inventory runtime starts and stops when the consumer has handled all
N — each one with its own inbox row (dedup), reservation, reservation item, ledger row, stock
update and outgoing `inventory.reservation.created` event in the outbox, committed before its
ack. The outbox relay runs in the same process during the run (its publishing is not waited
for). Defaults: batches of up to 50 per transaction, 3 workers in parallel, prefetch 300;
batches of `order.placed` share the organization's stock lock and lock their bin items in id
order, so the workers run side by side. The result is checked: `sum(reserved)` equals N and the
ledger balances. Then
`../shared/bench/baseline_reserve.py` (one transaction per message: inbox, conditional UPDATE,
reservation INSERT; no ledger, outbox, retries or dead-lettering) runs with the same N on the
same machine, and both rates and their ratio are printed. Knobs: INVENTORY_ORDER_BATCH_SIZE,
INVENTORY_ORDER_PREFETCH, INVENTORY_ORDER_WORKERS; BASELINE_RESERVE (path of the baseline).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aio_pika

from contracts.order_events import OrderPlacedData, PlacedItem, new_order_event
from contracts.topology import ORDER_EVENTS
from inventory_service.adapters import catalog, stock
from inventory_service.bootstrap import SCHEMA, build_runtime
from inventory_service.config import Settings
from inventory_service.domain.transactions import Delta
from messaging import db, envelopes
from messaging.logs import configure_logging
from messaging.namespaces import remove_namespace
from messaging.settings import RuntimeSettings
from messaging.topology import declare

ORGANIZATION = "org_123"
BIN = "wh_101"
SKUS = 100
QUEUE = "inventory_order_consumer"
BASELINE = Path(
    os.environ.get(
        "BASELINE_RESERVE",
        Path(__file__).resolve().parents[2] / "shared" / "bench" / "baseline_reserve.py",
    )
)


async def seed_stock(runtime: RuntimeSettings) -> None:
    """The same stock as the baseline: 100 SKUs with 1,000,000 each in one bin."""
    schema = runtime.schema(SCHEMA)
    await db.prepare_schema(
        runtime.database_url, schema, db.load_migrations("inventory", "inventory_service")
    )
    conn = await db.connect(runtime.database_url, schema)
    try:
        async with conn.transaction():
            row = await catalog.create_bin(conn, ORGANIZATION, BIN, catalog.BinFields())
            assert row is not None
            deltas = []
            for i in range(SKUS):
                item_id = await catalog.create_item(conn, ORGANIZATION, row["id"], f"var_{i}")
                assert item_id is not None
                deltas.append(Delta(item_id, "add", on_hand=1_000_000))
            await stock.apply(conn, ORGANIZATION, deltas)
    finally:
        await conn.close()


async def preload(runtime: RuntimeSettings, n: int) -> None:
    connection = await aio_pika.connect(runtime.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await declare(channel, runtime.topology)
        exchange = await channel.get_exchange(runtime.topology_prefix + ORDER_EVENTS)
        messages = []
        for i in range(n):
            data = OrderPlacedData(
                order_id=str(uuid.uuid4()),
                customer_id="cust_789",
                local_id="local_101",
                items=[
                    PlacedItem(variant_id=f"var_{i % SKUS}", quantity=1, preferred_warehouse_id=BIN)
                ],
                reservation_ttl_minutes=15,
            )
            event = new_order_event("order.placed", ORGANIZATION, data)
            messages.append(envelopes.order_event(event, app_id="order_service"))
        for start in range(0, n, 1000):
            await asyncio.gather(
                *(
                    exchange.publish(m.to_amqp(), routing_key=m.routing_key)
                    for m in messages[start : start + 1000]
                )
            )
    finally:
        await connection.close()


async def measure(n: int) -> tuple[float, Settings]:
    env = dict(os.environ)
    env["COMMERCE_NAMESPACE"] = f"bench{uuid.uuid4().hex[:8]}"
    env.setdefault("LOG_LEVEL", "WARNING")
    settings = Settings.from_env(env)
    configure_logging("bench", level=settings.runtime.log_level)
    try:
        await seed_stock(settings.runtime)
        await preload(settings.runtime, n)
        runtime = build_runtime(settings)
        started = time.perf_counter()
        await runtime.start()
        try:
            consumer_name = settings.runtime.topology_prefix + QUEUE
            while True:
                consumer = runtime.consumers[consumer_name]
                if consumer.stats.handled + consumer.stats.duplicates >= n:
                    break
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - started
            async with db.acquire(runtime.pool) as conn:
                reserved = await conn.fetchval("SELECT sum(reserved) FROM bin_items")
                mismatches = await stock.check_ledger(conn)
            assert reserved == n, f"reserved {reserved}, expected {n}"
            assert not mismatches, mismatches
        finally:
            await runtime.stop()
    finally:
        await remove_namespace(settings.runtime)
    return n / elapsed, settings


def baseline(n: int) -> float:
    out = subprocess.run(
        [sys.executable, str(BASELINE), str(n)], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"baseline_reserve: (\d+(?:\.\d+)?) msg/s", out)
    if match is None:
        raise SystemExit(f"unexpected baseline output: {out!r}")
    return float(match.group(1))


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    ours, settings = asyncio.run(measure(n))
    theirs = baseline(n)
    print(
        f"inventory reservation consumer: {ours:.0f} msg/s (N={n}, batch_size="
        f"{settings.order_batch_size}, prefetch={settings.order_prefetch}, "
        f"workers={settings.order_workers}; inbox + reservation + ledger + outbox per message)"
    )
    print(f"baseline_reserve:               {theirs:.0f} msg/s (N={n})")
    print(f"ratio: {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
