"""Outgoing messages of the inventory service, built from the contracts (SPEC §2.3)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec

from contracts import cloudevents as ce
from contracts.inventory import (
    BulkTransactionPayload,
    InventoryBin,
    InventoryBinItem,
    InventoryBinItemPayload,
    InventoryBinPayload,
    InventoryTransaction,
    InventoryTransactionPayload,
    encode_inventory,
    event_name_for,
)
from inventory_service.domain.stock import StockLevel
from messaging import envelopes
from messaging.message import OutgoingMessage

APP_ID = "inventory_service"
SOURCE = "/inventory_service"


def _cloud_event(
    type_: str, subject: str, data: msgspec.Struct, order_id: str | None
) -> OutgoingMessage:
    event = ce.new_cloud_event(type_, SOURCE, subject, data)
    return envelopes.cloud_event(event, app_id=APP_ID, order_id=order_id)


def reservation_created(
    reservation_id: str, order_id: str, items: Sequence[ce.StockItem], expires_at: datetime
) -> OutgoingMessage:
    data = ce.ReservationCreatedData(
        reservation_id=reservation_id, order_id=order_id, items=list(items), expires_at=expires_at
    )
    return _cloud_event("inventory.reservation.created", order_id, data, order_id)


def reservation_failed(
    order_id: str, reason: str, items: Sequence[ce.UnavailableItem]
) -> OutgoingMessage:
    data = ce.ReservationFailedData(order_id=order_id, reason=reason, items=list(items))
    return _cloud_event("inventory.reservation.failed", order_id, data, order_id)


def reservation_committed(reservation_id: str, order_id: str) -> OutgoingMessage:
    data = ce.ReservationCommittedData(reservation_id=reservation_id, order_id=order_id)
    return _cloud_event("inventory.reservation.committed", order_id, data, order_id)


def reservation_released(reservation_id: str, order_id: str, reason: str) -> OutgoingMessage:
    data = ce.ReservationReleasedData(
        reservation_id=reservation_id, order_id=order_id, reason=reason
    )
    return _cloud_event("inventory.reservation.released", order_id, data, order_id)


def stock_deducted(order_id: str, items: Sequence[ce.StockItem]) -> OutgoingMessage:
    data = ce.StockDeductedData(order_id=order_id, items=list(items))
    return _cloud_event("inventory.stock.deducted", order_id, data, order_id)


def stock_restocked(
    return_id: str, order_id: str, warehouse_id: str, items: Sequence[ce.RestockedItem]
) -> OutgoingMessage:
    data = ce.StockRestockedData(
        return_id=return_id, order_id=order_id, warehouse_id=warehouse_id, items=list(items)
    )
    return _cloud_event("inventory.stock.restocked", order_id, data, order_id)


def stock_low(level: StockLevel) -> OutgoingMessage:
    """Seed 000's low-stock alert; the subject is the SKU."""
    data = ce.LowStockAlertData(
        inventory_id=str(level.bin_item_id),
        sku=level.sku_id,
        current_quantity=level.atp,
        min_stock=level.low_stock_threshold,
        location=level.bin_name,
    )
    return _cloud_event("inventory.stock.low", level.sku_id, data, None)


# -- seed-002 internal events ------------------------------------------------------------------


def bin_event(routing_key: str, bin_: InventoryBin) -> OutgoingMessage:
    payload = InventoryBinPayload(event_name=event_name_for(routing_key), bin=bin_)
    return envelopes.inventory_payload(payload, routing_key=routing_key, app_id=APP_ID)


def bin_item_event(routing_key: str, level: StockLevel) -> OutgoingMessage:
    item = InventoryBinItem(
        bin_name=level.bin_name,
        bin_item_id=level.bin_item_id,
        sku_id=level.sku_id,
        display_status=level.display_status,
        atp_qty=level.atp,
        back_ordered_qty=level.back_ordered,
        pre_ordered_qty=level.pre_ordered,
        low_stock_threshold=level.low_stock_threshold,
        out_of_stock_threshold=level.out_of_stock_threshold,
    )
    payload = InventoryBinItemPayload(event_name=event_name_for(routing_key), bin_item=item)
    return envelopes.inventory_payload(payload, routing_key=routing_key, app_id=APP_ID)


def transaction_event(routing_key: str, transaction: InventoryTransaction) -> OutgoingMessage:
    payload = InventoryTransactionPayload(
        event_name=event_name_for(routing_key), transaction=transaction
    )
    return envelopes.inventory_payload(payload, routing_key=routing_key, app_id=APP_ID)


def bulk_reply(
    payload: BulkTransactionPayload, *, reply_to: str, correlation_id: str | None
) -> OutgoingMessage:
    """The answer to a bulk request: straight to its `reply_to` queue (default exchange)."""
    return OutgoingMessage(
        exchange="",
        routing_key=reply_to,
        type="BulkTransactionPayload",
        app_id=APP_ID,
        body=encode_inventory(payload),
        correlation_id=correlation_id,
    )
