"""`make demo`: one scripted checkout against the running system, printing the event trail.

It binds a queue of its own to every exchange of the system, then drives a checkout over HTTP
(stock in a bin, cart, checkout, payment, fulfilment, shipment, delivery) and prints each event
as it flows: exchange, routing key, a short payload. It ends with the mail that was sent.

    python scripts/demo.py            # against `make run` on this machine
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from typing import Any

import aio_pika
import httpx
from aio_pika.abc import AbstractIncomingMessage

from messaging.settings import RuntimeSettings

BASE = {
    "order": os.environ.get("ORDER_URL", "http://localhost:8000"),
    "inventory": os.environ.get("INVENTORY_URL", "http://localhost:8001"),
    "notification": os.environ.get("NOTIFICATION_URL", "http://localhost:8003"),
}
SHOWN = (
    "order_id",
    "status",
    "reservation_id",
    "payment_id",
    "amount",
    "total_amount",
    "invoice_number",
    "tracking_number",
    "quantity",
    "reason",
    "email",
    "orderId",
    "totalMoney",
    "variant_id",
    "warehouse_id",
)


def api_key() -> str:
    spec = os.environ.get("COMMERCE_API_KEYS", "org_demo=demo-key")
    return spec.split(",")[0].partition("=")[2]


class Trail:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix  # a COMMERCE_NAMESPACE's, not worth showing
        self.seen: list[tuple[str, str, dict[str, Any]]] = []
        self.started = time.monotonic()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            body = json.loads(message.body)
        except ValueError:
            body = {}
        key = message.routing_key or message.type or ""
        exchange = (message.exchange or "").removeprefix(self.prefix)
        self.seen.append((exchange, key or (message.type or ""), body))
        data = body.get("data", body)
        short = {k: v for k, v in (data.items() if isinstance(data, dict) else []) if k in SHOWN}
        print(
            f"  {time.monotonic() - self.started:6.2f}s  {exchange:<52} {key or '-':<32}"
            f" {json.dumps(short, default=str)[:110]}"
        )

    async def wait_for(self, name: str, within: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for exchange, key, body in self.seen:
                if key == name or exchange.endswith(name):
                    return body
            await asyncio.sleep(0.05)
        raise SystemExit(f"demo: {name} did not arrive within {within}s — is `make run` up?")


async def call(client: httpx.AsyncClient, method: str, url: str, body: Any = None) -> Any:
    response = await client.request(method, url, json=body)
    if response.status_code >= 400:
        raise SystemExit(f"demo: {method} {url} → {response.status_code} {response.text}")
    return response.json()


async def main() -> None:
    settings = RuntimeSettings.from_env()
    connection = await aio_pika.connect(settings.amqp_url)
    channel = await connection.channel()
    trail = Trail(settings.topology_prefix)
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    for exchange in settings.topology.exchanges:
        if not exchange.name.endswith(".unrouted"):
            await queue.bind(exchange.name, "#" if exchange.type == "topic" else "")
    await queue.consume(trail.on_message, no_ack=True)

    headers = {"Authorization": f"Bearer {api_key()}"}
    sku, bin_name = f"demo-sku-{uuid.uuid4().hex[:6]}", "demo-warehouse"
    print("event trail (time, exchange, routing key / message, payload):")
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:
        inventory, order = BASE["inventory"], BASE["order"]
        response = await client.post(
            f"{inventory}/bins",
            json={
                "name": bin_name,
                "description": "Demo warehouse",
                "status": 1,
                "channel": "Web",
                "type": "Primary",
                "leafBin": True,
                "properties": [],
            },
        )
        if response.status_code not in (200, 201, 409):
            raise SystemExit(f"demo: cannot create a bin: {response.status_code} {response.text}")
        await call(
            client,
            "POST",
            f"{inventory}/bins/{bin_name}/items",
            {
                "skuId": sku,
                "atpQty": 10,
                "backOrderedQty": 0,
                "preOrderedQty": 0,
                "lowStockThreshold": 8,
                "outOfStockThreshold": 0,
            },
        )
        cart = await call(client, "POST", f"{order}/carts", {"customer_id": "cust_demo"})
        cart_id = cart["cart_id"]
        await call(
            client,
            "POST",
            f"{order}/carts/{cart_id}/items",
            {"variant_id": sku, "quantity": 3, "unit_price": 12.5},
        )
        placed = await call(
            client,
            "POST",
            f"{order}/carts/{cart_id}/checkout",
            {
                "email": "ada@example.com",
                "full_name": "Ada Lovelace",
                "preferred_warehouse_id": bin_name,
            },
        )
        order_id = placed["order_id"]
        await trail.wait_for("inventory.reservation.created")
        payment = await call(
            client,
            "POST",
            f"{order}/orders/{order_id}/payments",
            {"payment_method": "card", "card_last4": "4242"},
        )
        await call(client, "POST", f"{order}/payments/{payment['payment_id']}/succeed", {})
        await trail.wait_for("order.confirmed")
        await call(
            client,
            "POST",
            f"{order}/orders/{order_id}/fulfillment/start",
            {"warehouse_id": bin_name, "assigned_to": "picker_1"},
        )
        for item in placed["items"]:
            await call(
                client,
                "POST",
                f"{order}/orders/{order_id}/fulfillment/picks",
                {
                    "order_item_id": item["order_item_id"],
                    "quantity_picked": item["quantity"],
                    "picked_by": "picker_1",
                },
            )
        await call(
            client,
            "POST",
            f"{order}/orders/{order_id}/fulfillment/pack",
            {"package_count": 1, "total_weight": 1.2, "packed_by": "packer_1"},
        )
        shipment = await call(
            client,
            "POST",
            f"{order}/orders/{order_id}/shipments",
            {"carrier": "FedEx", "service": "Ground", "shipping_cost": 9.5},
        )
        ship = f"{order}/shipments/{shipment['shipment_id']}"
        await call(
            client, "POST", f"{ship}/label", {"tracking_number": "DEMO123", "carrier_cost": 7.25}
        )
        await call(client, "POST", f"{ship}/dispatch", {})
        await call(
            client,
            "POST",
            f"{ship}/tracking",
            {"current_location": "Memphis, TN", "status_description": "In transit"},
        )
        await call(client, "POST", f"{ship}/deliver", {"recipient": "Ada Lovelace"})
        await trail.wait_for("CompleteOrderCommand")
        await trail.wait_for("inventory.stock.deducted")
        print("\nmail for the order:")
        deadline = time.monotonic() + 30
        while True:
            listed = await call(
                client, "GET", f"{BASE['notification']}/notifications?order_id={order_id}"
            )
            mails: list[dict[str, Any]] = listed["notifications"]
            sent = [m for m in mails if m.get("status") == "sent"]
            if len(sent) >= 2 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        for mail in mails:
            print(f"  [{mail.get('status')}] to {mail.get('recipient')}: {mail.get('subject')}")
    await connection.close()
    print(f"\norder {order_id}: {len(trail.seen)} messages seen")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except (OSError, httpx.ConnectError) as exc:
        sys.exit(f"demo: the system is not reachable ({exc}); start it with `make run`")
