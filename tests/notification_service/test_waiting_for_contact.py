"""Order events before their contact: the mail waits, never dropped, and goes once it is known."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from notification_service.smtp_sink import SmtpSink
from tests.notification_service.builders import (
    Bus,
    confirmed,
    created,
    delivered,
    email,
    place_order,
    return_approved,
    return_requested,
)
from tests.notification_service.conftest import handled, mail_rows, mails_to, parts
from tests.support import (
    ADMIN_KEY,
    ORG,
    ORG_KEY,
    OTHER_ORG,
    OTHER_ORG_KEY,
    auth,
    eventually,
    unique,
)


async def _now(value: Any) -> Any:
    return value


async def test_an_order_event_before_its_contact_waits_and_is_sent_when_the_contact_arrives(
    client: AsyncTestClient[Any], smtp: SmtpSink, publish: Bus, database: asyncpg.Connection
) -> None:
    order_id, customer = uuid.uuid4(), email()
    await publish.event("order.created", created(order_id, number="ORD-2025-0777"))
    await publish.event("order.confirmed", confirmed(order_id, number="ORD-2025-0777"))

    waiting = await eventually(lambda: mail_rows(database, order_id), lambda rows: len(rows) == 2)
    assert {r["status"] for r in waiting} == {"waiting_for_contact"}
    assert {r["recipient"] for r in waiting} == {None}
    assert {r["organization_id"] for r in waiting} == {ORG}

    await publish.command(place_order(order_id, customer, "Barbara Liskov"))

    mails = await eventually(lambda: _now(mails_to(smtp, customer)), lambda m: len(m) == 3)
    assert sorted(m["Subject"] for m in mails) == [
        "We received your order ORD-2025-0777",
        "Your order ORD-2025-0777 is confirmed",
        "Your order ORD-2025-0777 is created",
    ]
    confirmed_mail = next(m for m in mails if m["Subject"].endswith("is confirmed"))
    text, html = parts(confirmed_mail)
    assert "Hello Barbara Liskov," in text
    assert "Items: 2" in text
    assert "<td>ORD-2025-0777</td>" in html
    rows = await eventually(
        lambda: mail_rows(database, order_id),
        lambda rows: [r["status"] for r in rows] == ["sent"] * 3,
    )
    assert {r["recipient"] for r in rows} == {customer}


async def test_a_command_without_email_leaves_its_mail_waiting_for_a_later_contact(
    client: AsyncTestClient[Any], smtp: SmtpSink, publish: Bus, database: asyncpg.Connection
) -> None:
    order_id, customer = uuid.uuid4(), email()
    await publish.command(place_order(order_id, None, None))
    [row] = await eventually(lambda: mail_rows(database, order_id), lambda rows: len(rows) == 1)
    assert row["status"] == "waiting_for_contact"

    retry = place_order(order_id, customer, None)  # the saga's retry, with email
    await publish.command(retry)

    # The retry brings the contact for the waiting mail and asks for no second one.
    await eventually(lambda: handled(database, retry.id), bool)
    rows = await eventually(
        lambda: mail_rows(database, order_id), lambda rows: [r["status"] for r in rows] == ["sent"]
    )
    assert rows[0]["recipient"] == customer
    [mail] = mails_to(smtp, customer)
    assert mail["Subject"] == "We received your order"
    text, _ = parts(mail)
    assert text.startswith("Hello,\n")


async def test_return_approved_reaches_the_customer_of_its_order_whatever_comes_first(
    client: AsyncTestClient[Any], smtp: SmtpSink, publish: Bus, database: asyncpg.Connection
) -> None:
    order_id, customer, return_id = uuid.uuid4(), email(), unique("ret_")
    await publish.command(place_order(order_id, customer, "Edsger"))
    # return.approved names only the return; the order comes with return.requested, later.
    await publish.event("return.approved", return_approved(return_id))
    await eventually(
        lambda: database.fetch("SELECT status FROM mails WHERE return_id = $1", return_id),
        lambda rows: [r["status"] for r in rows] == ["waiting_for_contact"],
    )
    await publish.event("return.requested", return_requested(order_id, return_id))

    mails = await eventually(lambda: _now(mails_to(smtp, customer)), lambda m: len(m) == 2)
    approved = next(m for m in mails if m["Subject"] == "Your return RMA-2025-0007 is approved")
    text, html = parts(approved)
    assert "Refund: 19.99" in text
    assert "Return shipping label: https://labels.example.com/rma?id=7&x=<y>" in text
    assert '<a href="https://labels.example.com/rma?id=7&amp;x=&lt;y&gt;">' in html
    assert approved["X-Commerce-Order-Id"] == str(order_id)


async def _listed(client: AsyncTestClient[Any], order_id: uuid.UUID, key: str) -> list[Any]:
    response = await client.get(
        "/notifications", params={"order_id": str(order_id)}, headers=auth(key)
    )
    assert response.status_code == 200
    notifications: list[Any] = response.json()["notifications"]
    return notifications


async def test_mails_are_listed_to_the_organization_of_their_order_only(
    client: AsyncTestClient[Any], smtp: SmtpSink, publish: Bus, database: asyncpg.Connection
) -> None:
    order_id, customer = uuid.uuid4(), email()

    # A saga command names no organization: until an order event does, the mail is nobody's.
    await publish.command(place_order(order_id, customer, "Tony"))
    await eventually(lambda: mail_rows(database, order_id), lambda rows: len(rows) == 1)
    assert await _listed(client, order_id, OTHER_ORG_KEY) == []
    assert await _listed(client, order_id, ORG_KEY) == []

    await publish.event("order.delivered", delivered(order_id))
    mails = await eventually(lambda: _listed(client, order_id, ORG_KEY), lambda n: len(n) == 2)
    assert {m["template"] for m in mails} == {"order_received", "order_delivered"}
    assert await _listed(client, order_id, OTHER_ORG_KEY) == []

    other_order = uuid.uuid4()
    await publish.event("order.created", created(other_order), organization_id=OTHER_ORG)
    # Handled once its mail (waiting for a contact) is written; only its organization sees it.
    await eventually(lambda: mail_rows(database, other_order), lambda rows: len(rows) == 1)
    assert await _listed(client, other_order, ORG_KEY) == []
    [mail] = await _listed(client, other_order, OTHER_ORG_KEY)
    assert mail["template"] == "order_created"


async def test_a_mail_with_no_organization_is_listed_only_to_the_known_owner_of_its_order(
    client: AsyncTestClient[Any], database: asyncpg.Connection
) -> None:
    """A mail written before the order's organization reached it (a command and an order
    event committing together) is listed to the organization the order belongs to."""
    order_id, unknown_order = uuid.uuid4(), uuid.uuid4()
    await database.execute(
        "INSERT INTO orders (order_id, organization_id) VALUES ($1, $2)", order_id, ORG
    )
    for order in (order_id, unknown_order):
        await database.execute(
            "INSERT INTO mails (dedup_key, message_id, order_id, template, status)"
            " VALUES ($1, $2, $3, 'order_delivered', 'waiting_for_contact')",
            f"order:{order}:order_delivered",
            str(uuid.uuid4()),
            order,
        )

    [mail] = await _listed(client, order_id, ORG_KEY)
    assert mail["template"] == "order_delivered"
    assert await _listed(client, order_id, OTHER_ORG_KEY) == []
    # An order no order event has named yet: its mail is nobody's.
    assert await _listed(client, unknown_order, ORG_KEY) == []
    assert await _listed(client, unknown_order, OTHER_ORG_KEY) == []


async def test_the_sweep_releases_mail_whose_contact_committed_alongside_it(
    client: AsyncTestClient[Any], smtp: SmtpSink, database: asyncpg.Connection
) -> None:
    """Two transactions committing together (an order event's waiting mail, a command's
    contact) cannot see each other's rows; the periodic sweep finds and sends such mail."""
    order_id, customer = uuid.uuid4(), email()
    await database.execute(
        "INSERT INTO mails (dedup_key, message_id, order_id, template, params, status)"
        " VALUES ($1, $2, $3, 'order_delivered', $4, 'waiting_for_contact')",
        f"{uuid.uuid4()}:order_delivered",
        str(uuid.uuid4()),
        order_id,
        {"delivered_at": "2025-11-26T14:30:00+00:00"},
    )
    await database.execute(
        "INSERT INTO contacts (order_id, email, full_name, updated_at) VALUES ($1, $2, $3, now())",
        order_id,
        customer,
        "Frances Allen",
    )

    [mail] = await eventually(lambda: _now(mails_to(smtp, customer)), lambda m: len(m) == 1)
    assert mail["Subject"] == "Your order was delivered"
    text, _ = parts(mail)
    assert "Delivered at: 2025-11-26T14:30:00+00:00" in text


async def test_an_order_id_that_is_not_a_uuid_is_dead_lettered_with_the_reason(
    client: AsyncTestClient[Any], publish: Bus
) -> None:
    event = await publish.event("order.delivered", delivered("order_456"))

    async def dead_letters() -> list[Any]:
        response = await client.get(
            "/dead-letters", params={"include_replayed": "true"}, headers=auth(ADMIN_KEY)
        )
        assert response.status_code == 200
        return [d for d in response.json() if d["message_id"] == str(event.id)]

    [letter] = await eventually(dead_letters, lambda found: len(found) == 1)
    assert letter["queue"].endswith("notification_order_consumer")
    assert "not a UUID" in letter["reason"]
    assert letter["attempts"] == 1
