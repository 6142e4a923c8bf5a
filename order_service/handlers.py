"""Message handlers: inventory reservations (`order_inventory_consumer`) and the checkout
saga's Basket and Ordering roles. Each runs inside the consumer's transaction (with the inbox
row): load and lock → one use case → rows and outgoing messages on the same connection."""

from __future__ import annotations

import uuid
from typing import Any

from contracts import cloudevents as ce
from contracts.bookworm import (
    BasketDeletedCompleteIntegrationEvent,
    BasketDeletedFailedIntegrationEvent,
    DeleteBasketCompleteCommand,
    DeleteBasketFailedCommand,
    PlaceOrderCommand,
    decode_bookworm,
    new_bookworm,
)
from contracts.order_events import CartConvertedData
from messaging import db
from messaging.logs import get_logger
from messaging.message import Delivery
from order_service import commands
from order_service.adapters import repository as repo
from order_service.adapters.messages import bookworm, order_event
from order_service.commands import Context, utcnow
from order_service.domain import rules
from order_service.domain.states import CART, ORDER, CartStatus, OrderStatus, ReservationStatus

log = get_logger(__name__)


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


# -- order_inventory_consumer -------------------------------------------------------------------


def decode_inventory(delivery: Delivery) -> ce.CloudEvent[Any]:
    return ce.decode_cloud_event(delivery.body, delivery.routing_key or None)


class InventoryHandler:
    """`inventory.reservation.*`: stock meets payment (or cancels the order)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def prepare(self, conn: db.Connection, events: list[ce.CloudEvent[Any]]) -> None:
        """A batch locks its orders up front, in id order: two replicas' batches naming the
        same orders never wait for each other in a circle."""
        ids = {_uuid(getattr(e.data, "order_id", "")) for e in events}
        await repo.lock_orders(conn, sorted(i for i in ids if i is not None))

    async def __call__(
        self, conn: db.Connection, delivery: Delivery, event: ce.CloudEvent[Any]
    ) -> None:
        data = event.data
        order_id = _uuid(getattr(data, "order_id", ""))
        order = None if order_id is None else await repo.get_order(conn, None, order_id, lock=True)
        if order is None:
            # Reservations of orders this service never took (another system on the broker).
            log.info("reservation event for an unknown order", order_id=data.order_id)
            return
        if isinstance(data, ce.ReservationCreatedData):
            await commands.reservation_created(
                conn, self.ctx, order, data.reservation_id, data.items
            )
        elif isinstance(data, ce.ReservationFailedData):
            await commands.reservation_failed(conn, self.ctx, order, data.reason)
        elif isinstance(data, ce.ReservationCommittedData):
            await commands.reservation_changed(
                conn, order, data.reservation_id, ReservationStatus.COMMITTED
            )
        elif isinstance(data, ce.ReservationReleasedData):
            await commands.reservation_changed(
                conn, order, data.reservation_id, ReservationStatus.RELEASED
            )


# -- basket-place-order (Basket role) -----------------------------------------------------------


def decode_place_order(delivery: Delivery) -> PlaceOrderCommand:
    return decode_bookworm(delivery.body, PlaceOrderCommand)


class PlaceOrderHandler:
    """Converts the checked-out cart: `cart.converted` + BasketDeletedComplete, or
    BasketDeletedFailed when the cart is gone or belongs to another order. A redelivered
    command for a cart already converted for this order answers Complete again."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def __call__(
        self, conn: db.Connection, delivery: Delivery, command: PlaceOrderCommand
    ) -> None:
        cart = await repo.get_cart(conn, None, command.basket_id, lock=True)
        if cart is None or cart["order_id"] != command.order_id:
            log.warning(
                "basket cannot be deleted for this order",
                basket_id=str(command.basket_id),
                order_id=str(command.order_id),
                cart_order_id=None if cart is None else str(cart["order_id"]),
            )
            failed = new_bookworm(
                BasketDeletedFailedIntegrationEvent,
                order_id=command.order_id,
                basket_id=command.basket_id,
                email=command.email,
                total_money=command.total_money,
            )
            await self.ctx.publish(conn, bookworm(failed))
            return
        messages = []
        if CartStatus(cart["status"]) is not CartStatus.CONVERTED:
            status = CART.apply(CartStatus(cart["status"]), "convert")
            at = utcnow()
            items = await repo.cart_items(conn, cart["id"])
            value = rules.total(
                rules.Line(i["variant_id"], i["quantity"], i["unit_price"]) for i in items
            )
            await repo.update(conn, "carts", cart["id"], status=status.value, converted_at=at)
            converted = CartConvertedData(
                cart_id=str(cart["id"]),
                order_id=str(command.order_id),
                converted_at=at,
                cart_value=value,
            )
            messages.append(
                order_event("cart.converted", cart["organization_id"], converted, at=at)
            )
        complete = new_bookworm(
            BasketDeletedCompleteIntegrationEvent,
            order_id=command.order_id,
            basket_id=command.basket_id,
            total_money=command.total_money,
        )
        await self.ctx.publish(conn, *messages, bookworm(complete))


# -- basket-checkout-complete / basket-checkout-failed (Ordering role) ---------------------------


def decode_checkout_complete(delivery: Delivery) -> DeleteBasketCompleteCommand:
    return decode_bookworm(delivery.body, DeleteBasketCompleteCommand)


def decode_checkout_failed(delivery: Delivery) -> DeleteBasketFailedCommand:
    return decode_bookworm(delivery.body, DeleteBasketFailedCommand)


class CheckoutCompleteHandler:
    """The saga deleted the basket: recorded on the order."""

    async def __call__(
        self, conn: db.Connection, delivery: Delivery, command: DeleteBasketCompleteCommand
    ) -> None:
        order = await repo.get_order(conn, None, command.order_id, lock=True)
        if order is None:
            log.warning("basket deletion for an unknown order", order_id=str(command.order_id))
            return
        await repo.update(conn, "orders", order["id"], basket_status="deleted")


class CheckoutFailedHandler:
    """The basket could not be deleted: the order is cancelled (if it still can be)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def __call__(
        self, conn: db.Connection, delivery: Delivery, command: DeleteBasketFailedCommand
    ) -> None:
        order = await repo.get_order(conn, None, command.order_id, lock=True)
        if order is None:
            log.warning("failed checkout for an unknown order", order_id=str(command.order_id))
            return
        order = await repo.update(conn, "orders", order["id"], basket_status="failed")
        if ORDER.allows(OrderStatus(order["status"]), "cancel"):
            await commands.cancel(
                conn, self.ctx, order, reason="checkout_failed", by="checkout_saga", at=utcnow()
            )
        else:
            log.warning(
                "failed checkout for an order past cancellation",
                order_id=str(order["id"]),
                status=order["status"],
            )
