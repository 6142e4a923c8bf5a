"""The one place that builds the order service: runtime, consumers, sweeper, HTTP app."""

from __future__ import annotations

from litestar import Litestar

from contracts.topology import TOPOLOGY
from messaging import service
from messaging.db import load_migrations
from messaging.runtime import ServiceRuntime
from order_service.adapters.messages import SERVICE
from order_service.commands import Context
from order_service.config import Settings
from order_service.entrypoints.http import ROUTES
from order_service.handlers import (
    CheckoutCompleteHandler,
    CheckoutFailedHandler,
    InventoryHandler,
    PlaceOrderHandler,
    decode_checkout_complete,
    decode_checkout_failed,
    decode_inventory,
    decode_place_order,
)
from order_service.sweeper import CartAbandonmentSweeper

SCHEMA = "orders"


def build_runtime(settings: Settings) -> tuple[ServiceRuntime, Context]:
    runtime = ServiceRuntime(
        service=SERVICE,
        schema=SCHEMA,
        settings=settings.runtime,
        migrations=load_migrations("orders", "order_service"),
        pool_size=settings.pool_size,
    )
    ctx = Context(outbox=runtime.outbox, settings=settings)
    reservations = InventoryHandler(ctx)
    runtime.consume(
        TOPOLOGY.queue("order_inventory_consumer"),
        decode=decode_inventory,
        handle=reservations,
        prepare=reservations.prepare,
        # One worker: the events of one order follow each other causally and are handled in
        # the order they come; batches amortise the commit.
        prefetch=200,
        batch_size=50,
    )
    runtime.consume(
        TOPOLOGY.queue("basket-place-order"),
        decode=decode_place_order,
        handle=PlaceOrderHandler(ctx),
        # Commands of different orders touch different carts (each locked by its handler).
        prefetch=100,
        workers=4,
    )
    runtime.consume(
        TOPOLOGY.queue("basket-checkout-complete"),
        decode=decode_checkout_complete,
        handle=CheckoutCompleteHandler(),
    )
    runtime.consume(
        TOPOLOGY.queue("basket-checkout-failed"),
        decode=decode_checkout_failed,
        handle=CheckoutFailedHandler(ctx),
    )
    sweeper = CartAbandonmentSweeper(lambda: runtime.pool, ctx)
    runtime.every("cart-abandonment", settings.cart_sweep_interval_seconds, sweeper)
    return runtime, ctx


def build(settings: Settings) -> Litestar:
    runtime, ctx = build_runtime(settings)
    app = service.create_app(
        runtime=runtime,
        api_keys=settings.api_keys,
        title="order_service",
        description="Carts, checkout, orders, payments, fulfillment, shipments, returns and "
        "invoices (SPEC §4, §10); the Basket and Ordering roles of the checkout saga.",
        route_handlers=ROUTES,
    )
    app.state.order_context = ctx
    return app
