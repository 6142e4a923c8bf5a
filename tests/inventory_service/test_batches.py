"""Batches of order events: decided in order against locked stock, written together, and safe
next to parallel workers and HTTP commands (placements share the organization's stock lock;
everything else takes it alone)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from contracts.order_events import OrderEvent, OrderPlacedData, PlacedItem, new_order_event
from inventory_service.handlers import OrderEventHandler
from inventory_service.main import SCHEMA
from messaging.message import Delivery
from messaging.outbox import Outbox
from messaging.settings import RuntimeSettings
from tests.inventory_service.conftest import OrderEvents, reservation_of, stock_bin, stock_of
from tests.inventory_service.test_reservations import about, cancelled, placed
from tests.support import ORG, Recorder, auth, eventually, unique


def _event(name: str, data: Any) -> OrderEvent[Any]:
    return new_order_event(name, ORG, data)


def _delivery(event: OrderEvent[Any]) -> Delivery:
    return Delivery(
        queue="inventory_order_consumer",
        message_id=str(uuid.uuid4()),
        exchange="order_events",
        routing_key=event.event,
        body=b"",
    )


async def test_one_batch_sees_its_own_earlier_events_in_order(
    client: AsyncTestClient[Any], conn: asyncpg.Connection, namespaced: RuntimeSettings
) -> None:
    """Placed, cancelled, placed again for the freed unit, a second copy of that placement,
    then one order too many — all in ONE transaction, as the consumer runs a batch."""
    sku = unique("sku-")
    bin_name = await stock_bin(client, {sku: 1})
    first, second, late = (str(uuid.uuid4()) for _ in range(3))
    batch = [
        _event("order.placed", placed(first, sku, 1, bin_name)),
        _event("order.cancelled", cancelled(first)),
        _event("order.placed", placed(second, sku, 1, bin_name)),
        _event("order.placed", placed(second, sku, 1, bin_name)),
        _event("order.placed", placed(late, sku, 1, bin_name)),
    ]
    outbox = Outbox(namespaced.schema(SCHEMA))
    handler = OrderEventHandler(outbox)
    async with conn.transaction():
        await handler.prepare(conn, batch)
        for event in batch:
            await handler(conn, _delivery(event), event)
        written = await conn.fetch(
            "SELECT type, subject FROM outbox WHERE subject = ANY($1::text[]) ORDER BY id",
            [first, second, late],
        )
    assert [(r["type"], r["subject"]) for r in written] == [
        ("inventory.reservation.created", first),
        ("inventory.reservation.released", first),
        ("inventory.reservation.created", second),
        ("inventory.reservation.failed", late),
    ]
    assert [
        (await reservation_of(client, o) or {}).get("status") for o in (first, second, late)
    ] == ["released", "held", "failed"]
    assert (await stock_of(client, sku))["bins"][0]["reserved"] == 1


async def test_multi_item_orders_in_opposite_orders_neither_deadlock_nor_oversell(
    client: AsyncTestClient[Any],
    conn: asyncpg.Connection,
    orders: OrderEvents,
    namespaced: RuntimeSettings,
) -> None:
    """Parallel workers lock bin items in id order: orders naming the same SKUs in every order
    all get an answer, and no SKU is reserved beyond its stock."""
    skus = [unique("sku-") for _ in range(3)]
    bin_name = await stock_bin(client, {sku: 10 for sku in skus})
    shapes = [skus, skus[::-1], [skus[1], skus[0]], [skus[2], skus[0]], [skus[2], skus[1]]]
    order_ids = [str(uuid.uuid4()) for _ in range(40)]
    async with Recorder(namespaced, "ecomm", "inventory.reservation.*") as events:
        await asyncio.gather(
            *(
                orders.publish(
                    "order.placed",
                    OrderPlacedData(
                        order_id=order_id,
                        customer_id="cust_1",
                        local_id=None,
                        items=[
                            PlacedItem(variant_id=s, quantity=1, preferred_warehouse_id=bin_name)
                            for s in shapes[i % len(shapes)]
                        ],
                        reservation_ttl_minutes=15,
                    ),
                )
                for i, order_id in enumerate(order_ids)
            )
        )

        async def answered() -> list[Any]:
            return [b for b in events.bodies() if b["data"]["order_id"] in order_ids]

        done = await eventually(answered, lambda found: len(found) >= len(order_ids), timeout=30)
    created = [b for b in done if b["type"] == "inventory.reservation.created"]
    assert len(done) == len(order_ids)
    assert 0 < len(created) < len(order_ids)  # some win, some are refused
    taken = {sku: 0 for sku in skus}
    for body in created:
        for item in body["data"]["items"]:
            taken[item["variant_id"]] += item["quantity"]
    for sku in skus:
        level = await stock_of(client, sku)
        assert level["bins"][0]["reserved"] == taken[sku] <= 10


ROUNDS = 40


async def test_transfers_over_http_race_the_consumer_without_deadlock_or_lost_update(
    client: AsyncTestClient[Any],
    conn: asyncpg.Connection,
    orders: OrderEvents,
    namespaced: RuntimeSettings,
) -> None:
    """HTTP commands take the organization's stock lock alone, batches of placements share it:
    transfers both ways between two bins while orders reserve from both all succeed, and no
    quantity is lost."""
    sku = unique("sku-")
    left = await stock_bin(client, {sku: 60})
    right = await stock_bin(client, {sku: 60})

    async def transfer(source: str, target: str) -> int:
        body = {"binName": source, "skuId": sku, "type": 3, "atpQty": 1, "toBinName": target}
        response = await client.post("/transactions", json=body, headers=auth())
        return response.status_code

    order_ids = [str(uuid.uuid4()) for _ in range(ROUNDS)]
    async with Recorder(namespaced, "ecomm", "inventory.reservation.*") as events:
        statuses = await asyncio.gather(
            *(transfer(left, right) if i % 2 else transfer(right, left) for i in range(ROUNDS)),
            *(
                orders.publish("order.placed", placed(o, sku, 1, left if i % 2 else right))
                for i, o in enumerate(order_ids)
            ),
        )
        for order_id in order_ids:
            await events.wait_for("inventory.reservation.created", about(order_id))
    assert statuses[:ROUNDS] == [201] * ROUNDS
    level = await stock_of(client, sku)
    assert sum(b["onHand"] for b in level["bins"]) == 120
    assert sum(b["reserved"] for b in level["bins"]) == ROUNDS
    assert level["atpQty"] == 120 - ROUNDS


async def test_cancellations_racing_their_placements_across_workers_leave_nothing_held(
    client: AsyncTestClient[Any],
    conn: asyncpg.Connection,
    orders: OrderEvents,
    namespaced: RuntimeSettings,
) -> None:
    """Each order's `order.cancelled` right behind its `order.placed`, so that the two land in
    batches of different workers: whichever runs first, every order ends released, nothing
    stays reserved and nothing is dead-lettered."""
    sku = unique("sku-")
    bin_name = await stock_bin(client, {sku: 100})
    order_ids = [str(uuid.uuid4()) for _ in range(ROUNDS)]
    async with Recorder(namespaced, "ecomm", "inventory.reservation.*") as events:
        await asyncio.gather(
            *(
                publish
                for order_id in order_ids
                for publish in (
                    orders.publish("order.placed", placed(order_id, sku, 2, bin_name)),
                    orders.publish("order.cancelled", cancelled(order_id)),
                )
            )
        )

        async def statuses() -> list[Any]:
            return [
                (await reservation_of(client, order_id) or {}).get("status")
                for order_id in order_ids
            ]

        await eventually(statuses, lambda found: set(found) == {"released"}, timeout=30)
        await asyncio.sleep(0.3)  # a late placement would be applied right behind
    assert (await stock_of(client, sku))["bins"][0]["reserved"] == 0
    held = [
        b
        for b in events.bodies()
        if b["type"] == "inventory.reservation.created" and b["data"]["order_id"] in order_ids
    ]
    released = [
        b
        for b in events.bodies()
        if b["type"] == "inventory.reservation.released" and b["data"]["order_id"] in order_ids
    ]
    assert len(held) == len(released)  # every hold that was made was given back
    dead = await conn.fetchval(
        "SELECT count(*) FROM dead_letters WHERE correlation_id = ANY($1::text[])", order_ids
    )
    assert dead == 0
