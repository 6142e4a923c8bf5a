"""BookWorm checkout-saga messages (seed 003): camelCase JSON, one fanout exchange each."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar, overload

import msgspec

from contracts.codec import UnknownMessageError, UtcDateTime, decoder, encode

EXCHANGE_PREFIX = "BookWorm.Contracts:"


class BookWormMessage(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Common metadata. Not omit_defaults: every field of the table is always written."""

    id: uuid.UUID
    creation_date: UtcDateTime


M = TypeVar("M", bound=BookWormMessage)


class UserCheckedOutIntegrationEvent(BookWormMessage, frozen=True, kw_only=True, rename="camel"):
    order_id: uuid.UUID
    basket_id: uuid.UUID
    full_name: str | None = None
    email: str | None
    total_money: Decimal


class BasketDeletedCompleteIntegrationEvent(
    BookWormMessage, frozen=True, kw_only=True, rename="camel"
):
    order_id: uuid.UUID
    basket_id: uuid.UUID
    total_money: Decimal


class BasketDeletedFailedIntegrationEvent(
    BookWormMessage, frozen=True, kw_only=True, rename="camel"
):
    order_id: uuid.UUID
    basket_id: uuid.UUID
    email: str | None
    total_money: Decimal


class OrderStatusChangedToCompleteIntegrationEvent(
    BookWormMessage, frozen=True, kw_only=True, rename="camel"
):
    order_id: uuid.UUID
    basket_id: uuid.UUID
    full_name: str | None = None
    email: str | None
    total_money: Decimal


class OrderStatusChangedToCancelIntegrationEvent(
    BookWormMessage, frozen=True, kw_only=True, rename="camel"
):
    order_id: uuid.UUID
    basket_id: uuid.UUID
    full_name: str | None = None
    email: str | None
    total_money: Decimal


class PlaceOrderCommand(BookWormMessage, frozen=True, kw_only=True, rename="camel"):
    basket_id: uuid.UUID
    full_name: str | None = None
    email: str | None
    order_id: uuid.UUID
    total_money: Decimal


class DeleteBasketCompleteCommand(BookWormMessage, frozen=True, kw_only=True, rename="camel"):
    order_id: uuid.UUID
    total_money: Decimal


class DeleteBasketFailedCommand(BookWormMessage, frozen=True, kw_only=True, rename="camel"):
    basket_id: uuid.UUID
    email: str | None
    order_id: uuid.UUID
    total_money: Decimal


class CompleteOrderCommand(BookWormMessage, frozen=True, kw_only=True, rename="camel"):
    order_id: uuid.UUID
    full_name: str | None = None
    email: str | None
    total_money: Decimal


class CancelOrderCommand(BookWormMessage, frozen=True, kw_only=True, rename="camel"):
    # The seed's example also carries basketId; SPEC 2.2 leaves it out, so decoding ignores it.
    order_id: uuid.UUID
    full_name: str | None = None
    email: str | None
    total_money: Decimal


BOOKWORM_MESSAGES: dict[str, type[BookWormMessage]] = {
    cls.__name__: cls
    for cls in (
        UserCheckedOutIntegrationEvent,
        BasketDeletedCompleteIntegrationEvent,
        BasketDeletedFailedIntegrationEvent,
        OrderStatusChangedToCompleteIntegrationEvent,
        OrderStatusChangedToCancelIntegrationEvent,
        PlaceOrderCommand,
        DeleteBasketCompleteCommand,
        DeleteBasketFailedCommand,
        CompleteOrderCommand,
        CancelOrderCommand,
    )
}


def message_type_for(name: str) -> type[BookWormMessage]:
    try:
        return BOOKWORM_MESSAGES[name]
    except KeyError:
        raise UnknownMessageError(f"unknown BookWorm message {name!r}") from None


def _registered(message: type[BookWormMessage] | str) -> type[BookWormMessage]:
    if isinstance(message, str):
        return message_type_for(message)
    return message_type_for(message.__name__)


def exchange_for(message_type_or_name: type[BookWormMessage] | str) -> str:
    """The fanout exchange of a message, e.g. ``BookWorm.Contracts:PlaceOrderCommand``."""
    return EXCHANGE_PREFIX + _registered(message_type_or_name).__name__


def new_bookworm(cls: type[M], **fields: Any) -> M:
    """A message ready to send: fresh id, creation date now (UTC)."""
    return cls(id=uuid.uuid4(), creation_date=datetime.now(UTC), **fields)


@overload
def decode_bookworm(body: bytes, message: type[M]) -> M: ...
@overload
def decode_bookworm(body: bytes, message: str) -> BookWormMessage: ...
def decode_bookworm(body: bytes, message: type[BookWormMessage] | str) -> BookWormMessage:
    """Decode ``body`` as the given message (type or name; the AMQP ``type`` property)."""
    return decoder(_registered(message)).decode(body)


def encode_bookworm(msg: BookWormMessage) -> bytes:
    return encode(msg)
