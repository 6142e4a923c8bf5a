"""Plugging the read model into a runtime: its migrations, its consumer, its controller."""

from __future__ import annotations

from typing import Any

from contracts.order_events import decode_order_event
from contracts.topology import TOPOLOGY
from messaging.db import Migration, load_migrations
from messaging.message import Delivery
from messaging.runtime import ServiceRuntime
from notification_service.analytics.handlers import on_order_event
from notification_service.analytics.http import AnalyticsController

QUEUE = TOPOLOGY.queue("analytics_order_consumer")


def migrations() -> list[Migration]:
    return load_migrations("analytics", "notification_service.analytics")


def _decode(delivery: Delivery) -> Any:
    return decode_order_event(delivery.body, delivery.routing_key)


def install(runtime: ServiceRuntime) -> list[Any]:
    """Consume `analytics_order_consumer` on `runtime`; returns the route handlers to serve."""
    runtime.consume(QUEUE, decode=_decode, handle=on_order_event, batch_size=20, prefetch=100)
    return [AnalyticsController]
