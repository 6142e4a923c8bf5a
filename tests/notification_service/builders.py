"""Test input: contract messages as the other services publish them, and a publisher."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import aio_pika
import msgspec
from aio_pika.abc import AbstractChannel

from contracts.bookworm import (
    BookWormMessage,
    CancelOrderCommand,
    CompleteOrderCommand,
    PlaceOrderCommand,
    UserCheckedOutIntegrationEvent,
    new_bookworm,
)
from contracts.order_events import (
    CartAbandonedData,
    CartConvertedData,
    OrderConfirmedData,
    OrderCreatedData,
    OrderDeliveredData,
    OrderEvent,
    OrderShippedData,
    ReturnApprovedData,
    ReturnRequestedData,
    ReturnRequestedItem,
    WarehouseItem,
    new_order_event,
)
from messaging import envelopes
from messaging.settings import RuntimeSettings
from messaging.topology import declare
from tests.support import ORG, unique

NOW = datetime(2025, 11, 23, 15, 0, tzinfo=UTC)


def email() -> str:
    return f"{unique('customer-')}@example.com"


def place_order(
    order_id: uuid.UUID, mail: str | None, name: str | None, total: str = "42.50"
) -> PlaceOrderCommand:
    return new_bookworm(
        PlaceOrderCommand,
        basket_id=uuid.uuid4(),
        order_id=order_id,
        email=mail,
        full_name=name,
        total_money=Decimal(total),
    )


def checked_out(
    order_id: uuid.UUID, mail: str | None, name: str | None, *, at: datetime | None = None
) -> UserCheckedOutIntegrationEvent:
    """The order service's checkout event; `at` backdates it (an older message)."""
    event = new_bookworm(
        UserCheckedOutIntegrationEvent,
        order_id=order_id,
        basket_id=uuid.uuid4(),
        email=mail,
        full_name=name,
        total_money=Decimal("42.50"),
    )
    return event if at is None else msgspec.structs.replace(event, creation_date=at)


def complete_order(order_id: uuid.UUID, mail: str, name: str | None) -> CompleteOrderCommand:
    return new_bookworm(
        CompleteOrderCommand,
        order_id=order_id,
        email=mail,
        full_name=name,
        total_money=Decimal("42.50"),
    )


def cancel_order(order_id: uuid.UUID, mail: str, name: str | None) -> CancelOrderCommand:
    return new_bookworm(
        CancelOrderCommand,
        order_id=order_id,
        email=mail,
        full_name=name,
        total_money=Decimal("42.50"),
    )


def created(
    order_id: uuid.UUID | str, number: str = "ORD-2025-0001", total: str = "42.50"
) -> OrderCreatedData:
    return OrderCreatedData(
        order_id=str(order_id),
        order_number=number,
        customer_id="cust_1",
        total_amount=Decimal(total),
        currency="USD",
        items_count=2,
        status="pending",
    )


def confirmed(order_id: uuid.UUID | str, number: str = "ORD-2025-0001") -> OrderConfirmedData:
    return OrderConfirmedData(
        order_id=str(order_id),
        order_number=number,
        reservation_id="res_1",
        confirmed_at=NOW,
        payment_id="pay_1",
        items=[WarehouseItem(variant_id="sku-1", quantity=2, warehouse_id="main")],
    )


def shipped(order_id: uuid.UUID, tracking: str = "1Z999AA10123456784") -> OrderShippedData:
    return OrderShippedData(
        order_id=str(order_id),
        shipment_id="shp_1",
        carrier="UPS",
        tracking_number=tracking,
        shipped_at=NOW,
        estimated_delivery=date(2025, 11, 26),
        shipped_items=[WarehouseItem(variant_id="sku-1", quantity=2, warehouse_id="main")],
    )


def delivered(order_id: uuid.UUID | str) -> OrderDeliveredData:
    return OrderDeliveredData(
        order_id=str(order_id), delivered_at=NOW, signature=None, delivery_photo_url=None
    )


def return_requested(order_id: uuid.UUID, return_id: str) -> ReturnRequestedData:
    return ReturnRequestedData(
        return_id=return_id,
        order_id=str(order_id),
        rma_number="RMA-2025-0007",
        reason="damaged",
        items=[ReturnRequestedItem(order_item_id="oi_1", variant_id="sku-1", quantity=1)],
        requested_at=NOW,
    )


def return_approved(return_id: str) -> ReturnApprovedData:
    return ReturnApprovedData(
        return_id=return_id,
        rma_number="RMA-2025-0007",
        approved_by="manager",
        return_shipping_label_url="https://labels.example.com/rma?id=7&x=<y>",
        refund_amount=Decimal("19.99"),
    )


def cart_abandoned(total: str = "10") -> CartAbandonedData:
    return CartAbandonedData(
        cart_id=str(uuid.uuid4()),
        customer_id="cust_1",
        items_count=1,
        total_value=Decimal(total),
        abandoned_at=NOW,
        last_activity_at=NOW,
    )


def cart_converted(order_id: uuid.UUID | None = None) -> CartConvertedData:
    return CartConvertedData(
        cart_id=str(uuid.uuid4()),
        order_id=str(order_id or uuid.uuid4()),
        converted_at=NOW,
        cart_value=Decimal("10"),
    )


class Bus:
    """Publishes test input to the namespace's exchanges, the way the producers do."""

    def __init__(self, settings: RuntimeSettings, channel: AbstractChannel) -> None:
        self.settings = settings
        self.channel = channel

    async def _publish(self, exchange: str, message: aio_pika.Message, routing_key: str) -> None:
        target = await self.channel.get_exchange(self.settings.topology_prefix + exchange)
        await target.publish(message, routing_key)

    async def event(
        self,
        name: str,
        data: msgspec.Struct,
        *,
        organization_id: str = ORG,
        timestamp: datetime | None = None,
        event_id: uuid.UUID | None = None,
    ) -> OrderEvent[Any]:
        event = new_order_event(name, organization_id, data, timestamp=timestamp, event_id=event_id)
        await self.send_event(event)
        return event

    async def send_event(self, event: OrderEvent[Any]) -> None:
        outgoing = envelopes.order_event(event, app_id="order_service")
        await self._publish(outgoing.exchange, outgoing.to_amqp(), outgoing.routing_key)

    async def command(self, message: BookWormMessage) -> None:
        outgoing = envelopes.bookworm(message, app_id="finance_service")
        await self._publish(outgoing.exchange, outgoing.to_amqp(), outgoing.routing_key)

    async def integration_event(self, message: BookWormMessage) -> None:
        outgoing = envelopes.bookworm(message, app_id="order_service")
        await self._publish(outgoing.exchange, outgoing.to_amqp(), outgoing.routing_key)


@asynccontextmanager
async def bus(settings: RuntimeSettings) -> AsyncIterator[Bus]:
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        # The queues must exist before anything is published, or the input is not routed to
        # them: the service declares them too, but asynchronously after it starts. The
        # service's own queues (`notification_order_consumer.*`) are part of the topology.
        await declare(channel, settings.topology)
        yield Bus(settings, channel)
    finally:
        await connection.close()
