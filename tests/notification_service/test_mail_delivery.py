"""Mail over a real SMTP server: recipient, content in text and HTML, one mail per message."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from contracts.bookworm import PlaceOrderCommand
from messaging.settings import RuntimeSettings
from notification_service.smtp_sink import SmtpSink
from tests.notification_service.builders import (
    Bus,
    complete_order,
    created,
    email,
    place_order,
    shipped,
)
from tests.notification_service.conftest import (
    duplicates_dropped,
    handled,
    mail_rows,
    mails_to,
    parts,
)
from tests.support import auth, eventually


async def test_a_place_order_command_mails_the_customer_in_text_and_html(
    client: AsyncTestClient[Any], smtp: SmtpSink, publish: Bus
) -> None:
    order_id, customer = uuid.uuid4(), email()
    await publish.command(place_order(order_id, customer, "Ada <Lovelace> & Co", total="42.5"))

    [mail] = await eventually(lambda: _async(mails_to(smtp, customer)), lambda m: len(m) == 1)

    assert mail["Subject"] == "We received your order"
    assert mail["X-Commerce-Order-Id"] == str(order_id)
    assert mail["Message-ID"]
    text, html = parts(mail)
    assert "Hello Ada <Lovelace> & Co," in text
    assert "Total: 42.50" in text
    assert "Hello Ada &lt;Lovelace&gt; &amp; Co," in html
    assert "<Lovelace>" not in html
    assert "<td>42.50</td>" in html


async def test_a_duplicate_delivery_sends_one_mail(
    client: AsyncTestClient[Any],
    smtp: SmtpSink,
    publish: Bus,
    database: asyncpg.Connection,
    namespaced: RuntimeSettings,
) -> None:
    order_id, customer = uuid.uuid4(), email()
    command = place_order(order_id, customer, "Grace Hopper")
    dropped = duplicates_dropped(namespaced, "notification-place-order")
    await publish.command(command)
    await publish.command(command)  # the same message id: a redelivery

    # The consumer counts the copy it drops: once it has, both copies were handled.
    await eventually(
        lambda: _async(duplicates_dropped(namespaced, "notification-place-order")),
        lambda count: count == dropped + 1,
    )
    rows = await eventually(
        lambda: mail_rows(database, order_id), lambda rows: [r["status"] for r in rows] == ["sent"]
    )
    assert [(r["template"], r["message_id"]) for r in rows] == [("order_received", str(command.id))]
    assert [m["Subject"] for m in mails_to(smtp, customer)] == ["We received your order"]


async def test_the_saga_resending_place_order_sends_one_mail_per_order(
    client: AsyncTestClient[Any], smtp: SmtpSink, publish: Bus, database: asyncpg.Connection
) -> None:
    """On every timeout the saga re-sends PlaceOrderCommand with a new message id (up to
    SAGA_MAX_ATTEMPTS); the customer is told once that the order was received."""
    order_id, customer = uuid.uuid4(), email()
    commands = [place_order(order_id, customer, "Alan Kay") for _ in range(3)]
    assert len({c.id for c in commands}) == 3
    for command in commands:
        await publish.command(command)

    await eventually(lambda: _all_handled(database, commands), bool)
    rows = await eventually(
        lambda: mail_rows(database, order_id), lambda rows: [r["status"] for r in rows] == ["sent"]
    )
    assert rows[0]["template"] == "order_received"
    assert [m["Subject"] for m in mails_to(smtp, customer)] == ["We received your order"]

    # Another order of the same customer is another mail.
    second_order = uuid.uuid4()
    await publish.command(place_order(second_order, customer, "Alan Kay"))
    await eventually(lambda: _async(mails_to(smtp, customer)), lambda m: len(m) == 2)


async def test_a_customer_address_no_mail_can_carry_fails_alone(
    client: AsyncTestClient[Any], smtp: SmtpSink, publish: Bus, database: asyncpg.Connection
) -> None:
    """The checkout accepts `ü@example.com`; its mail fails for good, the others go on."""
    first, bad_order, last = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    first_customer, last_customer = email(), email()
    await publish.command(place_order(first, first_customer, "Kurt"))
    await publish.command(place_order(bad_order, "ü@example.com", "Kurt"))
    await publish.command(place_order(last, last_customer, "Kurt"))

    rows = await eventually(
        lambda: mail_rows(database, bad_order),
        lambda rows: [r["status"] for r in rows] == ["failed"],
    )
    assert "NonASCIILocalPartDefect" in rows[0]["last_error"]
    customers = [first_customer, last_customer]
    await eventually(
        lambda: _async({c: len(mails_to(smtp, c)) for c in customers}),
        lambda counts: counts == dict.fromkeys(customers, 1),
    )


async def test_order_event_mails_use_the_contact_and_the_order_number(
    client: AsyncTestClient[Any], smtp: SmtpSink, publish: Bus
) -> None:
    order_id, customer = uuid.uuid4(), email()
    await publish.command(place_order(order_id, customer, "Linus"))
    await eventually(lambda: _async(mails_to(smtp, customer)), lambda m: len(m) == 1)

    await publish.event("order.created", created(order_id, number="ORD-2025-0042"))
    await publish.event("order.shipped", shipped(order_id, tracking="1ZTRACK42"))
    await publish.command(complete_order(order_id, customer, "Linus"))

    mails = await eventually(lambda: _async(mails_to(smtp, customer)), lambda m: len(m) == 4)
    by_subject = {m["Subject"]: m for m in mails}
    assert set(by_subject) == {
        "We received your order",
        "Your order ORD-2025-0042 is created",
        "Your order ORD-2025-0042 has shipped",
        "Your order ORD-2025-0042 is complete",
    }
    text, html = parts(by_subject["Your order ORD-2025-0042 has shipped"])
    assert "Hello Linus," in text
    assert "Carrier: UPS" in text
    assert "Tracking number: 1ZTRACK42" in text
    assert "Estimated delivery: 2025-11-26" in text
    assert "<td>1ZTRACK42</td>" in html
    created_text, _ = parts(by_subject["Your order ORD-2025-0042 is created"])
    assert "Total: 42.50 USD" in created_text


async def test_get_notifications_lists_the_mails_of_an_order(
    client: AsyncTestClient[Any], smtp: SmtpSink, publish: Bus
) -> None:
    order_id, customer = uuid.uuid4(), email()
    await publish.command(place_order(order_id, customer, "Ken"))
    await publish.event("order.created", created(order_id, number="ORD-2025-0100"))

    async def listed() -> Any:
        response = await client.get(
            "/notifications", params={"order_id": str(order_id)}, headers=auth()
        )
        assert response.status_code == 200
        return response.json()

    body = await eventually(
        listed, lambda b: [n["status"] for n in b["notifications"]] == ["sent", "sent"]
    )
    assert body["order_id"] == str(order_id)
    # Two queues, so either mail may come first; the order number is in both once known.
    by_template = {n["template"]: n for n in body["notifications"]}
    assert set(by_template) == {"order_received", "order_created"}
    received = by_template["order_received"]
    assert received["recipient"] == customer
    assert received["subject"] in {"We received your order", "We received your order ORD-2025-0100"}
    assert received["sent_at"] is not None
    assert received["attempts"] == 1
    assert by_template["order_created"]["recipient"] == customer
    assert by_template["order_created"]["subject"] == "Your order ORD-2025-0100 is created"


async def test_notifications_need_a_key_and_a_valid_order_id(
    client: AsyncTestClient[Any],
) -> None:
    order_id = str(uuid.uuid4())
    response = await client.get("/notifications", params={"order_id": order_id})
    assert response.status_code == 401
    response = await client.get("/notifications", params={"order_id": "nope"}, headers=auth())
    assert response.status_code == 400
    response = await client.get("/notifications", params={"order_id": order_id}, headers=auth())
    assert response.json() == {"order_id": order_id, "notifications": []}


async def _async(value: Any) -> Any:
    return value


async def _all_handled(database: asyncpg.Connection, commands: list[PlaceOrderCommand]) -> bool:
    return all([await handled(database, command.id) for command in commands])


async def test_the_openapi_document_describes_both_endpoints(client: AsyncTestClient[Any]) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/notifications" in paths
    summary = paths["/analytics/summary"]["get"]
    assert {p["name"] for p in summary["parameters"]} >= {"from", "to"}
