"""Outgoing messages: contract types → `OutgoingMessage` through `messaging.envelopes`."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import msgspec

from contracts.bookworm import BookWormMessage
from contracts.order_events import WarehouseItem, new_order_event
from messaging import envelopes
from messaging.message import OutgoingMessage

SERVICE = "order_service"


def order_event(
    name: str,
    organization_id: str,
    data: msgspec.Struct,
    *,
    at: datetime | None = None,
    order_id: uuid.UUID | None = None,
) -> OutgoingMessage:
    """An `order_events` envelope (SPEC §2.1) for the caller's organization; `order_id` for
    the events whose data does not name their order (it becomes the correlation id)."""
    return envelopes.order_event(
        new_order_event(name, organization_id, data, timestamp=at),
        app_id=SERVICE,
        order_id=None if order_id is None else str(order_id),
    )


def bookworm(message: BookWormMessage) -> OutgoingMessage:
    return envelopes.bookworm(message, app_id=SERVICE)


def warehouse_items(reserved: Iterable[dict[str, Any]]) -> list[WarehouseItem]:
    """The reservation's items as stored (`orders.reserved_items`)."""
    return [
        WarehouseItem(
            variant_id=str(item["variant_id"]),
            quantity=int(item["quantity"]),
            warehouse_id=str(item["warehouse_id"]),
        )
        for item in reserved
    ]
