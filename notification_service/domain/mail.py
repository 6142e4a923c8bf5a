"""Which mail a message asks for, and the rules of the mail outbox. Pure: no I/O.

Every mail is keyed by its order (its return, for return mail) and its template: each customer
mail exists once per order, however many messages ask for it. The saga re-sends
PlaceOrderCommand with a new message id on every timeout, and a redelivered message asks for the
same mail again; the outbox's unique key turns both into nothing.

A mail needs a recipient. The checkout (`UserCheckedOutIntegrationEvent`) and the saga commands
carry one (`email`, `fullName`); the order events do not, so their mails take it from the
contact projection (the newest of those messages seen for the order). A mail whose contact is
not known yet is kept as `waiting_for_contact` — never dropped — and becomes `pending` as soon
as the contact arrives.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from contracts.bookworm import (
    CancelOrderCommand,
    CompleteOrderCommand,
    PlaceOrderCommand,
    UserCheckedOutIntegrationEvent,
)
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
    #: Given up: the SMTP server refused the mail itself (5xx) `max_rejections` times, or the
    #: mail cannot be sent at all (e.g. an address no SMTP message can carry). Kept, not deleted;
    #: `last_error` says why.
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

    def dedup_key(self) -> str:
        """The mail's identity: one per order and template, one per return for return mail."""
        if self.return_id is not None:
            return f"return:{self.return_id}:{self.template}"
        if self.order_id is None:
            raise NotMailable("a mail names its order or its return")
        return f"order:{self.order_id}:{self.template}"


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


#: Messages that name the customer of an order.
ContactSource = SagaCommand | UserCheckedOutIntegrationEvent


def contact_of(message: ContactSource) -> Contact | None:
    email = (message.email or "").strip()
    if not email:
        return None
    full_name = (message.full_name or "").strip() or None
    return Contact(email, full_name)


def plan_command(command: SagaCommand) -> MailRequest:
    return MailRequest(
        _COMMAND_TEMPLATES[type(command)],
        command.order_id,
        {"total": _text(command.total_money)},
        contact=contact_of(command),
    )


# -- retries -------------------------------------------------------------------------------------


class Failure(StrEnum):
    """Why an attempt to send a mail did not succeed."""

    #: Nothing is wrong with the mail: the server is unreachable, lost the session, refused the
    #: session itself (greeting, EHLO, STARTTLS, authentication, our sender) or answered 4xx.
    #: Waited out with backoff, without limit.
    TEMPORARY = "temporary"
    #: The server refused this mail (5xx to its recipient or its content).
    REJECTED = "rejected"
    #: The mail cannot be sent at all (an address no SMTP message can carry, a message that
    #: cannot be built): retrying cannot help.
    UNSENDABLE = "unsendable"


@dataclass(frozen=True, slots=True)
class Retry:
    status: MailStatus
    delay: timedelta
    #: The times the server refused the mail itself, this failure included.
    rejections: int


def after_failure(
    failure: Failure,
    *,
    attempts: int,
    rejections: int,
    initial: float,
    maximum: float,
    max_rejections: int,
) -> Retry:
    """What becomes of a mail after a failed attempt.

    `attempts` counts every attempt so far, this one included, and sets the backoff:
    initial * 2^(attempts-1), capped at `maximum`. `rejections` counts the earlier refusals of
    the mail itself: only those count towards `max_rejections`, so neither a long outage nor
    bad SMTP credentials ever fail a mail, while a mail the server keeps refusing is given up.
    A mail that cannot be sent at all fails at once."""
    if failure is Failure.UNSENDABLE:
        return Retry(MailStatus.FAILED, timedelta(0), rejections)
    if failure is Failure.REJECTED:
        rejections += 1
        if rejections >= max_rejections:
            return Retry(MailStatus.FAILED, timedelta(0), rejections)
    seconds = min(initial * 2 ** max(attempts - 1, 0), maximum)
    return Retry(MailStatus.PENDING, timedelta(seconds=seconds), rejections)
