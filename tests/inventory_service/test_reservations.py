"""Reservations driven by order events, against the live broker and database."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from contracts.order_events import (
    OrderCancelledData,
    OrderConfirmedData,
    OrderPlacedData,
    OrderShippedData,
    PlacedItem,
    ReturnedItem,
    ReturnReceivedData,
    WarehouseItem,
)
from messaging.settings import RuntimeSettings
from tests.inventory_service.conftest import (
    OrderEvents,
    reservation_of,
    stock_bin,
    stock_of,
)
from tests.support import Recorder, eventually, unique


def placed(order_id: str, sku: str, quantity: int, bin_name: str | None, ttl: int = 15) -> Any:
    return OrderPlacedData(
        order_id=order_id,
        customer_id="cust_1",
        local_id=None,
        items=[PlacedItem(variant_id=sku, quantity=quantity, preferred_warehouse_id=bin_name)],
        reservation_ttl_minutes=ttl,
    )


def cancelled(order_id: str, reservation_id: str | None = None) -> OrderCancelledData:
    return OrderCancelledData(
        order_id=order_id,
        reservation_id=reservation_id,
        cancellation_reason="customer_request",
        cancelled_by="customer",
        refund_required=False,
        stock_to_release=[],
    )


def confirmed(order_id: str, reservation_id: str, sku: str, qty: int, bin_name: str) -> Any:
    return OrderConfirmedData(
        order_id=order_id,
        order_number="ORD-2025-0001",
        reservation_id=reservation_id,
        confirmed_at=datetime.now(UTC),
        payment_id=str(uuid.uuid4()),
        items=[WarehouseItem(variant_id=sku, quantity=qty, warehouse_id=bin_name)],
    )


def shipped(order_id: str, shipment_id: str, sku: str, qty: int, bin_name: str) -> Any:
    return OrderShippedData(
        order_id=order_id,
        shipment_id=shipment_id,
        carrier="UPS",
        tracking_number="1Z999",
        shipped_at=datetime.now(UTC),
        estimated_delivery=date.today(),
        shipped_items=[WarehouseItem(variant_id=sku, quantity=qty, warehouse_id=bin_name)],
    )


def about(order_id: str) -> Any:
    return lambda body: body["data"]["order_id"] == order_id


async def test_fifty_orders_compete_for_five_units_and_exactly_five_win(
    client: AsyncTestClient[Any],
    conn: asyncpg.Connection,
    orders: OrderEvents,
    namespaced: RuntimeSettings,
) -> None:
    sku = unique("sku-")
    bin_name = await stock_bin(client, {sku: 5})
    order_ids = [str(uuid.uuid4()) for _ in range(50)]
    async with Recorder(namespaced, "ecomm", "inventory.#") as events:
        await asyncio.gather(
            *(orders.publish("order.placed", placed(o, sku, 1, bin_name)) for o in order_ids)
        )

        def outcomes() -> list[Any]:
            return [
                b
                for b in events.bodies()
                if b.get("type", "").startswith("inventory.reservation.")
                and b["data"]["order_id"] in order_ids
            ]

        async def settled() -> list[Any]:
            return outcomes()

        done = await eventually(settled, lambda found: len(found) >= 50, timeout=30)
    kinds = [b["type"] for b in done]
    assert kinds.count("inventory.reservation.created") == 5
    assert kinds.count("inventory.reservation.failed") == 45
    failed = next(b for b in done if b["type"] == "inventory.reservation.failed")
    assert failed["data"]["items"] == [{"variant_id": sku, "requested": 1, "available": 0}]
    level = await stock_of(client, sku)
    assert level["atpQty"] == 0
    assert level["bins"] == [
        {
            "binName": bin_name,
            "onHand": 5,
            "reserved": 5,
            "atpQty": 0,
            "displayStatus": "OUT OF STOCK",
        }
    ]
    lowest = await conn.fetchval(
        "SELECT min(on_hand - reserved) FROM bin_items WHERE sku_id = $1", sku
    )
    assert lowest == 0
    created = [b for b in done if b["type"] == "inventory.reservation.created"]
    assert created[0]["source"] == "/inventory_service"
    assert created[0]["subject"] == created[0]["data"]["order_id"]
    assert created[0]["data"]["items"] == [
        {"variant_id": sku, "warehouse_id": bin_name, "quantity": 1}
    ]


async def test_preferred_bin_first_then_another_bin_with_enough_stock(
    client: AsyncTestClient[Any],
    conn: asyncpg.Connection,
    orders: OrderEvents,
    namespaced: RuntimeSettings,
) -> None:
    sku = unique("sku-")
    small = await stock_bin(client, {sku: 1})
    large = await stock_bin(client, {sku: 10})
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    async with Recorder(namespaced, "ecomm", "inventory.reservation.*") as events:
        await orders.publish("order.placed", placed(first, sku, 1, small))
        one = await events.wait_for("inventory.reservation.created", about(first))
        await orders.publish("order.placed", placed(second, sku, 3, small))
        two = await events.wait_for("inventory.reservation.created", about(second))
    assert one["data"]["items"][0]["warehouse_id"] == small
    assert two["data"]["items"][0]["warehouse_id"] == large


async def test_an_order_is_reserved_all_or_nothing(
    client: AsyncTestClient[Any],
    conn: asyncpg.Connection,
    orders: OrderEvents,
    namespaced: RuntimeSettings,
) -> None:
    plenty, scarce = unique("sku-"), unique("sku-")
    bin_name = await stock_bin(client, {plenty: 10, scarce: 1})
    order_id = str(uuid.uuid4())
    data = OrderPlacedData(
        order_id=order_id,
        customer_id="c",
        local_id=None,
        reservation_ttl_minutes=15,
        items=[
            PlacedItem(variant_id=plenty, quantity=2, preferred_warehouse_id=bin_name),
            PlacedItem(variant_id=scarce, quantity=2, preferred_warehouse_id=bin_name),
        ],
    )
    async with Recorder(namespaced, "ecomm", "inventory.reservation.*") as events:
        await orders.publish("order.placed", data)
        failed = await events.wait_for("inventory.reservation.failed", about(order_id))
    assert failed["data"]["reason"] == "insufficient_stock"
    assert failed["data"]["items"] == [{"variant_id": scarce, "requested": 2, "available": 1}]
    assert (await stock_of(client, plenty))["atpQty"] == 10
    assert (await reservation_of(client, order_id) or {})["status"] == "failed"


async def test_placed_confirmed_shipped_moves_stock_through_its_life(
    client: AsyncTestClient[Any],
    conn: asyncpg.Connection,
    orders: OrderEvents,
    namespaced: RuntimeSettings,
) -> None:
    sku = unique("sku-")
    bin_name = await stock_bin(client, {sku: 10})
    order_id = str(uuid.uuid4())
    async with Recorder(namespaced, "ecomm", "inventory.#") as events:
        await orders.publish("order.placed", placed(order_id, sku, 3, bin_name))
        created = await events.wait_for("inventory.reservation.created", about(order_id))
        reservation_id = created["data"]["reservation_id"]
        await orders.publish(
            "order.confirmed", confirmed(order_id, reservation_id, sku, 3, bin_name)
        )
        committed = await events.wait_for("inventory.reservation.committed", about(order_id))
        assert committed["data"] == {"reservation_id": reservation_id, "order_id": order_id}
        await orders.publish("order.shipped", shipped(order_id, "shp_1", sku, 3, bin_name))
        deducted = await events.wait_for("inventory.stock.deducted", about(order_id))
    assert deducted["data"]["items"] == [
        {"variant_id": sku, "warehouse_id": bin_name, "quantity": 3}
    ]
    level = await stock_of(client, sku)
    assert level["bins"][0] | {"displayStatus": None} == {
        "binName": bin_name,
        "onHand": 7,
        "reserved": 0,
        "atpQty": 7,
        "displayStatus": None,
    }
    assert (await reservation_of(client, order_id) or {})["status"] == "deducted"


async def test_cancel_releases_the_hold(
    client: AsyncTestClient[Any],
    conn: asyncpg.Connection,
    orders: OrderEvents,
    namespaced: RuntimeSettings,
) -> None:
    sku = unique("sku-")
    bin_name = await stock_bin(client, {sku: 4})
    order_id = str(uuid.uuid4())
    async with Recorder(namespaced, "ecomm", "inventory.reservation.*") as events:
        await orders.publish("order.placed", placed(order_id, sku, 4, bin_name))
        created = await events.wait_for("inventory.reservation.created", about(order_id))
        await orders.publish(
            "order.cancelled", cancelled(order_id, created["data"]["reservation_id"])
        )
        released = await events.wait_for("inventory.reservation.released", about(order_id))
    assert released["data"]["reason"] == "cancelled"
    assert released["data"]["reservation_id"] == created["data"]["reservation_id"]
    assert (await stock_of(client, sku))["atpQty"] == 4


async def test_cancel_before_placed_leaves_a_tombstone_and_the_late_reserve_is_not_applied(
    client: AsyncTestClient[Any],
    conn: asyncpg.Connection,
    orders: OrderEvents,
    namespaced: RuntimeSettings,
) -> None:
    sku = unique("sku-")
    bin_name = await stock_bin(client, {sku: 3})
    order_id, witness = str(uuid.uuid4()), str(uuid.uuid4())
    async with Recorder(namespaced, "ecomm", "inventory.reservation.*") as events:
        await orders.publish("order.cancelled", cancelled(order_id))
        await eventually(lambda: reservation_of(client, order_id), lambda r: r is not None)
        await orders.publish("order.placed", placed(order_id, sku, 2, bin_name))
        # A later order for the same SKU: once it is handled, so is the late order.placed.
        await orders.publish("order.placed", placed(witness, sku, 1, bin_name))
        await events.wait_for("inventory.reservation.created", about(witness))
        assert [b for b in events.bodies() if b["data"]["order_id"] == order_id] == []
    assert (await stock_of(client, sku))["atpQty"] == 2
    tombstone = await reservation_of(client, order_id)
    assert tombstone is not None
    assert (tombstone["status"], tombstone["reason"], tombstone["items"]) == (
        "released",
        "cancelled",
        [],
    )


async def test_a_redelivered_shipment_with_a_new_message_id_deducts_once(
    client: AsyncTestClient[Any],
    conn: asyncpg.Connection,
    orders: OrderEvents,
    namespaced: RuntimeSettings,
) -> None:
    sku = unique("sku-")
    bin_name = await stock_bin(client, {sku: 5})
    order_id = str(uuid.uuid4())
    async with Recorder(namespaced, "ecomm", "inventory.#") as events:
        await orders.publish("order.placed", placed(order_id, sku, 2, bin_name))
        await events.wait_for("inventory.reservation.created", about(order_id))
        first = await orders.publish("order.shipped", shipped(order_id, "shp_a", sku, 2, bin_name))
        second = await orders.publish("order.shipped", shipped(order_id, "shp_a", sku, 2, bin_name))
        # A second shipment of the same order cannot deduct more than the order holds either.
        third = await orders.publish("order.shipped", shipped(order_id, "shp_b", sku, 2, bin_name))
        assert len({first, second, third}) == 3
        await events.wait_for("inventory.stock.deducted", about(order_id))

        async def handled() -> int:
            count: int = await conn.fetchval(
                "SELECT count(*) FROM shipment_deductions WHERE order_id = $1", order_id
            )
            return count

        await eventually(handled, lambda n: n == 2)
        assert len(events.bodies("inventory.stock.deducted")) == 1
    level = await stock_of(client, sku)
    assert (level["bins"][0]["onHand"], level["bins"][0]["reserved"]) == (3, 0)


async def test_a_duplicate_message_id_has_no_effect(
    client: AsyncTestClient[Any],
    conn: asyncpg.Connection,
    orders: OrderEvents,
    namespaced: RuntimeSettings,
) -> None:
    """The same message id twice, even with another body: the inbox drops the second."""
    sku = unique("sku-")
    bin_name = await stock_bin(client, {sku: 5})
    event_id = uuid.uuid4()
    order_a, order_b = str(uuid.uuid4()), str(uuid.uuid4())
    async with Recorder(namespaced, "ecomm", "inventory.reservation.*") as events:
        await orders.publish("order.placed", placed(order_a, sku, 1, bin_name), event_id=event_id)
        await orders.publish("order.placed", placed(order_b, sku, 1, bin_name), event_id=event_id)
        witness = str(uuid.uuid4())
        await orders.publish("order.placed", placed(witness, sku, 1, bin_name))
        await events.wait_for("inventory.reservation.created", about(witness))
        await events.wait_for("inventory.reservation.created", about(order_a))
    assert await reservation_of(client, order_b) is None
    assert (await stock_of(client, sku))["atpQty"] == 3


async def test_a_hold_past_its_ttl_is_released_as_expired_and_confirm_reserves_again(
    client: AsyncTestClient[Any],
    conn: asyncpg.Connection,
    orders: OrderEvents,
    namespaced: RuntimeSettings,
) -> None:
    sku = unique("sku-")
    bin_name = await stock_bin(client, {sku: 2})
    order_id = str(uuid.uuid4())
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    async with Recorder(namespaced, "ecomm", "inventory.reservation.*") as events:
        await orders.publish(
            "order.placed", placed(order_id, sku, 2, bin_name, ttl=1), timestamp=long_ago
        )
        created = await events.wait_for("inventory.reservation.created", about(order_id))
        released = await events.wait_for("inventory.reservation.released", about(order_id))
        assert released["data"] == {
            "reservation_id": created["data"]["reservation_id"],
            "order_id": order_id,
            "reason": "expired",
        }
        assert (await stock_of(client, sku))["atpQty"] == 2
        assert (await reservation_of(client, order_id) or {})["status"] == "expired"
        reservation_id = created["data"]["reservation_id"]
        await orders.publish(
            "order.confirmed", confirmed(order_id, reservation_id, sku, 2, bin_name)
        )
        committed = await events.wait_for("inventory.reservation.committed", about(order_id))
    assert committed["data"]["reservation_id"] == reservation_id
    assert (await stock_of(client, sku))["atpQty"] == 0
    assert (await reservation_of(client, order_id) or {})["status"] == "committed"


async def test_confirm_after_expiry_without_stock_fails(
    client: AsyncTestClient[Any],
    conn: asyncpg.Connection,
    orders: OrderEvents,
    namespaced: RuntimeSettings,
) -> None:
    sku = unique("sku-")
    bin_name = await stock_bin(client, {sku: 1})
    late, rival = str(uuid.uuid4()), str(uuid.uuid4())
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    async with Recorder(namespaced, "ecomm", "inventory.reservation.*") as events:
        await orders.publish(
            "order.placed", placed(late, sku, 1, bin_name, ttl=1), timestamp=long_ago
        )
        created = await events.wait_for("inventory.reservation.created", about(late))
        await events.wait_for("inventory.reservation.released", about(late))
        await orders.publish("order.placed", placed(rival, sku, 1, bin_name))
        await events.wait_for("inventory.reservation.created", about(rival))
        await orders.publish(
            "order.confirmed", confirmed(late, created["data"]["reservation_id"], sku, 1, bin_name)
        )
        failed = await events.wait_for("inventory.reservation.failed", about(late))
    assert failed["data"]["items"] == [{"variant_id": sku, "requested": 1, "available": 0}]


async def test_crossing_the_low_stock_threshold_alerts_once(
    client: AsyncTestClient[Any],
    conn: asyncpg.Connection,
    orders: OrderEvents,
    namespaced: RuntimeSettings,
) -> None:
    sku = unique("sku-")
    bin_name = await stock_bin(client, {sku: 10}, low_stock_threshold=5)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    async with Recorder(namespaced, "ecomm", "inventory.#") as events:
        await orders.publish("order.placed", placed(first, sku, 6, bin_name))
        alert = await events.wait_for("inventory.stock.low", lambda b: b["subject"] == sku)
        await orders.publish("order.placed", placed(second, sku, 1, bin_name))
        await events.wait_for("inventory.reservation.created", about(second))
    assert alert["data"] == {
        "inventoryId": alert["data"]["inventoryId"],
        "sku": sku,
        "currentQuantity": 4,
        "minStock": 5,
        "location": bin_name,
    }
    assert len([b for b in events.bodies("inventory.stock.low") if b["subject"] == sku]) == 1


async def test_a_return_restocks_good_items_and_records_the_others(
    client: AsyncTestClient[Any],
    conn: asyncpg.Connection,
    orders: OrderEvents,
    namespaced: RuntimeSettings,
) -> None:
    good, broken = unique("sku-"), unique("sku-")
    bin_name = await stock_bin(client, {good: 1, broken: 1})
    order_id, return_id = str(uuid.uuid4()), str(uuid.uuid4())
    data = ReturnReceivedData(
        return_id=return_id,
        order_id=order_id,
        rma_number="RMA-2025-0001",
        received_at=datetime.now(UTC),
        warehouse_id=bin_name,
        returned_items=[
            ReturnedItem(variant_id=good, quantity=2, condition="good", return_reason="size"),
            ReturnedItem(
                variant_id=broken, quantity=1, condition="damaged", return_reason="broken"
            ),
        ],
    )
    async with Recorder(namespaced, "ecomm", "inventory.stock.*") as events:
        await orders.publish("return.received", data)
        await orders.publish("return.received", data)  # again, with a new message id
        restocked = await events.wait_for("inventory.stock.restocked", about(order_id))
    assert restocked["data"] == {
        "return_id": return_id,
        "order_id": order_id,
        "warehouse_id": bin_name,
        "items": [{"variant_id": good, "quantity": 2, "condition": "good"}],
    }
    assert (await stock_of(client, good))["atpQty"] == 3
    assert (await stock_of(client, broken))["atpQty"] == 1
    recorded = await conn.fetch(
        "SELECT variant_id, restocked FROM return_items WHERE return_id = $1 ORDER BY id", return_id
    )
    assert [(r["variant_id"], r["restocked"]) for r in recorded] == [(good, True), (broken, False)]
