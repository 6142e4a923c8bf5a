"""Payment and stock meet: `order.confirmed` only once both happened, in either order; a failed
reservation cancels the order (and refunds it when paid); payment failures count down."""

from __future__ import annotations

from typing import Any

from contracts.bookworm import exchange_for
from messaging.settings import RuntimeSettings
from tests.order_service.conftest import Inventory, Shop
from tests.support import Recorder, auth, eventually


def about(order_id: str) -> Any:
    return lambda body: body["data"]["order_id"] == order_id


async def test_payment_first_then_reservation_confirms(
    shop: Shop, inventory: Inventory, namespaced: RuntimeSettings
) -> None:
    async with Recorder(namespaced, "order_events", "order.confirmed", "invoice.created") as events:
        order = await shop.order()
        order_id = order["order_id"]
        payment = await shop.pay(order)
        await events.wait_for("invoice.created", about(order_id))
        assert await shop.order_status(order_id) == "pending"
        assert [b for b in events.bodies("order.confirmed") if about(order_id)(b)] == []

        reservation_id = await inventory.reserved(order, warehouse="wh_east")
        confirmed = await events.wait_for("order.confirmed", about(order_id))
    assert confirmed["data"]["reservation_id"] == reservation_id
    assert confirmed["data"]["payment_id"] == payment["payment_id"]
    assert {i["warehouse_id"] for i in confirmed["data"]["items"]} == {"wh_east"}
    assert sorted((i["variant_id"], i["quantity"]) for i in confirmed["data"]["items"]) == sorted(
        (i["variant_id"], i["quantity"]) for i in order["items"]
    )
    assert (await shop.get(f"/orders/{order_id}"))["status"] == "confirmed"


async def test_reservation_first_then_payment_confirms(
    shop: Shop, inventory: Inventory, namespaced: RuntimeSettings
) -> None:
    order = await shop.order()
    order_id = order["order_id"]
    reservation_id = await inventory.reserved(order)
    await eventually(
        lambda: shop.get(f"/orders/{order_id}"), lambda o: o["reservation_id"] == reservation_id
    )
    assert await shop.order_status(order_id) == "pending"
    async with Recorder(namespaced, "order_events", "order.confirmed") as events:
        await shop.pay(order)
        # The payment's own transaction confirms: no waiting on anything else.
        assert await shop.order_status(order_id) == "confirmed"
        confirmed = await events.wait_for("order.confirmed", about(order_id))
    assert confirmed["data"]["reservation_id"] == reservation_id
    assert len([b for b in events.bodies("order.confirmed") if about(order_id)(b)]) == 1


async def test_failed_reservation_cancels_and_refunds_a_paid_order(
    shop: Shop, inventory: Inventory, namespaced: RuntimeSettings
) -> None:
    cancel_exchange = exchange_for("OrderStatusChangedToCancelIntegrationEvent")
    async with (
        Recorder(namespaced, "order_events", "order.cancelled", "payment.refunded") as events,
        Recorder(namespaced, cancel_exchange, "") as saga_events,
    ):
        order = await shop.order()
        order_id = order["order_id"]
        payment = await shop.pay(order)
        await inventory.failed(order)
        cancelled = await events.wait_for("order.cancelled", about(order_id))
        refunded = await events.wait_for("payment.refunded", about(order_id))
        await saga_events.wait_for("", lambda b: b["orderId"] == order_id)
    assert cancelled["data"]["refund_required"] is True
    assert cancelled["data"]["stock_to_release"] == []
    assert cancelled["data"]["cancelled_by"] == "inventory_service"
    assert refunded["data"]["payment_id"] == payment["payment_id"]
    assert refunded["data"]["refund_amount"] == order["total_amount"]
    final = await shop.get(f"/orders/{order_id}")
    assert final["status"] == "cancelled"
    assert final["refunded_amount"] == final["paid_amount"]


async def test_failed_reservation_of_an_unpaid_order_cancels_without_refund(
    shop: Shop, inventory: Inventory, namespaced: RuntimeSettings
) -> None:
    async with Recorder(
        namespaced, "order_events", "order.cancelled", "payment.refunded"
    ) as events:
        order = await shop.order()
        await inventory.failed(order)
        cancelled = await events.wait_for("order.cancelled", about(order["order_id"]))
        assert cancelled["data"]["refund_required"] is False
        assert cancelled["data"]["reservation_id"] is None
    assert [b for b in events.bodies("payment.refunded") if about(order["order_id"])(b)] == []


async def test_three_failed_payments_cancel_the_order(
    shop: Shop, namespaced: RuntimeSettings
) -> None:
    async with Recorder(namespaced, "order_events", "payment.failed", "order.cancelled") as events:
        order = await shop.order()
        order_id = order["order_id"]
        for _ in range(3):
            payment = await shop.post(
                f"/orders/{order_id}/payments", {"payment_method": "stripe"}, 201
            )
            await shop.post(
                f"/payments/{payment['payment_id']}/fail",
                {"error_code": "card_declined", "error_message": "declined"},
            )
        failures = await eventually(
            lambda: _bodies(events, "payment.failed", order_id), lambda found: len(found) == 3
        )
        remaining = [b["data"]["retries_remaining"] for b in failures]
        cancelled = await events.wait_for("order.cancelled", about(order_id))
    assert remaining == [2, 1, 0]
    assert cancelled["data"]["cancellation_reason"] == "payment_failed"
    assert cancelled["data"]["refund_required"] is False
    assert await shop.order_status(order_id) == "cancelled"
    again = await shop.client.post(
        f"/orders/{order_id}/payments", json={"payment_method": "stripe"}, headers=auth()
    )
    assert again.status_code == 409


async def _bodies(events: Recorder, key: str, order_id: str) -> list[Any]:
    return [b for b in events.bodies(key) if b["data"]["order_id"] == order_id]
