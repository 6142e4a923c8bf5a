"""Use cases: each loads (and locks) what it changes, asks the domain, writes the rows and the
outgoing messages on the caller's connection — one transaction, opened by the HTTP edge
(`messaging.web.command`) or by the consumer. Shared by routes and message handlers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from contracts import order_events as ev
from contracts.bookworm import (
    OrderStatusChangedToCancelIntegrationEvent,
    OrderStatusChangedToCompleteIntegrationEvent,
    UserCheckedOutIntegrationEvent,
    new_bookworm,
)
from messaging import db
from messaging.logs import get_logger
from messaging.message import OutgoingMessage
from messaging.outbox import Outbox
from messaging.web import InvalidInput, NotFound
from order_service import schemas as s
from order_service.adapters import repository as repo
from order_service.adapters import views
from order_service.adapters.messages import bookworm, order_event, warehouse_items
from order_service.config import Settings
from order_service.domain import rules
from order_service.domain.errors import RuleViolation
from order_service.domain.states import (
    CART,
    ORDER,
    PAYMENT,
    RETURN,
    SHIPMENT,
    CartStatus,
    OrderStatus,
    PaymentStatus,
    ReservationStatus,
    ReturnStatus,
    ShipmentStatus,
)

Record = asyncpg.Record
log = get_logger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Context:
    outbox: Outbox
    settings: Settings

    async def publish(self, conn: db.Connection, *messages: OutgoingMessage) -> None:
        await self.outbox.add(conn, *messages)

    def pdf_url(self, invoice_id: uuid.UUID) -> str:
        return f"{self.settings.public_url}/invoices/{invoice_id}.pdf"


def _found(row: Record | None, what: str, ident: uuid.UUID) -> Record:
    if row is None:
        raise NotFound(f"{what} {ident} not found")
    return row


def _address(address: s.AddressIn | None) -> dict[str, Any] | None:
    """As stored (jsonb) and shown: every field, absent ones as null."""
    return None if address is None else msgspec.structs.asdict(address)


# -- carts -------------------------------------------------------------------------------------


async def create_cart(conn: db.Connection, ctx: Context, org: str, data: s.CartIn) -> Any:
    at = utcnow()
    row = await repo.insert_cart(conn, uuid.uuid4(), org, data.customer_id, data.session_id, at)
    created = ev.CartCreatedData(
        cart_id=str(row["id"]),
        customer_id=data.customer_id,
        session_id=data.session_id,
        organization_id=org,
    )
    await ctx.publish(conn, order_event("cart.created", org, created, at=at))
    return views.raw(views.cart(row, []))


async def add_cart_item(
    conn: db.Connection, ctx: Context, org: str, cart_id: uuid.UUID, data: s.CartItemIn
) -> Any:
    cart = _found(await repo.get_cart(conn, org, cart_id, lock=True), "cart", cart_id)
    status = CART.apply(CartStatus(cart["status"]), "add_item")
    at = utcnow()
    price = rules.money(data.unit_price)
    await repo.add_cart_item(conn, cart_id, data.variant_id, data.quantity, price, at)
    cart = await repo.update(conn, "carts", cart_id, status=status.value, last_activity_at=at)
    added = ev.CartItemAddedData(
        cart_id=str(cart_id), variant_id=data.variant_id, quantity=data.quantity, unit_price=price
    )
    await ctx.publish(conn, order_event("cart.item_added", org, added, at=at))
    return views.raw(views.cart(cart, await repo.cart_items(conn, cart_id)))


async def get_cart(conn: db.Connection, org: str, cart_id: uuid.UUID) -> dict[str, Any]:
    cart = _found(await repo.get_cart(conn, org, cart_id), "cart", cart_id)
    return views.cart(cart, await repo.cart_items(conn, cart_id))


#: How often a checkout reads the cart again when it changed between reading and writing.
CHECKOUT_ATTEMPTS = 5


async def checkout(
    conn: db.Connection, ctx: Context, org: str, cart_id: uuid.UUID, data: s.CheckoutIn
) -> Any:
    """The order, `order.created`, `order.placed` and `UserCheckedOutIntegrationEvent`: one
    statement (`repo.check_out`), written only if the cart is still as it was read; it needs
    no transaction around it (`messaging.web.command(atomic=True)`)."""
    for _ in range(CHECKOUT_ATTEMPTS):
        found = await repo.cart_to_check_out(conn, org, cart_id)
        if found is None:
            raise NotFound(f"cart {cart_id} not found")
        cart, lines = found
        status = CART.apply(CartStatus(cart["status"]), "check_out")
        if not lines:
            raise RuleViolation("the cart is empty", field="items")
        written = await _check_out(conn, ctx, org, cart, lines, status, data)
        if written is not None:
            return views.raw(views.order(*written))
    raise RuleViolation("the cart kept changing during checkout; try again", field="items")


async def _check_out(
    conn: db.Connection,
    ctx: Context,
    org: str,
    cart: Record,
    lines: list[rules.Line],
    status: CartStatus,
    data: s.CheckoutIn,
) -> tuple[Record, list[dict[str, Any]]] | None:
    at = utcnow()
    order_id = uuid.uuid4()
    total = rules.total(lines)
    billing = data.billing_address or data.shipping_address
    # The number is taken by the statement that writes the order; `order.created` carries this
    # placeholder (unique to the request) until that statement puts the number in its place.
    number = f"ORD-{uuid.uuid4().hex}"
    created = ev.OrderCreatedData(
        order_id=str(order_id),
        order_number=number,
        customer_id=cart["customer_id"],
        total_amount=total,
        currency=data.currency,
        items_count=rules.units(lines),
        status=OrderStatus.PENDING.value,
    )
    placed = ev.OrderPlacedData(
        order_id=str(order_id),
        customer_id=cart["customer_id"],
        local_id=data.local_id,
        items=[
            ev.PlacedItem(
                variant_id=line.variant_id,
                quantity=line.quantity,
                preferred_warehouse_id=data.preferred_warehouse_id,
            )
            for line in lines
        ],
        reservation_ttl_minutes=data.reservation_ttl_minutes,
    )
    checked_out = new_bookworm(
        UserCheckedOutIntegrationEvent,
        order_id=order_id,
        basket_id=cart["id"],
        full_name=data.full_name,
        email=data.email,
        total_money=total,
    )
    messages = ctx.outbox.rows(
        [
            order_event("order.created", org, created, at=at),
            order_event("order.placed", org, placed, at=at),
            bookworm(checked_out),
        ],
        placeholder=number.encode(),
    )
    return await repo.check_out(
        conn,
        cart,
        lines,
        status.value,
        messages,
        id=order_id,
        organization_id=org,
        customer_id=cart["customer_id"],
        cart_id=cart["id"],
        email=data.email,
        full_name=data.full_name,
        currency=data.currency,
        local_id=data.local_id,
        preferred_warehouse_id=data.preferred_warehouse_id,
        reservation_ttl_minutes=data.reservation_ttl_minutes,
        total_amount=total,
        shipping_address=_address(data.shipping_address),
        billing_address=_address(billing),
        created_at=at,
        updated_at=at,
    )


# -- orders ------------------------------------------------------------------------------------


async def get_order(conn: db.Connection, org: str, order_id: uuid.UUID) -> dict[str, Any]:
    order = _found(await repo.get_order(conn, org, order_id), "order", order_id)
    return views.order(order, await repo.order_items(conn, order_id))


async def list_orders(
    conn: db.Connection, org: str, status: OrderStatus | None, limit: int, cursor: str | None
) -> dict[str, Any]:
    after = None
    if cursor is not None:
        try:
            after = repo.decode_cursor(cursor)
        except ValueError as exc:
            raise InvalidInput("cursor is not one this service handed out", field="cursor") from exc
    rows = await repo.page_orders(conn, org, status.value if status else None, limit + 1, after)
    page, more = rows[:limit], len(rows) > limit
    items = await repo.items_of_orders(conn, [r["id"] for r in page])
    last = page[-1] if page else None
    return {
        "items": [views.order(r, items[r["id"]]) for r in page],
        "next_cursor": repo.encode_cursor(last["created_at"], last["id"])
        if more and last
        else None,
    }


async def _lock_order(conn: db.Connection, org: str | None, order_id: uuid.UUID) -> Record:
    return _found(await repo.get_order(conn, org, order_id, lock=True), "order", order_id)


async def confirm_if_ready(
    conn: db.Connection, ctx: Context, order: Record, at: datetime
) -> Record:
    """`order.confirmed` once payment and stock met, whichever arrived second calls this."""
    order, confirmed = await _confirmation(conn, order, at)
    if confirmed is not None:
        await ctx.publish(conn, confirmed)
    return order


async def _confirmation(
    conn: db.Connection, order: Record, at: datetime
) -> tuple[Record, OutgoingMessage | None]:
    """The order confirmed if payment and stock met, and its `order.confirmed` to publish."""
    ready = rules.ready_to_confirm(
        OrderStatus(order["status"]),
        order["payment_id"] is not None,
        ReservationStatus(order["reservation_status"]),
        order["reservation_id"],
    )
    if not ready:
        return order, None
    status = ORDER.apply(OrderStatus(order["status"]), "confirm")
    items = warehouse_items(order["reserved_items"])
    await repo.set_item_warehouses(conn, order["id"], {i.variant_id: i.warehouse_id for i in items})
    order = await repo.update(conn, "orders", order["id"], status=status.value, confirmed_at=at)
    confirmed = ev.OrderConfirmedData(
        order_id=str(order["id"]),
        order_number=order["order_number"],
        reservation_id=order["reservation_id"],
        confirmed_at=at,
        payment_id=str(order["payment_id"]),
        items=items,
    )
    return order, order_event("order.confirmed", order["organization_id"], confirmed, at=at)


async def cancel(
    conn: db.Connection, ctx: Context, order: Record, *, reason: str, by: str, at: datetime
) -> Record:
    """`order.cancelled` (+ refund of what was paid, + the saga's cancel event). `order` locked."""
    status = ORDER.apply(OrderStatus(order["status"]), "cancel")
    org = order["organization_id"]
    for pending in await repo.pending_payments(conn, order["id"]):
        PAYMENT.apply(PaymentStatus(pending["status"]), "cancel")
        await repo.update(conn, "payments", pending["id"], status=PaymentStatus.CANCELLED.value)
    refund = rules.refundable(order["paid_amount"], order["refunded_amount"])
    holding = ReservationStatus(order["reservation_status"]) in (
        ReservationStatus.RESERVED,
        ReservationStatus.COMMITTED,
    )
    order = await repo.update(
        conn,
        "orders",
        order["id"],
        status=status.value,
        cancelled_at=at,
        cancellation_reason=reason,
        cancelled_by=by,
        refunded_amount=order["paid_amount"],
    )
    cancelled = ev.OrderCancelledData(
        order_id=str(order["id"]),
        reservation_id=order["reservation_id"],
        cancellation_reason=reason,
        cancelled_by=by,
        refund_required=refund > 0,
        stock_to_release=warehouse_items(order["reserved_items"]) if holding else [],
    )
    messages = [order_event("order.cancelled", org, cancelled, at=at)]
    if refund > 0:
        messages.append(await _refund_payment(conn, order, refund, "order_cancelled", at))
    messages.append(
        bookworm(
            new_bookworm(
                OrderStatusChangedToCancelIntegrationEvent,
                order_id=order["id"],
                basket_id=order["cart_id"],
                full_name=order["full_name"],
                email=order["email"],
                total_money=order["total_amount"],
            )
        )
    )
    await ctx.publish(conn, *messages)
    return order


async def _refund_payment(
    conn: db.Connection, order: Record, amount: Any, reason: str, at: datetime
) -> OutgoingMessage:
    """Books `amount` against the order's succeeded payment; the caller updated the order."""
    payment_id = order["payment_id"]
    await conn.execute(
        "UPDATE payments SET refunded_amount = refunded_amount + $2 WHERE id = $1",
        payment_id,
        amount,
    )
    refunded = ev.PaymentRefundedData(
        payment_id=str(payment_id),
        order_id=str(order["id"]),
        refund_amount=amount,
        refund_reason=reason,
        refunded_at=at,
    )
    return order_event("payment.refunded", order["organization_id"], refunded, at=at)


async def cancel_order(
    conn: db.Connection, ctx: Context, org: str, order_id: uuid.UUID, data: s.CancelIn
) -> Any:
    order = await _lock_order(conn, org, order_id)
    order = await cancel(conn, ctx, order, reason=data.reason, by=data.cancelled_by, at=utcnow())
    return views.raw(views.order(order, await repo.order_items(conn, order_id)))


# -- payments ----------------------------------------------------------------------------------


async def create_payment(
    conn: db.Connection, ctx: Context, org: str, order_id: uuid.UUID, data: s.PaymentIn
) -> Any:
    order = await _lock_order(conn, org, order_id)
    ORDER.apply(OrderStatus(order["status"]), "pay")
    if await repo.live_payment(conn, order_id) is not None:
        raise RuleViolation("the order already has a pending or succeeded payment")
    at = utcnow()
    payment = await repo.insert_payment(
        conn,
        id=uuid.uuid4(),
        organization_id=org,
        order_id=order_id,
        amount=order["total_amount"],
        currency=order["currency"],
        payment_method=data.payment_method,
        card_last4=data.card_last4,
        # The payment intent's reference at the gateway, known from the start (as Stripe's
        # `pi_…`); the gateway's callback may name its own id on success.
        gateway_payment_id=f"pi_{uuid.uuid4().hex[:24]}",
        created_at=at,
    )
    pending = ev.PaymentPendingData(
        payment_id=str(payment["id"]),
        order_id=str(order_id),
        amount=payment["amount"],
        currency=payment["currency"],
        payment_method=data.payment_method,
        gateway_payment_id=payment["gateway_payment_id"],
    )
    await ctx.publish(conn, order_event("payment.pending", org, pending, at=at))
    return views.raw(views.payment(payment))


async def _lock_payment(
    conn: db.Connection, org: str, payment_id: uuid.UUID
) -> tuple[Record, Record]:
    """The order first, then the payment: the one lock order of the service."""
    order_id = await repo.owning_order(conn, "payments", org, payment_id)
    if order_id is None:
        raise NotFound(f"payment {payment_id} not found")
    order = await _lock_order(conn, org, order_id)
    payment = await repo.get_child(conn, "payments", org, payment_id, lock=True)
    return order, _found(payment, "payment", payment_id)


async def succeed_payment(
    conn: db.Connection, ctx: Context, org: str, payment_id: uuid.UUID, data: s.PaymentSucceededIn
) -> Any:
    order, payment = await _lock_payment(conn, org, payment_id)
    status = PAYMENT.apply(PaymentStatus(payment["status"]), "succeed")
    ORDER.apply(OrderStatus(order["status"]), "pay")
    at = utcnow()
    payment = await repo.update(
        conn,
        "payments",
        payment_id,
        status=status.value,
        paid_at=at,
        gateway_payment_id=data.gateway_payment_id or payment["gateway_payment_id"],
    )
    order = await repo.update(
        conn, "orders", order["id"], paid_amount=payment["amount"], payment_id=payment_id
    )
    order, confirmed = await _confirmation(conn, order, at)
    succeeded = ev.PaymentSucceededData(
        payment_id=str(payment_id),
        order_id=str(order["id"]),
        amount=payment["amount"],
        paid_at=at,
        payment_method=payment["payment_method"],
        card_last4=payment["card_last4"],
    )
    # The invoice's number is taken last, by the statement that writes the invoice and the
    # messages (the counter row stays locked until the commit); `invoice.created` carries
    # this placeholder until then.
    number = f"INV-{uuid.uuid4().hex}"
    invoice_id = uuid.uuid4()
    issued = ev.InvoiceCreatedData(
        invoice_id=str(invoice_id),
        order_id=str(order["id"]),
        invoice_number=number,
        total_amount=payment["amount"],
        issued_at=at,
    )
    messages = [
        order_event("payment.succeeded", org, succeeded, at=at),
        order_event("invoice.created", org, issued, at=at),
    ]
    if confirmed is not None:
        messages.append(confirmed)
    await repo.insert_numbered_invoice(
        conn,
        ctx.outbox.rows(messages, placeholder=number.encode()),
        id=invoice_id,
        organization_id=org,
        order_id=order["id"],
        payment_id=payment_id,
        total_amount=payment["amount"],
        currency=payment["currency"],
        issued_at=at,
    )
    return views.raw(views.payment(payment))


async def fail_payment(
    conn: db.Connection, ctx: Context, org: str, payment_id: uuid.UUID, data: s.PaymentFailedIn
) -> Any:
    order, payment = await _lock_payment(conn, org, payment_id)
    status = PAYMENT.apply(PaymentStatus(payment["status"]), "fail")
    at = utcnow()
    failures = order["failed_payments"] + 1
    remaining = rules.retries_remaining(failures, ctx.settings.payment_max_attempts)
    payment = await repo.update(
        conn,
        "payments",
        payment_id,
        status=status.value,
        error_code=data.error_code,
        error_message=data.error_message,
        failed_at=at,
    )
    order = await repo.update(conn, "orders", order["id"], failed_payments=failures)
    failed = ev.PaymentFailedData(
        payment_id=str(payment_id),
        order_id=str(order["id"]),
        error_code=data.error_code,
        error_message=data.error_message,
        retries_remaining=remaining,
    )
    await ctx.publish(conn, order_event("payment.failed", org, failed, at=at))
    if remaining == 0 and ORDER.allows(OrderStatus(order["status"]), "cancel"):
        await cancel(conn, ctx, order, reason="payment_failed", by="system", at=at)
    return views.raw(views.payment(payment))


# -- inventory reservations (consumed) ----------------------------------------------------------


async def reservation_created(
    conn: db.Connection, ctx: Context, order: Record, reservation_id: str, items: list[Any]
) -> None:
    """Stock is held. Confirms the order when it is already paid. `order` locked."""
    if OrderStatus(order["status"]) is OrderStatus.CANCELLED:
        # Inventory releases it on `order.cancelled`; the order keeps no trace of the hold.
        log.info("reservation for a cancelled order", order_id=str(order["id"]))
        return
    reserved = [
        {"variant_id": i.variant_id, "warehouse_id": i.warehouse_id, "quantity": i.quantity}
        for i in items
    ]
    order = await repo.update(
        conn,
        "orders",
        order["id"],
        reservation_id=reservation_id,
        reservation_status=ReservationStatus.RESERVED.value,
        reserved_items=reserved,
    )
    await confirm_if_ready(conn, ctx, order, utcnow())


async def reservation_failed(conn: db.Connection, ctx: Context, order: Record, reason: str) -> None:
    order = await repo.update(
        conn, "orders", order["id"], reservation_status=ReservationStatus.FAILED.value
    )
    if ORDER.allows(OrderStatus(order["status"]), "cancel"):
        await cancel(conn, ctx, order, reason=reason, by="inventory_service", at=utcnow())


async def reservation_changed(
    conn: db.Connection, order: Record, reservation_id: str, status: ReservationStatus
) -> None:
    """Committed or released: recorded for the reservation the order knows."""
    if order["reservation_id"] in (None, reservation_id):
        await repo.update(
            conn,
            "orders",
            order["id"],
            reservation_id=reservation_id,
            reservation_status=status.value,
        )


# -- fulfillment -------------------------------------------------------------------------------


async def start_fulfillment(
    conn: db.Connection, ctx: Context, org: str, order_id: uuid.UUID, data: s.FulfillmentStartIn
) -> Any:
    order = await _lock_order(conn, org, order_id)
    status = ORDER.apply(OrderStatus(order["status"]), "start_fulfillment")
    at = utcnow()
    order = await repo.update(
        conn,
        "orders",
        order_id,
        status=status.value,
        fulfillment_warehouse_id=data.warehouse_id,
        assigned_to=data.assigned_to,
        fulfillment_started_at=at,
    )
    started = ev.FulfillmentStartedData(
        order_id=str(order_id),
        warehouse_id=data.warehouse_id,
        assigned_to=data.assigned_to,
        started_at=at,
    )
    processing = ev.OrderProcessingData(
        order_id=str(order_id), warehouse_id=data.warehouse_id, fulfillment_started_at=at
    )
    await ctx.publish(
        conn,
        order_event("fulfillment.started", org, started, at=at),
        order_event("order.processing", org, processing, at=at),
    )
    return views.raw(views.order(order, await repo.order_items(conn, order_id)))


async def pick(
    conn: db.Connection, ctx: Context, org: str, order_id: uuid.UUID, data: s.PickIn
) -> Any:
    order = await _lock_order(conn, org, order_id)
    ORDER.apply(OrderStatus(order["status"]), "pick")
    items = {i["id"]: i for i in await repo.order_items(conn, order_id)}
    item = items.get(data.order_item_id)
    if item is None:
        raise RuleViolation(
            f"order item {data.order_item_id} is not part of this order", field="order_item_id"
        )
    rules.check_pick(item["quantity"], item["quantity_picked"], data.quantity_picked)
    at = utcnow()
    await repo.update(
        conn,
        "order_items",
        item["id"],
        quantity_picked=item["quantity_picked"] + data.quantity_picked,
    )
    picked = ev.FulfillmentItemPickedData(
        order_id=str(order_id),
        order_item_id=str(item["id"]),
        variant_id=item["variant_id"],
        quantity_picked=data.quantity_picked,
        picked_by=data.picked_by,
        picked_at=at,
    )
    await ctx.publish(conn, order_event("fulfillment.item_picked", org, picked, at=at))
    return views.raw(views.order(order, await repo.order_items(conn, order_id)))


async def pack(
    conn: db.Connection, ctx: Context, org: str, order_id: uuid.UUID, data: s.PackIn
) -> Any:
    order = await _lock_order(conn, org, order_id)
    status = ORDER.apply(OrderStatus(order["status"]), "pack")
    items = await repo.order_items(conn, order_id)
    unpicked = [str(i["id"]) for i in items if i["quantity_picked"] < i["quantity"]]
    if unpicked:
        raise RuleViolation(f"items not picked yet: {', '.join(unpicked)}", field="order_item_id")
    weight = rules.weight(data.total_weight)
    at = utcnow()
    order = await repo.update(
        conn,
        "orders",
        order_id,
        status=status.value,
        package_count=data.package_count,
        total_weight=weight,
        packed_by=data.packed_by,
        packed_at=at,
    )
    packed = ev.FulfillmentPackedData(
        order_id=str(order_id),
        package_count=data.package_count,
        total_weight=weight,
        packed_by=data.packed_by,
        packed_at=at,
    )
    await ctx.publish(conn, order_event("fulfillment.packed", org, packed, at=at))
    return views.raw(views.order(order, items))


# -- shipments ---------------------------------------------------------------------------------


async def create_shipment(
    conn: db.Connection, ctx: Context, org: str, order_id: uuid.UUID, data: s.ShipmentIn
) -> Any:
    order = await _lock_order(conn, org, order_id)
    ORDER.apply(OrderStatus(order["status"]), "create_shipment")
    if await repo.shipment_of(conn, order_id) is not None:
        raise RuleViolation("the order already has a shipment")
    at = utcnow()
    cost = rules.money(data.shipping_cost)
    shipment = await repo.insert_row(
        conn,
        "shipments",
        id=uuid.uuid4(),
        organization_id=org,
        order_id=order_id,
        carrier=data.carrier,
        service=data.service,
        shipping_cost=cost,
        created_at=at,
    )
    created = ev.ShipmentCreatedData(
        shipment_id=str(shipment["id"]),
        order_id=str(order_id),
        carrier=data.carrier,
        service=data.service,
        shipping_cost=cost,
    )
    await ctx.publish(conn, order_event("shipment.created", org, created, at=at))
    return views.raw(views.shipment(shipment))


async def _lock_shipment(
    conn: db.Connection, org: str, shipment_id: uuid.UUID
) -> tuple[Record, Record]:
    order_id = await repo.owning_order(conn, "shipments", org, shipment_id)
    if order_id is None:
        raise NotFound(f"shipment {shipment_id} not found")
    order = await _lock_order(conn, org, order_id)
    shipment = await repo.get_child(conn, "shipments", org, shipment_id, lock=True)
    return order, _found(shipment, "shipment", shipment_id)


async def create_label(
    conn: db.Connection, ctx: Context, org: str, shipment_id: uuid.UUID, data: s.LabelIn
) -> Any:
    order, shipment = await _lock_shipment(conn, org, shipment_id)
    ORDER.apply(OrderStatus(order["status"]), "create_label")
    status = SHIPMENT.apply(ShipmentStatus(shipment["status"]), "create_label")
    at = utcnow()
    tracking = data.tracking_number or f"TRK{uuid.uuid4().hex[:12].upper()}"
    label_url = data.label_url or f"{ctx.settings.public_url}/shipments/{shipment_id}/label"
    cost = rules.money(data.carrier_cost)
    shipment = await repo.update(
        conn,
        "shipments",
        shipment_id,
        status=status.value,
        tracking_number=tracking,
        label_url=label_url,
        carrier_cost=cost,
    )
    label = ev.ShipmentLabelCreatedData(
        shipment_id=str(shipment_id),
        tracking_number=tracking,
        label_url=label_url,
        carrier_cost=cost,
    )
    await ctx.publish(
        conn, order_event("shipment.label_created", org, label, at=at, order_id=order["id"])
    )
    return views.raw(views.shipment(shipment))


async def dispatch(
    conn: db.Connection, ctx: Context, org: str, shipment_id: uuid.UUID, data: s.DispatchIn
) -> Any:
    order, shipment = await _lock_shipment(conn, org, shipment_id)
    shipment_status = SHIPMENT.apply(ShipmentStatus(shipment["status"]), "dispatch")
    order_status = ORDER.apply(OrderStatus(order["status"]), "ship")
    items = warehouse_items(order["reserved_items"])
    warehouse = (
        data.warehouse_id
        or order["fulfillment_warehouse_id"]
        or (items[0].warehouse_id if items else None)
        or order["preferred_warehouse_id"]
    )
    if warehouse is None:
        raise RuleViolation("no warehouse known for this order", field="warehouse_id")
    at = utcnow()
    estimated = at.date() + timedelta(days=ctx.settings.estimated_delivery_days)
    shipment = await repo.update(
        conn,
        "shipments",
        shipment_id,
        status=shipment_status.value,
        dispatched_at=at,
        warehouse_id=warehouse,
        estimated_delivery=estimated,
    )
    await repo.update(conn, "orders", order["id"], status=order_status.value, shipped_at=at)
    dispatched = ev.ShipmentDispatchedData(
        shipment_id=str(shipment_id), dispatched_at=at, warehouse_id=warehouse
    )
    shipped = ev.OrderShippedData(
        order_id=str(order["id"]),
        shipment_id=str(shipment_id),
        carrier=shipment["carrier"],
        tracking_number=shipment["tracking_number"],
        shipped_at=at,
        estimated_delivery=estimated,
        shipped_items=items,
    )
    await ctx.publish(
        conn,
        order_event("shipment.dispatched", org, dispatched, at=at, order_id=order["id"]),
        order_event("order.shipped", org, shipped, at=at),
    )
    return views.raw(views.shipment(shipment))


async def track(
    conn: db.Connection, ctx: Context, org: str, shipment_id: uuid.UUID, data: s.TrackingIn
) -> Any:
    order, shipment = await _lock_shipment(conn, org, shipment_id)
    status = SHIPMENT.apply(ShipmentStatus(shipment["status"]), "track")
    shipment = await repo.update(
        conn,
        "shipments",
        shipment_id,
        status=status.value,
        current_location=data.current_location,
        status_description=data.status_description,
    )
    moving = ev.ShipmentInTransitData(
        shipment_id=str(shipment_id),
        tracking_number=shipment["tracking_number"],
        current_location=data.current_location,
        status_description=data.status_description,
    )
    await ctx.publish(conn, order_event("shipment.in_transit", org, moving, order_id=order["id"]))
    return views.raw(views.shipment(shipment))


async def deliver(
    conn: db.Connection, ctx: Context, org: str, shipment_id: uuid.UUID, data: s.DeliverIn
) -> Any:
    order, shipment = await _lock_shipment(conn, org, shipment_id)
    shipment_status = SHIPMENT.apply(ShipmentStatus(shipment["status"]), "deliver")
    order_status = ORDER.apply(OrderStatus(order["status"]), "deliver")
    at = utcnow()
    shipment = await repo.update(
        conn,
        "shipments",
        shipment_id,
        status=shipment_status.value,
        delivered_at=at,
        recipient=data.recipient,
        signature=data.signature,
        delivery_photo_url=data.delivery_photo_url,
        signature_required=data.signature_required,
    )
    order = await repo.update(
        conn, "orders", order["id"], status=order_status.value, delivered_at=at
    )
    delivered = ev.ShipmentDeliveredData(
        shipment_id=str(shipment_id),
        delivered_at=at,
        recipient=data.recipient,
        signature_required=data.signature_required,
    )
    order_delivered = ev.OrderDeliveredData(
        order_id=str(order["id"]),
        delivered_at=at,
        signature=data.signature,
        delivery_photo_url=data.delivery_photo_url,
    )
    complete = new_bookworm(
        OrderStatusChangedToCompleteIntegrationEvent,
        order_id=order["id"],
        basket_id=order["cart_id"],
        full_name=order["full_name"],
        email=order["email"],
        total_money=order["total_amount"],
    )
    await ctx.publish(
        conn,
        order_event("shipment.delivered", org, delivered, at=at, order_id=order["id"]),
        order_event("order.delivered", org, order_delivered, at=at),
        bookworm(complete),
    )
    return views.raw(views.shipment(shipment))


# -- returns -----------------------------------------------------------------------------------


async def request_return(
    conn: db.Connection, ctx: Context, org: str, order_id: uuid.UUID, data: s.ReturnIn
) -> Any:
    order = await _lock_order(conn, org, order_id)
    ORDER.apply(OrderStatus(order["status"]), "request_return")
    items = {str(i["id"]): i for i in await repo.order_items(conn, order_id)}
    requested: dict[str, int] = {}
    for item in data.items:
        key = str(item.order_item_id)
        requested[key] = requested.get(key, 0) + item.quantity
    rules.check_return(
        requested,
        {key: i["quantity"] for key, i in items.items()},
        await repo.returned_quantities(conn, order_id),
    )
    at = utcnow()
    return_id = uuid.uuid4()
    row = await repo.insert_row(
        conn,
        "returns",
        id=return_id,
        organization_id=org,
        order_id=order_id,
        rma_number=await repo.next_number(conn, org, "RMA"),
        reason=data.reason,
        requested_at=at,
    )
    lines = await repo.insert_return_items(
        conn,
        return_id,
        [(items[key]["id"], items[key]["variant_id"], qty) for key, qty in requested.items()],
    )
    event = ev.ReturnRequestedData(
        return_id=str(return_id),
        order_id=str(order_id),
        rma_number=row["rma_number"],
        reason=data.reason,
        items=[
            ev.ReturnRequestedItem(
                order_item_id=str(i["order_item_id"]),
                variant_id=i["variant_id"],
                quantity=i["quantity"],
            )
            for i in lines
        ],
        requested_at=at,
    )
    await ctx.publish(conn, order_event("return.requested", org, event, at=at))
    return views.raw(views.return_(row, lines))


async def _lock_return(
    conn: db.Connection, org: str, return_id: uuid.UUID
) -> tuple[Record, Record]:
    order_id = await repo.owning_order(conn, "returns", org, return_id)
    if order_id is None:
        raise NotFound(f"return {return_id} not found")
    order = await _lock_order(conn, org, order_id)
    row = await repo.get_child(conn, "returns", org, return_id, lock=True)
    return order, _found(row, "return", return_id)


async def approve_return(
    conn: db.Connection, ctx: Context, org: str, return_id: uuid.UUID, data: s.ApproveIn
) -> Any:
    order, row = await _lock_return(conn, org, return_id)
    status = RETURN.apply(ReturnStatus(row["status"]), "approve")
    amount = rules.money(data.refund_amount)
    promised = await repo.approved_unrefunded(conn, order["id"])
    rules.check_refund(order["paid_amount"], order["refunded_amount"] + promised, amount)
    at = utcnow()
    label_url = f"{ctx.settings.public_url}/returns/{return_id}/label"
    row = await repo.update(
        conn,
        "returns",
        return_id,
        status=status.value,
        approved_by=data.approved_by,
        refund_amount=amount,
        return_shipping_label_url=label_url,
        approved_at=at,
    )
    approved = ev.ReturnApprovedData(
        return_id=str(return_id),
        rma_number=row["rma_number"],
        approved_by=data.approved_by,
        return_shipping_label_url=label_url,
        refund_amount=amount,
    )
    await ctx.publish(
        conn, order_event("return.approved", org, approved, at=at, order_id=order["id"])
    )
    return views.raw(views.return_(row, await repo.return_items(conn, return_id)))


async def receive_return(
    conn: db.Connection, ctx: Context, org: str, return_id: uuid.UUID, data: s.ReceiveIn
) -> Any:
    _, row = await _lock_return(conn, org, return_id)
    status = RETURN.apply(ReturnStatus(row["status"]), "receive")
    authorized: dict[str, int] = {}
    for line in await repo.return_items(conn, return_id):
        authorized[line["variant_id"]] = authorized.get(line["variant_id"], 0) + line["quantity"]
    received_qty: dict[str, int] = {}
    for item in data.returned_items:
        received_qty[item.variant_id] = received_qty.get(item.variant_id, 0) + item.quantity
    rules.check_received(received_qty, authorized)
    at = utcnow()
    returned = [
        ev.ReturnedItem(
            variant_id=i.variant_id,
            quantity=i.quantity,
            condition=i.condition,
            return_reason=i.return_reason,
        )
        for i in data.returned_items
    ]
    row = await repo.update(
        conn,
        "returns",
        return_id,
        status=status.value,
        warehouse_id=data.warehouse_id,
        received_items=[msgspec.to_builtins(i) for i in returned],
        received_at=at,
    )
    received = ev.ReturnReceivedData(
        return_id=str(return_id),
        order_id=str(row["order_id"]),
        rma_number=row["rma_number"],
        received_at=at,
        warehouse_id=data.warehouse_id,
        returned_items=returned,
    )
    await ctx.publish(conn, order_event("return.received", org, received, at=at))
    return views.raw(views.return_(row, await repo.return_items(conn, return_id)))


async def refund_return(
    conn: db.Connection, ctx: Context, org: str, return_id: uuid.UUID, data: s.RefundIn
) -> Any:
    order, row = await _lock_return(conn, org, return_id)
    status = RETURN.apply(ReturnStatus(row["status"]), "refund")
    amount = row["refund_amount"]
    rules.check_refund(order["paid_amount"], order["refunded_amount"], amount)
    at = utcnow()
    order = await repo.update(
        conn, "orders", order["id"], refunded_amount=order["refunded_amount"] + amount
    )
    row = await repo.update(
        conn,
        "returns",
        return_id,
        status=status.value,
        refund_method=data.refund_method,
        refunded_at=at,
    )
    refunded = ev.ReturnRefundedData(
        return_id=str(return_id),
        refund_amount=amount,
        refund_method=data.refund_method,
        refunded_at=at,
    )
    await ctx.publish(
        conn,
        order_event("return.refunded", org, refunded, at=at, order_id=order["id"]),
        await _refund_payment(conn, order, amount, "customer_return", at),
    )
    return views.raw(views.return_(row, await repo.return_items(conn, return_id)))


async def get_return(conn: db.Connection, org: str, return_id: uuid.UUID) -> dict[str, Any]:
    row = _found(await repo.get_child(conn, "returns", org, return_id), "return", return_id)
    return views.return_(row, await repo.return_items(conn, return_id))


# -- invoices ----------------------------------------------------------------------------------


async def list_invoices(
    conn: db.Connection, ctx: Context, org: str, order_id: uuid.UUID
) -> list[dict[str, Any]]:
    _found(await repo.get_order(conn, org, order_id), "order", order_id)
    return [views.invoice(r, ctx.pdf_url(r["id"])) for r in await repo.invoices_of(conn, order_id)]


async def send_invoice(
    conn: db.Connection, ctx: Context, org: str, invoice_id: uuid.UUID, data: s.SendInvoiceIn
) -> Any:
    invoice = await repo.get_child(conn, "invoices", org, invoice_id, lock=True)
    _found(invoice, "invoice", invoice_id)
    at = utcnow()
    invoice = await repo.update(
        conn,
        "invoices",
        invoice_id,
        status="sent",
        recipient_email=data.recipient_email,
        sent_at=at,
    )
    sent = ev.InvoiceSentData(
        invoice_id=str(invoice_id),
        recipient_email=data.recipient_email,
        pdf_url=ctx.pdf_url(invoice_id),
        sent_at=at,
    )
    await ctx.publish(
        conn, order_event("invoice.sent", org, sent, at=at, order_id=invoice["order_id"])
    )
    return views.raw(views.invoice(invoice, ctx.pdf_url(invoice_id)))


async def get_invoice(
    conn: db.Connection, ctx: Context, org: str, invoice_id: uuid.UUID
) -> dict[str, Any]:
    invoice = _found(await repo.get_child(conn, "invoices", org, invoice_id), "invoice", invoice_id)
    return views.invoice(invoice, ctx.pdf_url(invoice_id))


@dataclass(frozen=True, slots=True)
class InvoiceDocument:
    invoice: Record
    order: Record
    items: list[Record]


async def invoice_document(conn: db.Connection, org: str, invoice_id: uuid.UUID) -> InvoiceDocument:
    invoice = _found(await repo.get_child(conn, "invoices", org, invoice_id), "invoice", invoice_id)
    order = _found(
        await repo.get_order(conn, org, invoice["order_id"]), "order", invoice["order_id"]
    )
    return InvoiceDocument(invoice, order, await repo.order_items(conn, order["id"]))
