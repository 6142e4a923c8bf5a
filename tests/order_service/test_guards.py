"""Every state change is guarded: an illegal one answers 409 problem details and writes (so
publishes) nothing."""

from __future__ import annotations

from typing import Any

from tests.order_service.conftest import Inventory, Shop
from tests.support import auth


async def refused(shop: Shop, order_id: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST `path`: a 409 problem, and not one message more for the order."""
    before = await shop.outbox_count(order_id)
    response = await shop.client.post(path, json=body, headers=auth())
    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["status"] == 409
    assert problem["title"] == "Conflict"
    assert problem["detail"]
    assert await shop.outbox_count(order_id) == before
    return problem


SHIPMENT = {"carrier": "UPS", "service": "Ground", "shipping_cost": 9.5}
CANCEL = {"reason": "customer_request", "cancelled_by": "user_1"}


async def returned_order(shop: Shop, inventory: Inventory) -> tuple[dict[str, Any], dict[str, Any]]:
    """A delivered order, and a return requested for one unit of its first line."""
    order = await confirmed_order(shop, inventory)
    order_id = order["order_id"]
    shipment = await shop.post(f"/orders/{order_id}/shipments", SHIPMENT, 201)
    ship = f"/shipments/{shipment['shipment_id']}"
    await shop.post(f"{ship}/label", {"carrier_cost": 5})
    await shop.post(f"{ship}/dispatch", {})
    await shop.post(f"{ship}/deliver", {"recipient": "A"})
    item = order["items"][0]
    body = {"reason": "x", "items": [{"order_item_id": item["order_item_id"], "quantity": 1}]}
    return order, await shop.post(f"/orders/{order_id}/returns", body, 201)


async def confirmed_order(shop: Shop, inventory: Inventory) -> dict[str, Any]:
    order = await shop.order()
    await inventory.reserved(order)
    await shop.pay(order)
    return await shop.wait_status(order["order_id"], "confirmed")


async def test_ship_before_confirmation_is_a_conflict(shop: Shop) -> None:
    order = await shop.order()
    problem = await refused(
        shop, order["order_id"], f"/orders/{order['order_id']}/shipments", SHIPMENT
    )
    assert "pending" in problem["detail"]


async def test_pay_twice_is_a_conflict(shop: Shop) -> None:
    order = await shop.order()
    payment = await shop.pay(order)
    order_id = order["order_id"]
    await refused(shop, order_id, f"/orders/{order_id}/payments", {"payment_method": "stripe"})
    await refused(shop, order_id, f"/payments/{payment['payment_id']}/succeed", {})
    await refused(
        shop,
        order_id,
        f"/payments/{payment['payment_id']}/fail",
        {"error_code": "x", "error_message": "y"},
    )


async def test_a_second_pending_payment_is_a_conflict(shop: Shop) -> None:
    order = await shop.order()
    order_id = order["order_id"]
    await shop.post(f"/orders/{order_id}/payments", {"payment_method": "stripe"}, 201)
    await refused(shop, order_id, f"/orders/{order_id}/payments", {"payment_method": "stripe"})


async def test_pay_a_cancelled_order_is_a_conflict(shop: Shop) -> None:
    order = await shop.order()
    order_id = order["order_id"]
    pending = await shop.post(f"/orders/{order_id}/payments", {"payment_method": "stripe"}, 201)
    await shop.post(f"/orders/{order_id}/cancel", CANCEL)
    await refused(shop, order_id, f"/orders/{order_id}/payments", {"payment_method": "stripe"})
    await refused(shop, order_id, f"/payments/{pending['payment_id']}/succeed", {})
    await refused(shop, order_id, f"/orders/{order_id}/cancel", CANCEL)


async def test_cancel_after_shipment_and_return_before_delivery_are_conflicts(
    shop: Shop, inventory: Inventory
) -> None:
    order = await confirmed_order(shop, inventory)
    order_id = order["order_id"]
    item = order["items"][0]
    return_body = {
        "reason": "x",
        "items": [{"order_item_id": item["order_item_id"], "quantity": 1}],
    }
    await refused(shop, order_id, f"/orders/{order_id}/returns", return_body)
    shipment = await shop.post(f"/orders/{order_id}/shipments", SHIPMENT, 201)
    ship = f"/shipments/{shipment['shipment_id']}"
    await refused(shop, order_id, f"{ship}/dispatch", {})  # no label yet
    await refused(shop, order_id, f"{ship}/deliver", {"recipient": "A"})
    await shop.post(f"{ship}/label", {"carrier_cost": 5})
    await shop.post(f"{ship}/dispatch", {})
    await refused(shop, order_id, f"/orders/{order_id}/cancel", CANCEL)
    await refused(shop, order_id, f"/orders/{order_id}/returns", return_body)
    await refused(shop, order_id, f"/orders/{order_id}/shipments", SHIPMENT)


async def test_refund_more_than_paid_is_a_conflict(shop: Shop, inventory: Inventory) -> None:
    order, ret = await returned_order(shop, inventory)
    order_id, item = order["order_id"], order["items"][0]
    too_much = {"approved_by": "m", "refund_amount": order["total_amount"] + 0.01}
    problem = await refused(shop, order_id, f"/returns/{ret['return_id']}/approve", too_much)
    assert problem["field"] == "refund_amount"
    # More items than were ordered cannot be returned either.
    extra = {"reason": "x", "items": [{"order_item_id": item["order_item_id"], "quantity": 99}]}
    await refused(shop, order_id, f"/orders/{order_id}/returns", extra)
    # Refunding before the goods came back is out of order.
    await shop.post(
        f"/returns/{ret['return_id']}/approve", {"approved_by": "m", "refund_amount": 1}
    )
    await refused(shop, order_id, f"/returns/{ret['return_id']}/refund", {"refund_method": "card"})


async def test_fulfillment_is_guarded(shop: Shop, inventory: Inventory) -> None:
    pending = await shop.order()
    start = {"warehouse_id": "wh_101", "assigned_to": "p"}
    await refused(
        shop, pending["order_id"], f"/orders/{pending['order_id']}/fulfillment/start", start
    )
    order = await confirmed_order(shop, inventory)
    order_id = order["order_id"]
    pack = {"package_count": 1, "total_weight": 1.5, "packed_by": "p"}
    await refused(shop, order_id, f"/orders/{order_id}/fulfillment/pack", pack)
    await shop.post(f"/orders/{order_id}/fulfillment/start", start)
    item = order["items"][0]
    over = {
        "order_item_id": item["order_item_id"],
        "quantity_picked": item["quantity"] + 1,
        "picked_by": "p",
    }
    await refused(shop, order_id, f"/orders/{order_id}/fulfillment/picks", over)
    await refused(shop, order_id, f"/orders/{order_id}/fulfillment/pack", pack)  # nothing picked


async def test_no_label_for_a_cancelled_order(shop: Shop, inventory: Inventory) -> None:
    order = await confirmed_order(shop, inventory)
    order_id = order["order_id"]
    shipment = await shop.post(f"/orders/{order_id}/shipments", SHIPMENT, 201)
    await shop.post(f"/orders/{order_id}/cancel", CANCEL)
    problem = await refused(
        shop, order_id, f"/shipments/{shipment['shipment_id']}/label", {"carrier_cost": 5}
    )
    assert "cancelled" in problem["detail"]


async def test_only_what_the_return_authorizes_can_be_received(
    shop: Shop, inventory: Inventory
) -> None:
    order, ret = await returned_order(shop, inventory)
    order_id, item = order["order_id"], order["items"][0]
    receive = f"/returns/{ret['return_id']}/receive"
    await shop.post(
        f"/returns/{ret['return_id']}/approve", {"approved_by": "m", "refund_amount": 1}
    )

    def returned(variant_id: str, quantity: int) -> dict[str, Any]:
        line = {"variant_id": variant_id, "quantity": quantity, "condition": "good"}
        return {"warehouse_id": "wh_101", "returned_items": [{**line, "return_reason": "x"}]}

    for wrong in (returned("var_never_ordered", 1), returned(item["variant_id"], 2)):
        problem = await refused(shop, order_id, receive, wrong)
        assert problem["field"] == "returned_items"
    received = await shop.post(receive, returned(item["variant_id"], 1))
    assert received["status"] == "received"
