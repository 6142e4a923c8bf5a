"""Contract messages → `OutgoingMessage`: exchange, routing key, type and correlation id are
derived here, once, for every format the services publish (SPEC §2.4)."""

from __future__ import annotations

from typing import Any

from contracts.bookworm import BookWormMessage, encode_bookworm, exchange_for
from contracts.cloudevents import CloudEvent, encode_cloud_event
from contracts.inventory import InventoryPayload, encode_inventory
from contracts.order_events import OrderEvent, encode_order_event
from contracts.topology import ECOMM, ORDER_EVENTS
from messaging.message import OutgoingMessage


def order_event(
    event: OrderEvent[Any], *, app_id: str, order_id: str | None = None
) -> OutgoingMessage:
    """An `order_events` event; its routing key is the event name. The correlation id is the
    order the event is about: `order_id` when given (shipment, return and invoice events do not
    carry it in their data), else the data's own `order_id`."""
    order_id = order_id or getattr(event.data, "order_id", None)
    kwargs: dict[str, Any] = {}
    if event.id is not None:
        kwargs["message_id"] = str(event.id)
    if event.timestamp is not None:
        kwargs["timestamp"] = event.timestamp
    return OutgoingMessage(
        exchange=ORDER_EVENTS,
        routing_key=event.event,
        type=event.event,
        app_id=app_id,
        body=encode_order_event(event),
        correlation_id=order_id,
        subject=order_id,
        **kwargs,
    )


def bookworm(message: BookWormMessage, *, app_id: str) -> OutgoingMessage:
    """A saga message, to its own `BookWorm.Contracts:<Name>` fanout exchange."""
    name = type(message).__name__
    order_id = str(message.order_id) if hasattr(message, "order_id") else None  # all have one
    return OutgoingMessage(
        exchange=exchange_for(name),
        routing_key="",
        type=name,
        app_id=app_id,
        body=encode_bookworm(message),
        message_id=str(message.id),
        timestamp=message.creation_date,
        correlation_id=order_id,
        subject=order_id,
    )


def cloud_event(
    event: CloudEvent[Any], *, app_id: str, order_id: str | None = None
) -> OutgoingMessage:
    """An inventory CloudEvent on `ecomm`; `order_id` when the event is about an order."""
    return OutgoingMessage(
        exchange=ECOMM,
        routing_key=event.type,
        type=event.type,
        app_id=app_id,
        body=encode_cloud_event(event),
        message_id=event.id,
        timestamp=event.time,
        correlation_id=order_id,
        subject=event.subject,
    )


def inventory_payload(
    payload: InventoryPayload, *, routing_key: str, app_id: str
) -> OutgoingMessage:
    """A seed-002 internal event (`inventory.bin.created`, …) on `ecomm`."""
    return OutgoingMessage(
        exchange=ECOMM,
        routing_key=routing_key,
        type=routing_key,
        app_id=app_id,
        body=encode_inventory(payload),
    )
