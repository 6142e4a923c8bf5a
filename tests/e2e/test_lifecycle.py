"""The whole system, each service a process of its own: one order's life observed across
services — stock, saga, mail, analytics — and the cancellation path."""

from __future__ import annotations

from decimal import Decimal

from tests.e2e.conftest import MailSink, Shop, mails_to, now
from tests.support import eventually


async def test_an_order_lives_its_whole_life_across_the_services(
    shop: Shop, mail: tuple[MailSink, int]
) -> None:
    sink, _ = mail
    before = await shop.summary()
    sku, bin_name, order, email = await shop.stocked_checkout(3, "12.50")
    order_id = order["order_id"]

    # inventory reserved the stock on order.placed; the saga placed the order
    await eventually(lambda: shop.stock_of(sku), lambda s: s == {"onHand": 10, "reserved": 3})
    await eventually(lambda: shop.saga(order_id), lambda s: s.get("state") == "Placed")

    await shop.pay(order_id)
    await eventually(lambda: shop.order_status(order_id), lambda s: s == "confirmed")

    await shop.call(
        "order",
        "POST",
        f"/orders/{order_id}/fulfillment/start",
        {"warehouse_id": bin_name, "assigned_to": "picker"},
    )
    for item in order["items"]:
        await shop.call(
            "order",
            "POST",
            f"/orders/{order_id}/fulfillment/picks",
            {
                "order_item_id": item["order_item_id"],
                "quantity_picked": item["quantity"],
                "picked_by": "picker",
            },
        )
    await shop.call(
        "order",
        "POST",
        f"/orders/{order_id}/fulfillment/pack",
        {"package_count": 1, "total_weight": 1.5, "packed_by": "packer"},
    )
    shipment = await shop.call(
        "order",
        "POST",
        f"/orders/{order_id}/shipments",
        {"carrier": "FedEx", "service": "Ground", "shipping_cost": 9.5},
    )
    ship = f"/shipments/{shipment['shipment_id']}"
    await shop.call("order", "POST", f"{ship}/label", {"tracking_number": "T1", "carrier_cost": 7})
    await shop.call("order", "POST", f"{ship}/dispatch", {})
    await shop.call(
        "order",
        "POST",
        f"{ship}/tracking",
        {"current_location": "Memphis, TN", "status_description": "In transit"},
    )
    await shop.call("order", "POST", f"{ship}/deliver", {"recipient": "Ada Lovelace"})

    # shipped stock left the warehouse; the saga completed
    await eventually(lambda: shop.stock_of(sku), lambda s: s == {"onHand": 7, "reserved": 0})
    saga = await eventually(lambda: shop.saga(order_id), lambda s: s.get("state") == "Completed")
    assert [t["to_state"] for t in saga["transitions"]][-1] == "Completed"

    # a return of one good item comes back into stock
    returned = await shop.call(
        "order",
        "POST",
        f"/orders/{order_id}/returns",
        {
            "reason": "wrong_size",
            "items": [{"order_item_id": order["items"][0]["order_item_id"], "quantity": 1}],
        },
    )
    ret = f"/returns/{returned['return_id']}"
    await shop.call(
        "order", "POST", f"{ret}/approve", {"approved_by": "manager", "refund_amount": 12.5}
    )
    await shop.call(
        "order",
        "POST",
        f"{ret}/receive",
        {
            "warehouse_id": bin_name,
            "returned_items": [
                {
                    "variant_id": sku,
                    "quantity": 1,
                    "condition": "good",
                    "return_reason": "wrong_size",
                }
            ],
        },
    )
    await shop.call("order", "POST", f"{ret}/refund", {"refund_method": "original_payment"})
    await eventually(lambda: shop.stock_of(sku), lambda s: s == {"onHand": 8, "reserved": 0})

    # mail went out through a real SMTP server, to the customer, for each step
    subjects = await eventually(lambda: now(mails_to(sink, email)), lambda m: len(m) >= 6)
    assert len(subjects) == len(set(subjects))  # nothing sent twice

    # the analytics read model counted the order, its revenue and the converted cart
    after = await eventually(
        shop.summary, lambda t: t["orders_confirmed"] >= before["orders_confirmed"] + 1
    )
    assert after["orders_created"] >= before["orders_created"] + 1
    assert after["carts_converted"] >= before["carts_converted"] + 1
    assert Decimal(str(after["confirmed_revenue"])) >= (
        Decimal(str(before["confirmed_revenue"])) + Decimal("37.5")
    )


async def test_a_cancelled_order_releases_its_stock_and_ends_the_saga(
    shop: Shop, mail: tuple[MailSink, int]
) -> None:
    sink, _ = mail
    sku, _, order, email = await shop.stocked_checkout(4, "5.00")
    order_id = order["order_id"]
    await eventually(lambda: shop.stock_of(sku), lambda s: s == {"onHand": 10, "reserved": 4})
    await shop.pay(order_id)
    await eventually(lambda: shop.order_status(order_id), lambda s: s == "confirmed")

    await shop.call(
        "order",
        "POST",
        f"/orders/{order_id}/cancel",
        {"reason": "customer_request", "cancelled_by": "user_1"},
    )

    await eventually(lambda: shop.stock_of(sku), lambda s: s == {"onHand": 10, "reserved": 0})
    await eventually(lambda: shop.saga(order_id), lambda s: s.get("state") == "Cancelled")
    subjects = await eventually(
        lambda: now(mails_to(sink, email)), lambda m: any("cancel" in s.lower() for s in m)
    )
    assert len(subjects) == len(set(subjects))
