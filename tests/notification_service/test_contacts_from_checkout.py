"""The contact from the checkout (`UserCheckedOutIntegrationEvent`, on the service's own
`notification_order_consumer.contacts`): order-event mail need not wait for the saga."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from notification_service.smtp_sink import SmtpSink
from tests.notification_service.builders import (
    Bus,
    checked_out,
    confirmed,
    created,
    email,
    place_order,
)
from tests.notification_service.conftest import handled, mail_rows, mails_to, parts
from tests.support import eventually


async def _now(value: Any) -> Any:
    return value


async def test_order_event_mail_goes_out_with_the_checkout_contact_and_no_saga_command(
    client: AsyncTestClient[Any], smtp: SmtpSink, publish: Bus, database: asyncpg.Connection
) -> None:
    order_id, customer = uuid.uuid4(), email()
    await publish.event("order.created", created(order_id, number="ORD-2025-0501"))
    await eventually(
        lambda: mail_rows(database, order_id),
        lambda rows: [r["status"] for r in rows] == ["waiting_for_contact"],
    )

    # The waiting mail is released by the checkout event alone.
    await publish.integration_event(checked_out(order_id, customer, "Margaret Hamilton"))
    [mail] = await eventually(lambda: _now(mails_to(smtp, customer)), lambda m: len(m) == 1)
    assert mail["Subject"] == "Your order ORD-2025-0501 is created"
    text, _ = parts(mail)
    assert "Hello Margaret Hamilton," in text

    # Known before the next order event: its mail is rendered and sent at once.
    await publish.event("order.confirmed", confirmed(order_id, number="ORD-2025-0501"))
    mails = await eventually(lambda: _now(mails_to(smtp, customer)), lambda m: len(m) == 2)
    assert {m["Subject"] for m in mails} == {
        "Your order ORD-2025-0501 is created",
        "Your order ORD-2025-0501 is confirmed",
    }
    # The checkout event itself asks for no mail.
    rows = await mail_rows(database, order_id)
    assert [r["template"] for r in rows] == ["order_created", "order_confirmed"]


async def test_an_older_checkout_never_overwrites_a_newer_contact(
    client: AsyncTestClient[Any], smtp: SmtpSink, publish: Bus, database: asyncpg.Connection
) -> None:
    order_id, old_address, new_address = uuid.uuid4(), email(), email()
    command = place_order(order_id, new_address, "Newer Name")
    await publish.command(command)
    await eventually(lambda: _now(mails_to(smtp, new_address)), lambda m: len(m) == 1)

    late = checked_out(
        order_id, old_address, "Older Name", at=command.creation_date - timedelta(minutes=5)
    )
    await publish.integration_event(late)
    await eventually(lambda: handled(database, late.id), bool)
    contact = await database.fetchrow(
        "SELECT email, full_name FROM contacts WHERE order_id = $1", order_id
    )
    assert contact is not None
    assert (contact["email"], contact["full_name"]) == (new_address, "Newer Name")

    await publish.event("order.created", created(order_id))
    mails = await eventually(lambda: _now(mails_to(smtp, new_address)), lambda m: len(m) == 2)
    assert "Your order ORD-2025-0001 is created" in {m["Subject"] for m in mails}
    assert mails_to(smtp, old_address) == []


async def test_a_checkout_without_an_address_changes_nothing(
    client: AsyncTestClient[Any], publish: Bus, database: asyncpg.Connection
) -> None:
    order_id = uuid.uuid4()
    event = checked_out(order_id, None, "No Mail")
    await publish.integration_event(event)
    await eventually(lambda: handled(database, event.id), bool)
    assert (
        await database.fetchval("SELECT count(*) FROM contacts WHERE order_id = $1", order_id) == 0
    )
    assert await mail_rows(database, order_id) == []
