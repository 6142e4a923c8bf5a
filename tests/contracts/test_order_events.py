"""order_events: every seed example round-trips; the registry, helpers and errors behave."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from contracts.codec import UnknownMessageError
from contracts.order_events import (
    ORDER_EVENT_TYPES,
    CartCreatedData,
    OrderCancelledData,
    OrderCreatedData,
    OrderEvent,
    OrderPlacedData,
    OrderShippedData,
    PlacedItem,
    WarehouseItem,
    decode_order_event,
    encode_order_event,
    new_order_event,
)

from ._shared import example_files, example_stems, json_shape, load_example

ORDER_PLACED = {
    "event": "order.placed",
    "data": {
        "order_id": "order_456",
        "customer_id": "cust_789",
        "local_id": None,
        "items": [{"variant_id": "var_789", "quantity": 2, "preferred_warehouse_id": "wh_101"}],
        "reservation_ttl_minutes": 15,
    },
}


def _body(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def _order_created() -> OrderCreatedData:
    return OrderCreatedData(
        order_id=str(uuid.uuid4()),
        order_number="ORD-2025-0001",
        customer_id="cust_789",
        total_amount=Decimal("125.50"),
        currency="USD",
        items_count=3,
        status="pending",
    )


@pytest.mark.parametrize("path", example_files("order_events"))
def test_example_round_trips_with_same_keys_types_and_values(path: Path) -> None:
    example = load_example(path)

    event = decode_order_event(path.read_bytes(), path.stem)
    reencoded = json.loads(encode_order_event(event))

    assert isinstance(event.data, ORDER_EVENT_TYPES[path.stem])
    assert json_shape(reencoded) == json_shape(example)
    assert reencoded == example


@pytest.mark.parametrize("path", example_files("order_events"))
def test_example_decodes_by_its_event_field(path: Path) -> None:
    event = decode_order_event(path.read_bytes())

    assert event.event == path.stem
    assert type(event.data) is ORDER_EVENT_TYPES[path.stem]


def test_registry_has_the_29_events_of_the_examples() -> None:
    assert len(ORDER_EVENT_TYPES) == 29
    assert set(ORDER_EVENT_TYPES) == example_stems("order_events")
    assert len(set(ORDER_EVENT_TYPES.values())) == 29


def test_decoded_values_have_python_types() -> None:
    body = _body(
        {
            "event": "order.shipped",
            "data": {
                "order_id": "order_456",
                "shipment_id": "ship_789",
                "carrier": "FedEx",
                "tracking_number": "123456789",
                "shipped_at": "2025-11-24T10:00:00Z",
                "estimated_delivery": "2025-11-26",
                "shipped_items": [{"variant_id": "v", "quantity": 2, "warehouse_id": "wh_101"}],
            },
        }
    )

    data = decode_order_event(body).data

    assert isinstance(data, OrderShippedData)
    assert data.shipped_at == datetime(2025, 11, 24, 10, 0, tzinfo=UTC)
    assert data.estimated_delivery == date(2025, 11, 26)
    assert data.shipped_items == [WarehouseItem(variant_id="v", quantity=2, warehouse_id="wh_101")]


def test_nullable_fields_accept_null() -> None:
    body = _body(
        {
            "event": "order.cancelled",
            "data": {
                "order_id": "order_456",
                "reservation_id": None,
                "cancellation_reason": "customer_request",
                "cancelled_by": "user_789",
                "refund_required": False,
                "stock_to_release": [],
            },
        }
    )

    data = decode_order_event(body).data

    assert isinstance(data, OrderCancelledData)
    assert data.reservation_id is None


def test_wrong_type_names_the_field_path() -> None:
    doc = json.loads(json.dumps(ORDER_PLACED))
    doc["data"]["items"][0]["quantity"] = "two"

    with pytest.raises(
        msgspec.ValidationError,
        match=r"Expected `int`, got `str` - at `\$\.data\.items\[0\]\.quantity`",
    ):
        decode_order_event(_body(doc))


def test_missing_required_field_names_the_field_and_its_parent() -> None:
    doc = json.loads(json.dumps(ORDER_PLACED))
    del doc["data"]["items"][0]["quantity"]

    with pytest.raises(
        msgspec.ValidationError,
        match=r"Object missing required field `quantity` - at `\$\.data\.items\[0\]`",
    ):
        decode_order_event(_body(doc))


def test_nullable_field_is_still_required() -> None:
    doc = json.loads(json.dumps(ORDER_PLACED))
    del doc["data"]["local_id"]

    with pytest.raises(msgspec.ValidationError, match=r"`local_id` - at `\$\.data`"):
        decode_order_event(_body(doc))


def test_non_positive_quantity_is_rejected() -> None:
    doc = json.loads(json.dumps(ORDER_PLACED))
    doc["data"]["items"][0]["quantity"] = 0

    with pytest.raises(msgspec.ValidationError, match=r"\$\.data\.items\[0\]\.quantity"):
        decode_order_event(_body(doc))


def test_unknown_fields_are_ignored() -> None:
    doc = json.loads(json.dumps(ORDER_PLACED))
    doc["trace"] = "abc"
    doc["data"]["coupon"] = "SAVE10"

    event = decode_order_event(_body(doc))

    assert "coupon" not in json.loads(encode_order_event(event))["data"]


def test_unknown_event_name_is_a_clear_value_error() -> None:
    with pytest.raises(UnknownMessageError, match=r"order\.teleported"):
        decode_order_event(b'{"event": "order.teleported", "data": {}}')
    with pytest.raises(ValueError, match=r"order\.teleported"):
        decode_order_event(_body(ORDER_PLACED), "order.teleported")


def test_routing_key_disagreeing_with_body_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"'order\.placed' but was routed as 'cart\.created'"):
        decode_order_event(_body(ORDER_PLACED), "cart.created")


def test_body_without_event_field_is_rejected() -> None:
    with pytest.raises(msgspec.ValidationError, match="`event`"):
        decode_order_event(b'{"data": {}}', "order.placed")


def test_new_order_event_fills_envelope_for_producers() -> None:
    data = _order_created()

    event = new_order_event("order.created", "org_123", data)

    assert isinstance(event.id, uuid.UUID)
    assert event.version == "1.0"
    assert event.organization_id == "org_123"
    assert event.timestamp is not None
    assert event.timestamp.tzinfo is not None
    body = json.loads(encode_order_event(event))
    assert set(body) == {"id", "event", "version", "timestamp", "organization_id", "data"}
    assert body["timestamp"].endswith("Z")
    assert body["data"]["total_amount"] == 125.5
    assert decode_order_event(encode_order_event(event), "order.created") == event


def test_new_order_event_uses_given_id_and_time() -> None:
    event_id = uuid.uuid4()
    at = datetime(2025, 11, 23, 15, 0, tzinfo=UTC)

    event = new_order_event(
        "order.created", "org_123", _order_created(), event_id=event_id, timestamp=at
    )

    assert (event.id, event.timestamp) == (event_id, at)


def test_new_order_event_rejects_a_mismatched_data_type() -> None:
    cart = CartCreatedData(
        cart_id="cart_123", customer_id="cust_789", session_id=None, organization_id="org_123"
    )

    with pytest.raises(ValueError, match="OrderCreatedData"):
        new_order_event("order.created", "org_123", cart)
    with pytest.raises(UnknownMessageError):
        new_order_event("order.teleported", "org_123", cart)


def test_envelope_is_generic_over_its_data() -> None:
    placed = OrderPlacedData(
        order_id="o",
        customer_id="c",
        local_id=None,
        items=[PlacedItem(variant_id="v", quantity=1, preferred_warehouse_id=None)],
        reservation_ttl_minutes=15,
    )
    event: OrderEvent[OrderPlacedData] = OrderEvent(event="order.placed", data=placed)

    assert json.loads(encode_order_event(event)) == {
        "event": "order.placed",
        "data": {
            "order_id": "o",
            "customer_id": "c",
            "local_id": None,
            "items": [{"variant_id": "v", "quantity": 1, "preferred_warehouse_id": None}],
            "reservation_ttl_minutes": 15,
        },
    }
