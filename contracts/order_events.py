"""The 29 events on the ``order_events`` exchange (seed 001): envelope, data types, registry."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

import msgspec

from contracts.codec import PositiveInt, UnknownMessageError, UtcDateTime, decoder, encode

DataT = TypeVar("DataT")

ENVELOPE_VERSION = "1.0"


class OrderEvent(msgspec.Struct, Generic[DataT], frozen=True, kw_only=True, omit_defaults=True):
    """The envelope. The seed's examples omit id/version/timestamp/organization_id, so they are
    optional on decode; producers always set them (see ``new_order_event``)."""

    id: uuid.UUID | None = None
    event: str
    version: str | None = None
    timestamp: UtcDateTime | None = None
    organization_id: str | None = None
    data: DataT


# --- nested items -------------------------------------------------------------------------


class PlacedItem(msgspec.Struct, frozen=True, kw_only=True):
    variant_id: str
    quantity: PositiveInt
    # Checkout may name no preferred warehouse: inventory then picks any bin with stock.
    preferred_warehouse_id: str | None


class WarehouseItem(msgspec.Struct, frozen=True, kw_only=True):
    """A quantity of one variant in one warehouse (confirmed, cancelled, shipped)."""

    variant_id: str
    quantity: PositiveInt
    warehouse_id: str


class ReturnRequestedItem(msgspec.Struct, frozen=True, kw_only=True):
    order_item_id: str
    variant_id: str
    quantity: PositiveInt


class ReturnedItem(msgspec.Struct, frozen=True, kw_only=True):
    variant_id: str
    quantity: PositiveInt
    condition: str
    return_reason: str


# --- orders -------------------------------------------------------------------------------


class OrderCreatedData(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str
    order_number: str
    customer_id: str
    total_amount: Decimal
    currency: str
    items_count: int
    status: str


class OrderPlacedData(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str
    customer_id: str
    local_id: str | None
    items: list[PlacedItem]
    reservation_ttl_minutes: PositiveInt


class OrderConfirmedData(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str
    order_number: str
    reservation_id: str
    confirmed_at: UtcDateTime
    payment_id: str
    items: list[WarehouseItem]


class OrderCancelledData(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str
    # None when the order is cancelled before inventory reserved anything.
    reservation_id: str | None
    cancellation_reason: str
    cancelled_by: str
    refund_required: bool
    stock_to_release: list[WarehouseItem]


class OrderProcessingData(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str
    warehouse_id: str
    fulfillment_started_at: UtcDateTime


class OrderShippedData(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str
    shipment_id: str
    carrier: str
    tracking_number: str
    shipped_at: UtcDateTime
    estimated_delivery: date
    shipped_items: list[WarehouseItem]


class OrderDeliveredData(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str
    delivered_at: UtcDateTime
    # Carriers do not always collect a signature or a photo.
    signature: str | None
    delivery_photo_url: str | None


# --- payments -----------------------------------------------------------------------------


class PaymentPendingData(msgspec.Struct, frozen=True, kw_only=True):
    payment_id: str
    order_id: str
    amount: Decimal
    currency: str
    payment_method: str
    # The gateway assigns its id only once it has seen the payment.
    gateway_payment_id: str | None


class PaymentSucceededData(msgspec.Struct, frozen=True, kw_only=True):
    payment_id: str
    order_id: str
    amount: Decimal
    paid_at: UtcDateTime
    payment_method: str
    # Only card payments have one.
    card_last4: str | None


class PaymentFailedData(msgspec.Struct, frozen=True, kw_only=True):
    payment_id: str
    order_id: str
    error_code: str
    error_message: str
    retries_remaining: int


class PaymentRefundedData(msgspec.Struct, frozen=True, kw_only=True):
    payment_id: str
    order_id: str
    refund_amount: Decimal
    refund_reason: str
    refunded_at: UtcDateTime


# --- shipments ----------------------------------------------------------------------------


class ShipmentCreatedData(msgspec.Struct, frozen=True, kw_only=True):
    shipment_id: str
    order_id: str
    carrier: str
    service: str
    shipping_cost: Decimal


class ShipmentLabelCreatedData(msgspec.Struct, frozen=True, kw_only=True):
    shipment_id: str
    tracking_number: str
    label_url: str
    carrier_cost: Decimal


class ShipmentDispatchedData(msgspec.Struct, frozen=True, kw_only=True):
    shipment_id: str
    dispatched_at: UtcDateTime
    warehouse_id: str


class ShipmentInTransitData(msgspec.Struct, frozen=True, kw_only=True):
    shipment_id: str
    tracking_number: str
    current_location: str
    status_description: str


class ShipmentDeliveredData(msgspec.Struct, frozen=True, kw_only=True):
    shipment_id: str
    delivered_at: UtcDateTime
    recipient: str
    signature_required: bool


# --- returns ------------------------------------------------------------------------------


class ReturnRequestedData(msgspec.Struct, frozen=True, kw_only=True):
    return_id: str
    order_id: str
    rma_number: str
    reason: str
    items: list[ReturnRequestedItem]
    requested_at: UtcDateTime


class ReturnApprovedData(msgspec.Struct, frozen=True, kw_only=True):
    return_id: str
    rma_number: str
    approved_by: str
    return_shipping_label_url: str
    refund_amount: Decimal


class ReturnReceivedData(msgspec.Struct, frozen=True, kw_only=True):
    return_id: str
    order_id: str
    rma_number: str
    received_at: UtcDateTime
    warehouse_id: str
    returned_items: list[ReturnedItem]


class ReturnRefundedData(msgspec.Struct, frozen=True, kw_only=True):
    return_id: str
    refund_amount: Decimal
    refund_method: str
    refunded_at: UtcDateTime


# --- carts --------------------------------------------------------------------------------


class CartCreatedData(msgspec.Struct, frozen=True, kw_only=True):
    cart_id: str
    customer_id: str
    # Carts created outside a browser session (API clients) have none.
    session_id: str | None
    organization_id: str


class CartItemAddedData(msgspec.Struct, frozen=True, kw_only=True):
    cart_id: str
    variant_id: str
    quantity: PositiveInt
    unit_price: Decimal


class CartAbandonedData(msgspec.Struct, frozen=True, kw_only=True):
    cart_id: str
    customer_id: str
    items_count: int
    total_value: Decimal
    abandoned_at: UtcDateTime
    last_activity_at: UtcDateTime


class CartConvertedData(msgspec.Struct, frozen=True, kw_only=True):
    cart_id: str
    order_id: str
    converted_at: UtcDateTime
    cart_value: Decimal


# --- fulfillment --------------------------------------------------------------------------


class FulfillmentStartedData(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str
    warehouse_id: str
    assigned_to: str
    started_at: UtcDateTime


class FulfillmentItemPickedData(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str
    order_item_id: str
    variant_id: str
    quantity_picked: PositiveInt
    picked_by: str
    picked_at: UtcDateTime


class FulfillmentPackedData(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str
    package_count: PositiveInt
    # Decimal rather than float so a weight re-encodes with the digits it was given.
    total_weight: Decimal
    packed_by: str
    packed_at: UtcDateTime


# --- invoices -----------------------------------------------------------------------------


class InvoiceCreatedData(msgspec.Struct, frozen=True, kw_only=True):
    invoice_id: str
    order_id: str
    invoice_number: str
    total_amount: Decimal
    issued_at: UtcDateTime


class InvoiceSentData(msgspec.Struct, frozen=True, kw_only=True):
    invoice_id: str
    recipient_email: str
    pdf_url: str
    sent_at: UtcDateTime


# --- registry and helpers -----------------------------------------------------------------

ORDER_EVENT_TYPES: dict[str, type[msgspec.Struct]] = {
    "order.created": OrderCreatedData,
    "order.placed": OrderPlacedData,
    "order.confirmed": OrderConfirmedData,
    "order.cancelled": OrderCancelledData,
    "order.processing": OrderProcessingData,
    "order.shipped": OrderShippedData,
    "order.delivered": OrderDeliveredData,
    "payment.pending": PaymentPendingData,
    "payment.succeeded": PaymentSucceededData,
    "payment.failed": PaymentFailedData,
    "payment.refunded": PaymentRefundedData,
    "shipment.created": ShipmentCreatedData,
    "shipment.label_created": ShipmentLabelCreatedData,
    "shipment.dispatched": ShipmentDispatchedData,
    "shipment.in_transit": ShipmentInTransitData,
    "shipment.delivered": ShipmentDeliveredData,
    "return.requested": ReturnRequestedData,
    "return.approved": ReturnApprovedData,
    "return.received": ReturnReceivedData,
    "return.refunded": ReturnRefundedData,
    "cart.created": CartCreatedData,
    "cart.item_added": CartItemAddedData,
    "cart.abandoned": CartAbandonedData,
    "cart.converted": CartConvertedData,
    "fulfillment.started": FulfillmentStartedData,
    "fulfillment.item_picked": FulfillmentItemPickedData,
    "fulfillment.packed": FulfillmentPackedData,
    "invoice.created": InvoiceCreatedData,
    "invoice.sent": InvoiceSentData,
}

# Subscripting the generic with a type held in a variable is fine at run time but not a
# static type, so the alias goes through Any.
_GENERIC_ENVELOPE: Any = OrderEvent


class _EventName(msgspec.Struct, frozen=True):
    event: str


def data_type_for(name: str) -> type[msgspec.Struct]:
    try:
        return ORDER_EVENT_TYPES[name]
    except KeyError:
        raise UnknownMessageError(f"unknown order event {name!r}") from None


def new_order_event(
    name: str,
    organization_id: str,
    data: msgspec.Struct,
    *,
    event_id: uuid.UUID | None = None,
    timestamp: datetime | None = None,
) -> OrderEvent[Any]:
    """A complete envelope for publishing: fresh id, version 1.0, current UTC time."""
    expected = data_type_for(name)
    if type(data) is not expected:
        raise ValueError(
            f"{name!r} carries {expected.__name__}, not {type(data).__name__}",
        )
    return OrderEvent(
        id=event_id or uuid.uuid4(),
        event=name,
        version=ENVELOPE_VERSION,
        timestamp=timestamp or datetime.now(UTC),
        organization_id=organization_id,
        data=data,
    )


def decode_order_event(body: bytes, name: str | None = None) -> OrderEvent[Any]:
    """Decode with the data type of ``name`` (the routing key), or of the body's ``event``."""
    # Read the name first so a body routed under another key fails as a mismatch, not as a
    # confusing validation error against the wrong data type.
    body_name = decoder(_EventName).decode(body).event
    if name is not None and body_name != name:
        raise ValueError(f"body says event {body_name!r} but was routed as {name!r}")
    data_type = data_type_for(body_name)
    envelope: OrderEvent[Any] = decoder(_GENERIC_ENVELOPE[data_type]).decode(body)
    return envelope


def encode_order_event(ev: OrderEvent[Any]) -> bytes:
    return encode(ev)
