"""Which mail a message asks for, and the rules of the mail outbox. Pure: no I/O.

Every mail is keyed by (message id, template), so a redelivered message asks for the same mail
again and the outbox's unique key turns it into nothing.

A mail needs a recipient. The saga commands carry one (`email`, `fullName`); the order events do
not, so their mails take it from the contact projection (the last command seen for the order).
A mail whose contact is not known yet is kept as `waiting_for_contact` — never dropped — and
becomes `pending` as soon as the contact arrives.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from contracts.bookworm import CancelOrderCommand, CompleteOrderCommand, PlaceOrderCommand
from contracts.order_events import (
    OrderConfirmedData,
    OrderCreatedData,
    OrderDeliveredData,
    OrderEvent,
    OrderShippedData,
    ReturnApprovedData,
)

Params = dict[str, str | None]


class Template(StrEnum):
    ORDER_CREATED = "order_created"
    ORDER_RECEIVED = "order_received"
    ORDER_CONFIRMED = "order_confirmed"
    ORDER_SHIPPED = "order_shipped"
    ORDER_DELIVERED = "order_delivered"
    ORDER_COMPLETED = "order_completed"
    ORDER_CANCELLED = "order_cancelled"
    RETURN_APPROVED = "return_approved"


class MailStatus(StrEnum):
    WAITING_FOR_CONTACT = "waiting_for_contact"
    PENDING = "pending"
    SENT = "sent"
    #: The SMTP server refused the mail itself (5xx) `max_rejections` times; kept, not deleted.
    FAILED = "failed"


class NotMailable(ValueError):
    """The message cannot lead to a mail (e.g. an order id that is not a UUID)."""


@dataclass(frozen=True, slots=True)
class Contact:
    email: str
    full_name: str | None = None


@dataclass(frozen=True, slots=True)
class MailRequest:
    """One mail a message asks for. `order_id` is None only for a return whose order is not
    known yet (`return.approved` names the return, not the order)."""

    template: Template
    order_id: uuid.UUID | None
    params: Params
    return_id: str | None = None
    #: The recipient the message itself names (saga commands), else None.
    contact: Contact | None = None

    def dedup_key(self, message_id: str) -> str:
        return f"{message_id}:{self.template}"


def parse_order_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotMailable(f"order id {value!r} is not a UUID") from None


def _text(value: object) -> str | None:
    return None if value is None else str(value)


# -- order events ---------------------------------------------------------------------------------


def plan_order_event(event: OrderEvent[Any]) -> MailRequest:
    """The mail of one `notification_order_consumer` event."""
    data = event.data
    match data:
        case OrderCreatedData():
            return MailRequest(
                Template.ORDER_CREATED,
                parse_order_id(data.order_id),
                {
                    "order_number": data.order_number,
                    "total": _text(data.total_amount),
                    "currency": data.currency,
                    "items_count": str(data.items_count),
                },
            )
        case OrderConfirmedData():
            return MailRequest(
                Template.ORDER_CONFIRMED,
                parse_order_id(data.order_id),
                {
                    "order_number": data.order_number,
                    "confirmed_at": data.confirmed_at.isoformat(),
                    "items_count": str(sum(item.quantity for item in data.items)),
                },
            )
        case OrderShippedData():
            return MailRequest(
                Template.ORDER_SHIPPED,
                parse_order_id(data.order_id),
                {
                    "carrier": data.carrier,
                    "tracking_number": data.tracking_number,
                    "shipped_at": data.shipped_at.isoformat(),
                    "estimated_delivery": data.estimated_delivery.isoformat(),
                },
            )
        case OrderDeliveredData():
            return MailRequest(
                Template.ORDER_DELIVERED,
                parse_order_id(data.order_id),
                {"delivered_at": data.delivered_at.isoformat()},
            )
        case ReturnApprovedData():
            return MailRequest(
                Template.RETURN_APPROVED,
                None,
                {
                    "rma_number": data.rma_number,
                    "refund_amount": _text(data.refund_amount),
                    "return_shipping_label_url": data.return_shipping_label_url,
                },
                return_id=data.return_id,
            )
    raise NotMailable(f"no mail for {event.event!r}")


def order_number_of(event: OrderEvent[Any]) -> str | None:
    number = getattr(event.data, "order_number", None)
    return number if isinstance(number, str) else None


def currency_of(event: OrderEvent[Any]) -> str | None:
    currency = getattr(event.data, "currency", None)
    return currency if isinstance(currency, str) else None


# -- saga commands --------------------------------------------------------------------------------

SagaCommand = PlaceOrderCommand | CompleteOrderCommand | CancelOrderCommand

_COMMAND_TEMPLATES: dict[type[SagaCommand], Template] = {
    PlaceOrderCommand: Template.ORDER_RECEIVED,
    CompleteOrderCommand: Template.ORDER_COMPLETED,
    CancelOrderCommand: Template.ORDER_CANCELLED,
}


def contact_of(command: SagaCommand) -> Contact | None:
    email = (command.email or "").strip()
    if not email:
        return None
    full_name = (command.full_name or "").strip() or None
    return Contact(email, full_name)


def plan_command(command: SagaCommand) -> MailRequest:
    return MailRequest(
        _COMMAND_TEMPLATES[type(command)],
        command.order_id,
        {"total": _text(command.total_money)},
        contact=contact_of(command),
    )


# -- retries -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Retry:
    status: MailStatus
    delay: timedelta


def after_failure(
    attempts: int,
    *,
    rejected: bool,
    initial: float,
    maximum: float,
    max_rejections: int,
) -> Retry:
    """What becomes of a mail after its `attempts`-th failed attempt.

    An unreachable server is waited out forever (mail is never dropped); a mail the server
    refuses outright is given up after `max_rejections` attempts."""
    if rejected and attempts >= max_rejections:
        return Retry(MailStatus.FAILED, timedelta(0))
    seconds = min(initial * 2 ** max(attempts - 1, 0), maximum)
    return Retry(MailStatus.PENDING, timedelta(seconds=seconds))
