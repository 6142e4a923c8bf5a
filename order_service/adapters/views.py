"""Resources as the HTTP API returns them (SPEC §10): dicts of JSON-able values, encoded with
the contracts' codec so money stays a JSON number with its exact digits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec

from contracts.codec import encode
from order_service.domain.rules import money

Record = asyncpg.Record
#: A row as read (a Record) or as written and known without reading it back.
Row = Record | Mapping[str, Any]


def raw(value: Any) -> msgspec.Raw:
    """An already-encoded JSON value for `messaging.web.command` to pass through unchanged."""
    return msgspec.Raw(encode(value))


def cart(row: Record, items: Sequence[Record]) -> dict[str, Any]:
    total = money(sum((i["unit_price"] * i["quantity"] for i in items), Decimal(0)))
    return {
        "cart_id": row["id"],
        "status": row["status"],
        "customer_id": row["customer_id"],
        "session_id": row["session_id"],
        "order_id": row["order_id"],
        "items": [
            {
                "variant_id": i["variant_id"],
                "quantity": i["quantity"],
                "unit_price": i["unit_price"],
            }
            for i in items
        ],
        "items_count": sum(i["quantity"] for i in items),
        "total_value": total,
        "created_at": row["created_at"],
        "last_activity_at": row["last_activity_at"],
        "abandoned_at": row["abandoned_at"],
        "converted_at": row["converted_at"],
    }


def order(row: Record, items: Sequence[Row]) -> dict[str, Any]:
    return {
        "order_id": row["id"],
        "order_number": row["order_number"],
        "status": row["status"],
        "customer_id": row["customer_id"],
        "cart_id": row["cart_id"],
        "email": row["email"],
        "full_name": row["full_name"],
        "currency": row["currency"],
        "local_id": row["local_id"],
        "preferred_warehouse_id": row["preferred_warehouse_id"],
        "reservation_ttl_minutes": row["reservation_ttl_minutes"],
        "shipping_address": row["shipping_address"],
        "billing_address": row["billing_address"],
        "total_amount": row["total_amount"],
        "paid_amount": row["paid_amount"],
        "refunded_amount": row["refunded_amount"],
        "payment_id": row["payment_id"],
        "reservation_id": row["reservation_id"],
        "reservation_status": row["reservation_status"],
        "basket_status": row["basket_status"],
        "items": [
            {
                "order_item_id": i["id"],
                "variant_id": i["variant_id"],
                "quantity": i["quantity"],
                "unit_price": i["unit_price"],
                "warehouse_id": i["warehouse_id"],
                "quantity_picked": i["quantity_picked"],
            }
            for i in items
        ],
        "fulfillment": {
            "warehouse_id": row["fulfillment_warehouse_id"],
            "assigned_to": row["assigned_to"],
            "started_at": row["fulfillment_started_at"],
            "package_count": row["package_count"],
            "total_weight": row["total_weight"],
            "packed_by": row["packed_by"],
            "packed_at": row["packed_at"],
        },
        "created_at": row["created_at"],
        "confirmed_at": row["confirmed_at"],
        "shipped_at": row["shipped_at"],
        "delivered_at": row["delivered_at"],
        "cancelled_at": row["cancelled_at"],
        "cancellation_reason": row["cancellation_reason"],
        "cancelled_by": row["cancelled_by"],
    }


def payment(row: Record) -> dict[str, Any]:
    return {
        "payment_id": row["id"],
        "order_id": row["order_id"],
        "status": row["status"],
        "amount": row["amount"],
        "currency": row["currency"],
        "payment_method": row["payment_method"],
        "card_last4": row["card_last4"],
        "gateway_payment_id": row["gateway_payment_id"],
        "error_code": row["error_code"],
        "error_message": row["error_message"],
        "refunded_amount": row["refunded_amount"],
        "created_at": row["created_at"],
        "paid_at": row["paid_at"],
        "failed_at": row["failed_at"],
    }


def invoice(row: Record, pdf_url: str) -> dict[str, Any]:
    return {
        "invoice_id": row["id"],
        "invoice_number": row["invoice_number"],
        "order_id": row["order_id"],
        "payment_id": row["payment_id"],
        "status": row["status"],
        "total_amount": row["total_amount"],
        "currency": row["currency"],
        "recipient_email": row["recipient_email"],
        "pdf_url": pdf_url,
        "issued_at": row["issued_at"],
        "sent_at": row["sent_at"],
    }


def shipment(row: Record) -> dict[str, Any]:
    return {
        "shipment_id": row["id"],
        "order_id": row["order_id"],
        "status": row["status"],
        "carrier": row["carrier"],
        "service": row["service"],
        "shipping_cost": row["shipping_cost"],
        "tracking_number": row["tracking_number"],
        "label_url": row["label_url"],
        "carrier_cost": row["carrier_cost"],
        "warehouse_id": row["warehouse_id"],
        "current_location": row["current_location"],
        "status_description": row["status_description"],
        "recipient": row["recipient"],
        "signature": row["signature"],
        "delivery_photo_url": row["delivery_photo_url"],
        "signature_required": row["signature_required"],
        "estimated_delivery": row["estimated_delivery"],
        "created_at": row["created_at"],
        "dispatched_at": row["dispatched_at"],
        "delivered_at": row["delivered_at"],
    }


def return_(row: Record, items: Sequence[Record]) -> dict[str, Any]:
    return {
        "return_id": row["id"],
        "rma_number": row["rma_number"],
        "order_id": row["order_id"],
        "status": row["status"],
        "reason": row["reason"],
        "items": [
            {
                "order_item_id": i["order_item_id"],
                "variant_id": i["variant_id"],
                "quantity": i["quantity"],
            }
            for i in items
        ],
        "approved_by": row["approved_by"],
        "refund_amount": row["refund_amount"],
        "return_shipping_label_url": row["return_shipping_label_url"],
        "warehouse_id": row["warehouse_id"],
        "returned_items": row["received_items"] or [],
        "refund_method": row["refund_method"],
        "requested_at": row["requested_at"],
        "approved_at": row["approved_at"],
        "received_at": row["received_at"],
        "refunded_at": row["refunded_at"],
    }
