"""CloudEvents 1.0 envelopes for the reservation, stock and low-stock events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from contracts.cloudevents import (
    INVENTORY_EVENT_TYPES,
    LowStockAlertData,
    ReleaseReason,
    ReservationCommittedData,
    ReservationCreatedData,
    ReservationFailedData,
    ReservationReleasedData,
    RestockedItem,
    StockDeductedData,
    StockItem,
    StockRestockedData,
    UnavailableItem,
    decode_cloud_event,
    encode_cloud_event,
    new_cloud_event,
)
from contracts.codec import UnknownMessageError

ORDER_ID = "0b8e4a8e-2f57-4c59-9d55-3f8f4c1f7b6e"
EXPIRES = datetime(2025, 11, 23, 15, 15, tzinfo=UTC)
ITEMS = [StockItem(variant_id="var_789", warehouse_id="wh_101", quantity=2)]

# (type, subject, data, the data's wire form from SPEC 2.3)
CASES: list[tuple[str, str, Any, dict[str, Any]]] = [
    (
        "inventory.reservation.created",
        ORDER_ID,
        ReservationCreatedData(
            reservation_id="res_123", order_id=ORDER_ID, items=ITEMS, expires_at=EXPIRES
        ),
        {
            "reservation_id": "res_123",
            "order_id": ORDER_ID,
            "items": [{"variant_id": "var_789", "warehouse_id": "wh_101", "quantity": 2}],
            "expires_at": "2025-11-23T15:15:00Z",
        },
    ),
    (
        "inventory.reservation.failed",
        ORDER_ID,
        ReservationFailedData(
            order_id=ORDER_ID,
            reason="insufficient_stock",
            items=[UnavailableItem(variant_id="var_789", requested=2, available=0)],
        ),
        {
            "order_id": ORDER_ID,
            "reason": "insufficient_stock",
            "items": [{"variant_id": "var_789", "requested": 2, "available": 0}],
        },
    ),
    (
        "inventory.reservation.committed",
        ORDER_ID,
        ReservationCommittedData(reservation_id="res_123", order_id=ORDER_ID),
        {"reservation_id": "res_123", "order_id": ORDER_ID},
    ),
    (
        "inventory.reservation.released",
        ORDER_ID,
        ReservationReleasedData(
            reservation_id="res_123", order_id=ORDER_ID, reason=ReleaseReason.EXPIRED
        ),
        {"reservation_id": "res_123", "order_id": ORDER_ID, "reason": "expired"},
    ),
    (
        "inventory.stock.deducted",
        ORDER_ID,
        StockDeductedData(order_id=ORDER_ID, items=ITEMS),
        {
            "order_id": ORDER_ID,
            "items": [{"variant_id": "var_789", "warehouse_id": "wh_101", "quantity": 2}],
        },
    ),
    (
        "inventory.stock.restocked",
        ORDER_ID,
        StockRestockedData(
            return_id="ret_123",
            order_id=ORDER_ID,
            warehouse_id="wh_101",
            items=[RestockedItem(variant_id="var_789", quantity=1, condition="good")],
        ),
        {
            "return_id": "ret_123",
            "order_id": ORDER_ID,
            "warehouse_id": "wh_101",
            "items": [{"variant_id": "var_789", "quantity": 1, "condition": "good"}],
        },
    ),
    (
        "inventory.stock.low",
        "SKU-001",
        LowStockAlertData(
            inventory_id="INV-001",
            sku="SKU-001",
            current_quantity=8,
            min_stock=10,
            location="A-01-02-3",
        ),
        # Seed 000's low-stock-alert example, verbatim.
        {
            "inventoryId": "INV-001",
            "sku": "SKU-001",
            "currentQuantity": 8,
            "minStock": 10,
            "location": "A-01-02-3",
        },
    ),
]


@pytest.mark.parametrize(("type_", "subject", "data", "wire"), CASES, ids=[c[0] for c in CASES])
def test_round_trip(type_: str, subject: str, data: Any, wire: dict[str, Any]) -> None:
    event = new_cloud_event(type_, "/commerce/inventory-service", subject, data)

    body = encode_cloud_event(event)
    doc = json.loads(body)

    assert list(doc) == [
        "specversion",
        "id",
        "type",
        "source",
        "subject",
        "time",
        "datacontenttype",
        "data",
    ]
    assert doc["specversion"] == "1.0"
    assert doc["datacontenttype"] == "application/json"
    assert (doc["type"], doc["subject"], doc["id"]) == (type_, subject, event.id)
    assert doc["time"].endswith("Z")
    assert doc["data"] == wire
    assert decode_cloud_event(body) == event
    assert decode_cloud_event(body, type_) == event


def test_registry_covers_the_seven_types() -> None:
    assert set(INVENTORY_EVENT_TYPES) == {case[0] for case in CASES}
    assert len(INVENTORY_EVENT_TYPES) == 7


def test_new_cloud_event_rejects_a_mismatched_data_type() -> None:
    committed = ReservationCommittedData(reservation_id="res_123", order_id=ORDER_ID)

    with pytest.raises(ValueError, match="ReservationCreatedData"):
        new_cloud_event("inventory.reservation.created", "/inv", ORDER_ID, committed)
    with pytest.raises(UnknownMessageError):
        new_cloud_event("inventory.reservation.teleported", "/inv", ORDER_ID, committed)


def test_routing_key_disagreeing_with_type_is_rejected() -> None:
    event = new_cloud_event(
        "inventory.reservation.committed",
        "/inv",
        ORDER_ID,
        ReservationCommittedData(reservation_id="res_123", order_id=ORDER_ID),
    )

    with pytest.raises(ValueError, match=r"routed as 'inventory\.stock\.deducted'"):
        decode_cloud_event(encode_cloud_event(event), "inventory.stock.deducted")


def _reservation_created_doc() -> Any:
    type_, subject, data, _ = CASES[0]
    return json.loads(encode_cloud_event(new_cloud_event(type_, "/inv", subject, data)))


def test_data_errors_name_the_field_path() -> None:
    doc = _reservation_created_doc()
    doc["data"]["items"][0]["quantity"] = "two"

    with pytest.raises(msgspec.ValidationError, match=r"\$\.data\.items\[0\]\.quantity"):
        decode_cloud_event(json.dumps(doc).encode())


def test_missing_envelope_attribute_is_rejected() -> None:
    doc = _reservation_created_doc()
    del doc["source"]

    with pytest.raises(msgspec.ValidationError, match=r"missing required field `source`"):
        decode_cloud_event(json.dumps(doc).encode())
