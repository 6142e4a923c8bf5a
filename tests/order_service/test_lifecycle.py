"""One order through its whole life over HTTP (plus a cancelled one, a failed payment and an
abandoned cart) while a queue of the test's own records `order_events`: all 29 events, each
with the seed example's `data` keys and JSON types, in the SPEC §2.1 envelope."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from aio_pika.abc import AbstractIncomingMessage
from litestar.testing import AsyncTestClient

from contracts.bookworm import PlaceOrderCommand, new_bookworm
from contracts.topology import ORDER_EVENT_NAMES
from messaging.settings import RuntimeSettings
from tests.order_service.conftest import Inventory, Saga, Shop, example, same_shape
from tests.support import ORG, Recorder, auth, eventually

ENVELOPE_KEYS = {"id", "event", "version", "timestamp", "organization_id", "data"}


def place_order(order: dict[str, Any]) -> PlaceOrderCommand:
    return new_bookworm(
        PlaceOrderCommand,
        basket_id=uuid.UUID(order["cart_id"]),
        full_name=order["full_name"],
        email=order["email"],
        order_id=uuid.UUID(order["order_id"]),
        total_money=Decimal(str(order["total_amount"])),
    )


async def live_to_return(shop: Shop, inventory: Inventory, saga: Saga) -> dict[str, Any]:
    """Cart → checkout → basket conversion → reservation + payment → fulfillment → shipment
    with tracking → delivery → invoice sent → return received and refunded."""
    order = await shop.order()
    order_id = order["order_id"]
    assert order["status"] == "pending"
    assert order["order_number"].startswith("ORD-")
    await saga.send(place_order(order))
    await inventory.reserved(order)
    await shop.pay(order)
    order = await shop.wait_status(order_id, "confirmed")
    assert {i["warehouse_id"] for i in order["items"]} == {"wh_101"}

    await shop.post(
        f"/orders/{order_id}/fulfillment/start",
        {"warehouse_id": "wh_101", "assigned_to": "picker_user_123"},
    )
    for item in order["items"]:
        await shop.post(
            f"/orders/{order_id}/fulfillment/picks",
            {
                "order_item_id": item["order_item_id"],
                "quantity_picked": item["quantity"],
                "picked_by": "picker_user_123",
            },
        )
    packed = await shop.post(
        f"/orders/{order_id}/fulfillment/pack",
        {"package_count": 1, "total_weight": 2.5, "packed_by": "packer_user_456"},
    )
    assert packed["status"] == "packed"

    shipment = await shop.post(
        f"/orders/{order_id}/shipments",
        {"carrier": "FedEx", "service": "Ground", "shipping_cost": 15.0},
        201,
    )
    ship = f"/shipments/{shipment['shipment_id']}"
    await shop.post(
        f"{ship}/label",
        {
            "tracking_number": "123456789",
            "label_url": "https://labels.test/1",
            "carrier_cost": 12.5,
        },
    )
    await shop.post(f"{ship}/dispatch", {"warehouse_id": "wh_101"})
    await shop.post(
        f"{ship}/tracking",
        {"current_location": "Memphis, TN", "status_description": "In transit to destination"},
    )
    delivered = await shop.post(
        f"{ship}/deliver",
        {
            "recipient": "Juan Pérez",
            "signature": "Juan Pérez",
            "delivery_photo_url": "https://photos.test/1.jpg",
            "signature_required": True,
        },
    )
    assert delivered["status"] == "delivered"
    assert await shop.order_status(order_id) == "delivered"

    invoices = await shop.client.get(f"/orders/{order_id}/invoices", headers=auth())
    [invoice] = invoices.json()
    sent = await shop.post(
        f"/invoices/{invoice['invoice_id']}/send", {"recipient_email": "customer@example.com"}
    )
    assert sent["status"] == "sent"

    first = order["items"][0]
    ret = await shop.post(
        f"/orders/{order_id}/returns",
        {
            "reason": "wrong_size",
            "items": [{"order_item_id": first["order_item_id"], "quantity": 1}],
        },
        201,
    )
    assert ret["rma_number"].startswith("RMA-")
    path = f"/returns/{ret['return_id']}"
    await shop.post(f"{path}/approve", {"approved_by": "user_manager", "refund_amount": 25.0})
    await shop.post(
        f"{path}/receive",
        {
            "warehouse_id": "wh_101",
            "returned_items": [
                {
                    "variant_id": first["variant_id"],
                    "quantity": 1,
                    "condition": "good",
                    "return_reason": "wrong_size",
                }
            ],
        },
    )
    refunded = await shop.post(f"{path}/refund", {"refund_method": "original_payment"})
    assert refunded["status"] == "refunded"
    final = await shop.get(f"/orders/{order_id}")
    assert final["refunded_amount"] == 25.0
    return final


async def cancelled_after_payment(shop: Shop, inventory: Inventory) -> dict[str, Any]:
    """Reserved; a payment fails, the next succeeds; then the customer cancels."""
    order = await shop.order()
    order_id = order["order_id"]
    await inventory.reserved(order)
    failing = await shop.post(
        f"/orders/{order_id}/payments", {"payment_method": "stripe", "card_last4": "4000"}, 201
    )
    failed = await shop.post(
        f"/payments/{failing['payment_id']}/fail",
        {"error_code": "card_declined", "error_message": "Your card was declined"},
    )
    assert failed["status"] == "failed"
    await shop.pay(order)
    await shop.wait_status(order_id, "confirmed")
    cancelled = await shop.post(
        f"/orders/{order_id}/cancel", {"reason": "customer_request", "cancelled_by": "user_789"}
    )
    assert cancelled["status"] == "cancelled"
    assert cancelled["refunded_amount"] == cancelled["paid_amount"] == cancelled["total_amount"]
    return cancelled


async def abandoned_cart(shop: Shop, conn: asyncpg.Connection) -> str:
    cart = await shop.cart(("var_111", 3, "10.00"))
    await conn.execute(
        "UPDATE carts SET last_activity_at = now() - interval '2 days' WHERE id = $1",
        uuid.UUID(cart["cart_id"]),
    )
    cart_id: str = cart["cart_id"]
    return cart_id


async def test_every_event_of_an_order_life_matches_its_seed_example(
    client: AsyncTestClient[Any],
    shop: Shop,
    inventory: Inventory,
    saga: Saga,
    namespaced: RuntimeSettings,
    conn: asyncpg.Connection,
) -> None:
    async with Recorder(namespaced, "order_events", "#") as events:
        first = await live_to_return(shop, inventory, saga)
        second = await cancelled_after_payment(shop, inventory)
        cart_id = await abandoned_cart(shop, conn)
        mine = {first["order_id"], second["order_id"], first["cart_id"], cart_id}

        def ours(message: AbstractIncomingMessage) -> bool:
            # Shipment, return and invoice events name their order only in correlation_id.
            data = json.loads(message.body)["data"]
            ids = {data.get("order_id"), data.get("cart_id"), message.correlation_id}
            return bool(ids & mine)

        async def names() -> set[str]:
            return {str(m.routing_key) for m in events.messages if ours(m)}

        seen = await eventually(names, lambda found: found >= set(ORDER_EVENT_NAMES))

    assert len(ORDER_EVENT_NAMES) == 29
    assert seen == set(ORDER_EVENT_NAMES)
    problems: list[str] = []
    for message in filter(ours, events.messages):
        body = json.loads(message.body)
        name = str(message.routing_key)
        about_an_order = not name.startswith("cart.") or "order_id" in body["data"]
        if about_an_order and message.correlation_id not in mine:
            problems.append(f"{name}: AMQP correlation_id {message.correlation_id!r}")
        if set(body) != ENVELOPE_KEYS:
            problems.append(f"{name}: envelope keys {sorted(body)}")
        if body["event"] != name or body["version"] != "1.0":
            problems.append(f"{name}: event/version {body['event']!r} {body['version']!r}")
        if body["organization_id"] != ORG or not body["timestamp"].endswith("Z"):
            problems.append(f"{name}: organization/timestamp {body['organization_id']!r}")
        if message.message_id != body["id"] or message.app_id != "order_service":
            problems.append(f"{name}: AMQP message_id/app_id {message.message_id!r}")
        problems += [f"{name}: {p}" for p in same_shape(body["data"], example(name)["data"])]
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("name", ORDER_EVENT_NAMES)
def test_seed_example_exists_for(name: str) -> None:
    assert example(name)["event"] == name
