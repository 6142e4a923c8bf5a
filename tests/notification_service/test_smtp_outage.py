"""The SMTP server down, then up: mail waits with backoff and is delivered once."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from notification_service.smtp_sink import SmtpSink
from tests.notification_service.builders import Bus, email, place_order
from tests.notification_service.conftest import mail_rows, mails_to
from tests.support import eventually


async def _rows(conn: asyncpg.Connection, order_ids: list[uuid.UUID]) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = []
    for order_id in order_ids:
        rows += await mail_rows(conn, order_id)
    return rows


async def _delivered(sink: SmtpSink, recipients: list[str]) -> dict[str, int]:
    return {r: len(mails_to(sink, r)) for r in recipients}


def _retried(rows: list[asyncpg.Record], count: int) -> bool:
    return len(rows) == count and all(
        r["status"] == "pending" and r["attempts"] >= 2 and r["last_error"] for r in rows
    )


async def test_mail_waits_while_smtp_is_down_and_is_delivered_once_when_it_is_back(
    client: AsyncTestClient[Any], mailbox: SmtpSink, publish: Bus, database: asyncpg.Connection
) -> None:
    assert not mailbox.running  # nothing listens on the service's SMTP port yet
    orders = [uuid.uuid4() for _ in range(3)]
    customers = [email() for _ in orders]
    for order_id, customer in zip(orders, customers, strict=True):
        await publish.command(place_order(order_id, customer, "Down Time"))

    await eventually(lambda: _rows(database, orders), lambda rows: _retried(rows, 3))

    mailbox.start()
    await eventually(
        lambda: _delivered(mailbox, customers), lambda d: d == dict.fromkeys(customers, 1)
    )
    rows = await eventually(
        lambda: _rows(database, orders), lambda rows: {r["status"] for r in rows} == {"sent"}
    )
    assert all(r["last_error"] is None and r["sent_at"] for r in rows)

    # Down again, mid-run: the next mail waits, the ones sent before are not sent again.
    mailbox.stop()
    late_order, late_customer = uuid.uuid4(), email()
    await publish.command(place_order(late_order, late_customer, "Down Again"))
    await eventually(lambda: _rows(database, [late_order]), lambda rows: _retried(rows, 1))
    mailbox.start()

    everyone = [*customers, late_customer]
    await eventually(
        lambda: _delivered(mailbox, everyone), lambda d: d == dict.fromkeys(everyone, 1)
    )
    await eventually(
        lambda: _rows(database, [late_order]), lambda rows: rows[0]["status"] == "sent"
    )
    assert await _delivered(mailbox, everyone) == dict.fromkeys(everyone, 1)
