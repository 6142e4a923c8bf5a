"""The whole system, each service a process of its own: one order's life observed across
services — stock, saga, mail, analytics — and the cancellation path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import MailSink, System
from tests.support import ADMIN_KEY, auth, eventually, unique


class Shop:
    """HTTP calls of a test against the running system."""

    def __init__(self, system: System, http: httpx.AsyncClient) -> None:
        self.urls = system.urls
        self.http = http

    async def call(
        self, service: str, method: str, path: str, body: Any = None, key: str | None = None
    ) -> Any:
        headers = auth(key) if key else None
        response = await self.http.request(
            method, self.urls[service] + path, json=body, headers=headers
        )
        assert response.status_code < 400, f"{method} {path}: {response.text}"
        return response.json()

    async def stock_of(self, sku: str) -> dict[str, int]:
        stock = await self.call("inventory", "GET", f"/stock/{sku}")
        (bin_,) = stock["bins"]
        return {"onHand": bin_["onHand"], "reserved": bin_["reserved"]}

    async def order_status(self, order_id: str) -> str:
        status: str = (await self.call("order", "GET", f"/orders/{order_id}"))["status"]
        return status

    async def saga(self, order_id: str) -> dict[str, Any]:
        response = await self.http.get(
            f"{self.urls['finance']}/sagas/{order_id}", headers=auth(ADMIN_KEY)
        )
        saga: dict[str, Any] = response.json() if response.status_code == 200 else {}
        return saga

    async def summary(self) -> dict[str, Any]:
        today = datetime.now(UTC).date()
        span = f"from={today - timedelta(days=1)}&to={today + timedelta(days=1)}"
        result: dict[str, Any] = await self.call(
            "notification", "GET", f"/analytics/summary?{span}"
        )
        totals: dict[str, Any] = result["totals"]
        return totals

    async def stocked_checkout(
        self, quantity: int, unit_price: str
    ) -> tuple[str, str, dict[str, Any], str]:
        """A bin with 10 of a new SKU, then a cart of `quantity` checked out: (sku, bin, order,
        customer e-mail)."""
        sku, bin_name, email = unique("sku-"), unique("wh-"), f"{unique('c')}@example.com"
        await self.call("inventory", "POST", "/bins", {"name": bin_name, "type": "Primary"})
        await self.call(
            "inventory",
            "POST",
            f"/bins/{bin_name}/items",
            {"skuId": sku, "atpQty": 10, "lowStockThreshold": 2},
        )
        cart = await self.call("order", "POST", "/carts", {"customer_id": unique("cust-")})
        await self.call(
            "order",
            "POST",
            f"/carts/{cart['cart_id']}/items",
            {"variant_id": sku, "quantity": quantity, "unit_price": float(unit_price)},
        )
        order = await self.call(
            "order",
            "POST",
            f"/carts/{cart['cart_id']}/checkout",
            {"email": email, "full_name": "Ada Lovelace", "preferred_warehouse_id": bin_name},
        )
        return sku, bin_name, order, email

    async def pay(self, order_id: str) -> None:
        payment = await self.call(
            "order",
            "POST",
            f"/orders/{order_id}/payments",
            {"payment_method": "card", "card_last4": "4242"},
        )
        await self.call("order", "POST", f"/payments/{payment['payment_id']}/succeed", {})


@pytest.fixture
async def shop(system: System) -> AsyncIterator[Shop]:
    async with httpx.AsyncClient(headers=auth(), timeout=30) as http:
        yield Shop(system, http)


def mails_to(sink: MailSink, email: str) -> list[str]:
    return [str(m["Subject"]) for m in sink.messages if m["To"] == email]


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
    subjects = await eventually(lambda: _async(mails_to(sink, email)), lambda m: len(m) >= 6)
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
        lambda: _async(mails_to(sink, email)), lambda m: any("cancel" in s.lower() for s in m)
    )
    assert len(subjects) == len(set(subjects))


async def _async(value: Any) -> Any:
    return value
