"""The one place that builds the inventory service: runtime, consumers, sweeper, HTTP app."""

from __future__ import annotations

from litestar import Litestar

from contracts.topology import BULK_TRANSACTIONS_QUEUE, TOPOLOGY
from inventory_service.config import Settings
from inventory_service.entrypoints.http import ROUTES
from inventory_service.handlers import (
    BulkTransactionHandler,
    ExpirySweeper,
    OrderEventHandler,
    decode_bulk,
    decode_order,
)
from messaging import service
from messaging.db import load_migrations
from messaging.runtime import ServiceRuntime

SERVICE = "inventory_service"
SCHEMA = "inventory"


def build_runtime(settings: Settings) -> ServiceRuntime:
    runtime = ServiceRuntime(
        service=SERVICE,
        schema=SCHEMA,
        settings=settings.runtime,
        migrations=load_migrations("inventory", "inventory_service"),
        pool_size=max(10, settings.order_workers + 5),
    )
    orders = OrderEventHandler(runtime.outbox)
    runtime.consume(
        TOPOLOGY.queue("inventory_order_consumer"),
        decode=decode_order,
        handle=orders,
        prepare=orders.prepare,
        batch_size=settings.order_batch_size,
        prefetch=max(settings.order_prefetch, settings.order_batch_size),
        workers=settings.order_workers,
    )
    runtime.consume(
        TOPOLOGY.queue(BULK_TRANSACTIONS_QUEUE),
        decode=decode_bulk,
        handle=BulkTransactionHandler(runtime.outbox),
        prefetch=20,
    )

    async def sweep() -> None:
        await ExpirySweeper(runtime.pool, runtime.outbox)()

    runtime.every("inventory-expiry-sweeper", settings.sweep_interval_seconds, sweep)
    return runtime


def build(settings: Settings) -> Litestar:
    return service.create_app(
        runtime=build_runtime(settings),
        api_keys=settings.api_keys,
        title="inventory_service",
        description="Bins, bin items, transactions, stock and reservations (SPEC §2.3, §5, §10).",
        route_handlers=ROUTES,
    )
