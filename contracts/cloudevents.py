"""CloudEvents 1.0 structured-JSON events added by this spec (reservations, stock, low stock)."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import msgspec

from contracts.codec import (
    NonNegativeInt,
    PositiveInt,
    UnknownMessageError,
    UtcDateTime,
    decoder,
    encode,
)

DataT = TypeVar("DataT")

SPECVERSION = "1.0"
JSON_CONTENT_TYPE = "application/json"


class CloudEvent(msgspec.Struct, Generic[DataT], frozen=True, kw_only=True):
    """``type`` is the routing key; ``subject`` the order id (the SKU for ``stock.low``)."""

    specversion: str = SPECVERSION
    id: str
    type: str
    source: str
    subject: str
    time: UtcDateTime
    datacontenttype: str = JSON_CONTENT_TYPE
    data: DataT


class ReleaseReason(enum.StrEnum):
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class StockItem(msgspec.Struct, frozen=True, kw_only=True):
    variant_id: str
    warehouse_id: str
    quantity: PositiveInt


class UnavailableItem(msgspec.Struct, frozen=True, kw_only=True):
    variant_id: str
    requested: PositiveInt
    available: NonNegativeInt


class RestockedItem(msgspec.Struct, frozen=True, kw_only=True):
    variant_id: str
    quantity: PositiveInt
    condition: str


class ReservationCreatedData(msgspec.Struct, frozen=True, kw_only=True):
    reservation_id: str
    order_id: str
    items: list[StockItem]
    expires_at: UtcDateTime


class ReservationFailedData(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str
    reason: str
    items: list[UnavailableItem]


class ReservationCommittedData(msgspec.Struct, frozen=True, kw_only=True):
    reservation_id: str
    order_id: str


class ReservationReleasedData(msgspec.Struct, frozen=True, kw_only=True):
    reservation_id: str
    order_id: str
    # A plain string (values in ReleaseReason) so a reason added later does not break consumers.
    reason: str


class StockDeductedData(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str
    items: list[StockItem]


class StockRestockedData(msgspec.Struct, frozen=True, kw_only=True):
    return_id: str
    order_id: str
    warehouse_id: str
    items: list[RestockedItem]


class LowStockAlertData(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Seed 000's ``low-stock-alert`` data, camelCase as in that seed."""

    inventory_id: str
    sku: str
    current_quantity: int
    min_stock: int
    location: str


INVENTORY_EVENT_TYPES: dict[str, type[msgspec.Struct]] = {
    "inventory.reservation.created": ReservationCreatedData,
    "inventory.reservation.failed": ReservationFailedData,
    "inventory.reservation.committed": ReservationCommittedData,
    "inventory.reservation.released": ReservationReleasedData,
    "inventory.stock.deducted": StockDeductedData,
    "inventory.stock.restocked": StockRestockedData,
    "inventory.stock.low": LowStockAlertData,
}

# Subscripting the generic with a type held in a variable is fine at run time but not a
# static type, so the alias goes through Any.
_GENERIC_EVENT: Any = CloudEvent


class _EventType(msgspec.Struct, frozen=True):
    type: str


def data_type_for(type_: str) -> type[msgspec.Struct]:
    try:
        return INVENTORY_EVENT_TYPES[type_]
    except KeyError:
        raise UnknownMessageError(f"unknown CloudEvent type {type_!r}") from None


def new_cloud_event(
    type_: str,
    source: str,
    subject: str,
    data: msgspec.Struct,
    *,
    event_id: str | None = None,
    time: datetime | None = None,
) -> CloudEvent[Any]:
    """An event ready to publish: fresh uuid id, current UTC time, data type checked."""
    expected = data_type_for(type_)
    if type(data) is not expected:
        raise ValueError(f"{type_!r} carries {expected.__name__}, not {type(data).__name__}")
    return CloudEvent(
        id=event_id or str(uuid.uuid4()),
        type=type_,
        source=source,
        subject=subject,
        time=time or datetime.now(UTC),
        data=data,
    )


def decode_cloud_event(body: bytes, type_: str | None = None) -> CloudEvent[Any]:
    """Decode with the data type of ``type_`` (the routing key), or of the body's ``type``."""
    # Read the type first so a body routed under another key fails as a mismatch, not as a
    # confusing validation error against the wrong data type.
    body_type = decoder(_EventType).decode(body).type
    if type_ is not None and body_type != type_:
        raise ValueError(f"body says type {body_type!r} but was routed as {type_!r}")
    event: CloudEvent[Any] = decoder(_GENERIC_EVENT[data_type_for(body_type)]).decode(body)
    return event


def encode_cloud_event(event: CloudEvent[Any]) -> bytes:
    return encode(event)
