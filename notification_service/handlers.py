"""Message handlers of the notification service: each runs inside the consumer's transaction,
which also records the message id. A mail is keyed by its order (or return) and template, so it
exists once whatever the number of messages, or copies of a message, that ask for it.

Waiting for a contact. Order events carry no e-mail address; the checkout event
(`UserCheckedOutIntegrationEvent`, on the service's own `notification_order_consumer.contacts`)
and the saga commands do. An order event that arrives before its order's contact is not retried
by raising (the runtime's budget is 5 attempts before the dead-letter table, and the contact may
take minutes): its mail is written at once as `waiting_for_contact`, with the values the
template needs. When a message brings the contact, the same transaction renders every waiting
mail of the order and makes it `pending`. Two transactions committing at the same moment can
still miss each other (each sees the other's rows only after commit), so
`jobs.resolve_waiting_mail` sweeps for waiting mail whose contact is known. No mail is ever
dropped for want of a contact.
"""

from __future__ import annotations

import uuid
from typing import Any

from contracts.bookworm import (
    CancelOrderCommand,
    CompleteOrderCommand,
    PlaceOrderCommand,
    UserCheckedOutIntegrationEvent,
)
from contracts.order_events import OrderEvent, ReturnRequestedData
from messaging import db
from messaging.errors import PermanentError
from messaging.logs import get_logger
from messaging.message import Delivery
from notification_service.adapters import repository
from notification_service.domain import mail as rules
from notification_service.domain.templates import render

log = get_logger(__name__)


async def on_order_event(conn: db.Connection, delivery: Delivery, event: OrderEvent[Any]) -> None:
    """`notification_order_consumer`: learn about the order, then write its mail."""
    try:
        request = rules.plan_order_event(event)
    except rules.NotMailable as exc:
        raise PermanentError(str(exc)) from exc
    if request.order_id is None and request.return_id is not None:
        order_id = await repository.order_of_return(conn, request.return_id)
        request = rules.MailRequest(
            request.template, order_id, request.params, return_id=request.return_id
        )
    if request.order_id is not None:
        await repository.record_order(
            conn,
            request.order_id,
            organization_id=event.organization_id,
            order_number=rules.order_number_of(event),
            currency=rules.currency_of(event),
        )
    await enqueue(conn, request, delivery.message_id, organization_id=event.organization_id)


async def on_return_requested(
    conn: db.Connection, delivery: Delivery, event: OrderEvent[Any]
) -> None:
    """`notification_order_consumer.returns`: which order a return belongs to."""
    data = event.data
    if not isinstance(data, ReturnRequestedData):
        raise PermanentError(f"expected return.requested, got {event.event!r}")
    try:
        order_id = rules.parse_order_id(data.order_id)
    except rules.NotMailable as exc:
        raise PermanentError(str(exc)) from exc
    await repository.record_order(
        conn, order_id, organization_id=event.organization_id, order_number=None, currency=None
    )
    await repository.record_return(conn, data.return_id, order_id, event.organization_id)
    await resolve_waiting(conn, order_id)


async def on_checkout(
    conn: db.Connection, delivery: Delivery, event: UserCheckedOutIntegrationEvent
) -> None:
    """`notification_order_consumer.contacts`: the order's contact as soon as the customer
    checks out, so that order-event mail need not wait for the saga's first command."""
    contact = rules.contact_of(event)
    if contact is None:
        log.info("checkout names no e-mail address", order_id=str(event.order_id))
        return
    await repository.upsert_contact(conn, event.order_id, contact, event.creation_date)
    await resolve_waiting(conn, event.order_id)


async def on_saga_command(
    conn: db.Connection,
    delivery: Delivery,
    command: PlaceOrderCommand | CompleteOrderCommand | CancelOrderCommand,
) -> None:
    """`notification-{place,complete,cancel}-order`: the contact, and the command's own mail."""
    request = rules.plan_command(command)
    if request.contact is not None:
        await repository.upsert_contact(
            conn, command.order_id, request.contact, command.creation_date
        )
    await enqueue(conn, request, delivery.message_id, organization_id=None)
    if request.contact is not None:
        await resolve_waiting(conn, command.order_id)


async def enqueue(
    conn: db.Connection,
    request: rules.MailRequest,
    message_id: str,
    *,
    organization_id: str | None,
) -> None:
    """Write the mail, rendered if its recipient is known, else waiting for the contact."""
    contact = request.contact
    known = None
    if request.order_id is not None:
        known = await repository.known_order(conn, request.order_id)
        organization_id = organization_id or known.organization_id
        if contact is None:
            contact = await repository.contact_for(conn, request.order_id)
    rendered = None
    if contact is not None and known is not None:
        rendered = render(request.template, request.params, contact, known.facts)
    mail_id = await repository.insert_mail(
        conn,
        repository.NewMail(
            dedup_key=request.dedup_key(),
            message_id=message_id,
            template=request.template,
            params=request.params,
            order_id=request.order_id,
            return_id=request.return_id,
            organization_id=organization_id,
            recipient=contact.email if rendered is not None and contact is not None else None,
            rendered=rendered,
        ),
    )
    log.info(
        "mail queued" if rendered is not None else "mail waits for its contact",
        mail_id=mail_id,
        template=str(request.template),
        duplicate=mail_id is None,
    )


async def resolve_waiting(
    conn: db.Connection, order_id: uuid.UUID, *, skip_locked: bool = False
) -> int:
    """Render and release the order's waiting mails if its contact is known now."""
    contact = await repository.contact_for(conn, order_id)
    if contact is None:
        return 0
    waiting = await repository.lock_waiting_mails(conn, order_id, skip_locked=skip_locked)
    if not waiting:
        return 0
    facts = (await repository.known_order(conn, order_id)).facts
    for mail in waiting:
        rendered = render(mail.template, mail.params, contact, facts)
        await repository.make_ready(conn, mail.id, contact.email, rendered)
    log.info("waiting mail released", order_id=str(order_id), mails=len(waiting))
    return len(waiting)
