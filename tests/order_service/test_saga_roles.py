"""The order service's roles in the checkout saga: UserCheckedOut at checkout; Basket role on
`basket-place-order`; Ordering role on `basket-checkout-complete` / `basket-checkout-failed`."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from contracts.bookworm import (
    DeleteBasketCompleteCommand,
    DeleteBasketFailedCommand,
    PlaceOrderCommand,
    exchange_for,
    new_bookworm,
)
from messaging.settings import RuntimeSettings
from tests.order_service.conftest import Saga, Shop
from tests.support import Recorder, eventually

COMPLETE = exchange_for("BasketDeletedCompleteIntegrationEvent")
FAILED = exchange_for("BasketDeletedFailedIntegrationEvent")


def place(order: dict[str, Any], *, basket_id: str | None = None) -> PlaceOrderCommand:
    return new_bookworm(
        PlaceOrderCommand,
        basket_id=uuid.UUID(basket_id or order["cart_id"]),
        full_name=order["full_name"],
        email=order["email"],
        order_id=uuid.UUID(order["order_id"]),
        total_money=Decimal(str(order["total_amount"])),
    )


def for_order(order_id: str) -> Any:
    return lambda body: body["orderId"] == order_id


async def test_checkout_publishes_user_checked_out(shop: Shop, namespaced: RuntimeSettings) -> None:
    async with Recorder(namespaced, exchange_for("UserCheckedOutIntegrationEvent"), "") as events:
        order = await shop.order()
        body = await events.wait_for("", for_order(order["order_id"]))
    assert set(body) == {
        "id",
        "creationDate",
        "orderId",
        "basketId",
        "fullName",
        "email",
        "totalMoney",
    }
    assert body["basketId"] == order["cart_id"]
    assert body["fullName"] == "Juan Pérez"
    assert body["email"] == "customer@example.com"
    assert body["totalMoney"] == order["total_amount"] == 125.5


async def test_place_order_converts_the_cart_once_and_answers_complete_again(
    shop: Shop, saga: Saga, namespaced: RuntimeSettings
) -> None:
    async with (
        Recorder(namespaced, "order_events", "cart.converted") as events,
        Recorder(namespaced, COMPLETE, "") as complete,
        Recorder(namespaced, FAILED, "") as failed,
    ):
        order = await shop.order()
        order_id = order["order_id"]
        await saga.send(place(order))
        converted = await events.wait_for(
            "cart.converted", lambda b: b["data"]["order_id"] == order_id
        )
        first = await complete.wait_for("", for_order(order_id))
        # The saga re-sends the command (its timeout): a new message id, the same basket.
        await saga.send(place(order))
        answers = await eventually(
            lambda: _answers(complete, order_id), lambda found: len(found) == 2
        )
        assert (
            len([b for b in events.bodies("cart.converted") if b["data"]["order_id"] == order_id])
            == 1
        )
        assert [b for b in failed.bodies("") if b["orderId"] == order_id] == []
    assert converted["data"]["cart_id"] == order["cart_id"]
    assert converted["data"]["cart_value"] == order["total_amount"]
    assert first["basketId"] == order["cart_id"]
    assert set(first) == {"id", "creationDate", "orderId", "basketId", "totalMoney"}
    assert answers[0]["id"] != answers[1]["id"]
    cart = await shop.get(f"/carts/{order['cart_id']}")
    assert cart["status"] == "converted"


async def _answers(recorder: Recorder, order_id: str) -> list[Any]:
    return [b for b in recorder.bodies("") if b["orderId"] == order_id]


async def test_place_order_for_a_missing_or_foreign_basket_fails(
    shop: Shop, saga: Saga, namespaced: RuntimeSettings
) -> None:
    async with (
        Recorder(namespaced, FAILED, "") as failed,
        Recorder(namespaced, COMPLETE, "") as complete,
    ):
        order = await shop.order()
        other = await shop.order()
        # A basket that does not exist, and a basket that belongs to another order.
        gone = place(order, basket_id=str(uuid.uuid4()))
        foreign = place(order, basket_id=other["cart_id"])
        await saga.send(gone)
        await saga.send(foreign)
        answers = await eventually(
            lambda: _answers(failed, order["order_id"]), lambda found: len(found) == 2
        )
    assert {a["basketId"] for a in answers} == {str(gone.basket_id), other["cart_id"]}
    assert set(answers[0]) == {"id", "creationDate", "orderId", "basketId", "email", "totalMoney"}
    assert [b for b in complete.bodies("") if b["orderId"] == order["order_id"]] == []
    assert (await shop.get(f"/carts/{other['cart_id']}"))["status"] == "checked_out"


async def test_checkout_complete_is_recorded(shop: Shop, saga: Saga) -> None:
    order = await shop.order()
    command = new_bookworm(
        DeleteBasketCompleteCommand,
        order_id=uuid.UUID(order["order_id"]),
        total_money=Decimal("125.50"),
    )
    await saga.send(command)
    recorded = await eventually(
        lambda: shop.get(f"/orders/{order['order_id']}"), lambda o: o["basket_status"] == "deleted"
    )
    assert recorded["status"] == "pending"


async def test_checkout_failed_cancels_the_order(
    shop: Shop, saga: Saga, namespaced: RuntimeSettings
) -> None:
    cancel_exchange = exchange_for("OrderStatusChangedToCancelIntegrationEvent")
    async with (
        Recorder(namespaced, "order_events", "order.cancelled") as events,
        Recorder(namespaced, cancel_exchange, "") as saga_events,
    ):
        order = await shop.order()
        command = new_bookworm(
            DeleteBasketFailedCommand,
            basket_id=uuid.UUID(order["cart_id"]),
            email=order["email"],
            order_id=uuid.UUID(order["order_id"]),
            total_money=Decimal("125.50"),
        )
        await saga.send(command)
        cancelled = await events.wait_for(
            "order.cancelled", lambda b: b["data"]["order_id"] == order["order_id"]
        )
        told = await saga_events.wait_for("", for_order(order["order_id"]))
    assert cancelled["data"]["cancelled_by"] == "checkout_saga"
    assert told["basketId"] == order["cart_id"]
    assert told["fullName"] == "Juan Pérez"
    final = await shop.get(f"/orders/{order['order_id']}")
    assert final["status"] == "cancelled"
    assert final["basket_status"] == "failed"
