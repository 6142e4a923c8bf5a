"""The `analytics_order_consumer` handler: load the order's facts → one domain call → write."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from contracts.order_events import (
    CartAbandonedData,
    CartConvertedData,
    OrderConfirmedData,
    OrderCreatedData,
    OrderEvent,
)
from messaging import db
from messaging.errors import PermanentError
from messaging.message import Delivery
from notification_service.analytics import domain, repository


async def on_order_event(conn: db.Connection, delivery: Delivery, event: OrderEvent[Any]) -> None:
    organization_id = event.organization_id
    if not organization_id:
        raise PermanentError(f"{event.event} without organization_id cannot be attributed")
    day = domain.event_day(event, received_at=datetime.now(UTC))
    data = event.data
    if isinstance(data, CartAbandonedData | CartConvertedData):
        await repository.add(conn, organization_id, day, domain.cart_counts(data))
        return
    if isinstance(data, OrderCreatedData):
        facts = await repository.lock_order(conn, data.order_id, organization_id)
        change = domain.order_created(facts, day, data.total_amount)
    elif isinstance(data, OrderConfirmedData):
        facts = await repository.lock_order(conn, data.order_id, organization_id)
        change = domain.order_confirmed(facts, day)
    else:
        raise PermanentError(f"analytics does not count {event.event!r}")
    await repository.save_order(conn, data.order_id, change.facts)
    for when, counts in change.increments:
        await repository.add(conn, organization_id, when, counts)
