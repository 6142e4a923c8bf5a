"""SQL of the notification schema: contacts, order facts, returns and the mail outbox."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from messaging import db
from notification_service.domain.mail import Contact, MailStatus, Params, Template
from notification_service.domain.templates import OrderFacts, RenderedMail

# -- contacts and order facts -------------------------------------------------------------------


async def upsert_contact(
    conn: db.Connection, order_id: uuid.UUID, contact: Contact, seen_at: datetime
) -> None:
    """Remember the order's contact; a message older than the stored one changes nothing."""
    await conn.execute(
        "INSERT INTO contacts (order_id, email, full_name, updated_at) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (order_id) DO UPDATE SET email = EXCLUDED.email,"
        " full_name = COALESCE(EXCLUDED.full_name, contacts.full_name),"
        " updated_at = EXCLUDED.updated_at"
        " WHERE contacts.updated_at <= EXCLUDED.updated_at",
        order_id,
        contact.email,
        contact.full_name,
        seen_at,
    )


async def contact_for(conn: db.Connection, order_id: uuid.UUID) -> Contact | None:
    row = await conn.fetchrow("SELECT email, full_name FROM contacts WHERE order_id = $1", order_id)
    return None if row is None else Contact(row["email"], row["full_name"])


async def record_order(
    conn: db.Connection,
    order_id: uuid.UUID,
    *,
    organization_id: str | None,
    order_number: str | None,
    currency: str | None,
) -> None:
    """Learn what an order event tells about its order; mails written before the organization
    was known (saga commands carry none) are given it now."""
    await conn.execute(
        "INSERT INTO orders (order_id, organization_id, order_number, currency)"
        " VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (order_id) DO UPDATE SET"
        " organization_id = COALESCE(orders.organization_id, EXCLUDED.organization_id),"
        " order_number = COALESCE(EXCLUDED.order_number, orders.order_number),"
        " currency = COALESCE(EXCLUDED.currency, orders.currency), updated_at = now()",
        order_id,
        organization_id,
        order_number,
        currency,
    )
    if organization_id is not None:
        await conn.execute(
            "UPDATE mails SET organization_id = $2 WHERE order_id = $1 AND organization_id IS NULL",
            order_id,
            organization_id,
        )


@dataclass(frozen=True, slots=True)
class KnownOrder:
    facts: OrderFacts
    organization_id: str | None


async def known_order(conn: db.Connection, order_id: uuid.UUID) -> KnownOrder:
    row = await conn.fetchrow(
        "SELECT organization_id, order_number, currency FROM orders WHERE order_id = $1", order_id
    )
    if row is None:
        return KnownOrder(OrderFacts(), None)
    return KnownOrder(OrderFacts(row["order_number"], row["currency"]), row["organization_id"])


async def record_return(
    conn: db.Connection, return_id: str, order_id: uuid.UUID, organization_id: str | None
) -> None:
    """Map a return to its order, and give waiting mails of that return their order."""
    await conn.execute(
        "INSERT INTO returns (return_id, order_id, organization_id) VALUES ($1, $2, $3)"
        " ON CONFLICT (return_id) DO NOTHING",
        return_id,
        order_id,
        organization_id,
    )
    await conn.execute(
        "UPDATE mails SET order_id = $2 WHERE return_id = $1 AND order_id IS NULL",
        return_id,
        order_id,
    )


async def order_of_return(conn: db.Connection, return_id: str) -> uuid.UUID | None:
    order_id: uuid.UUID | None = await conn.fetchval(
        "SELECT order_id FROM returns WHERE return_id = $1", return_id
    )
    return order_id


# -- the mail outbox ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class NewMail:
    dedup_key: str
    message_id: str
    template: Template
    params: Params
    order_id: uuid.UUID | None
    return_id: str | None
    organization_id: str | None
    #: None: waiting for its contact.
    recipient: str | None = None
    rendered: RenderedMail | None = None


async def insert_mail(conn: db.Connection, mail: NewMail) -> int | None:
    """The mail's id, or None when this mail (its order or return, and template) was already
    written, whichever message asked for it."""
    rendered = mail.rendered
    status = MailStatus.PENDING if rendered is not None else MailStatus.WAITING_FOR_CONTACT
    mail_id: int | None = await conn.fetchval(
        "INSERT INTO mails (dedup_key, message_id, order_id, return_id, organization_id,"
        " template, params, recipient, subject, text_body, html_body, status)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        " ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
        mail.dedup_key,
        mail.message_id,
        mail.order_id,
        mail.return_id,
        mail.organization_id,
        str(mail.template),
        mail.params,
        mail.recipient,
        rendered.subject if rendered else None,
        rendered.text if rendered else None,
        rendered.html if rendered else None,
        str(status),
    )
    return mail_id


@dataclass(frozen=True, slots=True)
class WaitingMail:
    id: int
    template: Template
    params: Params


async def lock_waiting_mails(
    conn: db.Connection, order_id: uuid.UUID, *, skip_locked: bool = False
) -> list[WaitingMail]:
    rows = await conn.fetch(
        "SELECT id, template, params FROM mails"
        " WHERE order_id = $1 AND status = 'waiting_for_contact' ORDER BY id"
        + (" FOR UPDATE SKIP LOCKED" if skip_locked else " FOR UPDATE"),
        order_id,
    )
    return [WaitingMail(r["id"], Template(r["template"]), dict(r["params"])) for r in rows]


async def make_ready(
    conn: db.Connection, mail_id: int, recipient: str, rendered: RenderedMail
) -> None:
    await conn.execute(
        "UPDATE mails SET status = 'pending', recipient = $2, subject = $3, text_body = $4,"
        " html_body = $5, next_attempt_at = now() WHERE id = $1 AND status = 'waiting_for_contact'",
        mail_id,
        recipient,
        rendered.subject,
        rendered.text,
        rendered.html,
    )


async def attach_waiting_returns(conn: db.Connection) -> int:
    """Waiting return mails whose return→order mapping arrived in a concurrent transaction."""
    result: str = await conn.execute(
        "UPDATE mails m SET order_id = r.order_id FROM returns r"
        " WHERE m.return_id = r.return_id AND m.order_id IS NULL"
        " AND m.status = 'waiting_for_contact'"
    )
    return int(result.split()[-1])


async def orders_with_resolvable_mail(conn: db.Connection, limit: int) -> list[uuid.UUID]:
    """Orders that have waiting mail although their contact is known (a commit race)."""
    rows = await conn.fetch(
        "SELECT DISTINCT m.order_id FROM mails m JOIN contacts c ON c.order_id = m.order_id"
        " WHERE m.status = 'waiting_for_contact' LIMIT $1",
        limit,
    )
    return [r["order_id"] for r in rows]


@dataclass(frozen=True, slots=True)
class DueMail:
    id: int
    dedup_key: str
    order_id: uuid.UUID | None
    recipient: str
    subject: str
    text_body: str
    html_body: str
    attempts: int
    rejections: int


async def claim_due(conn: db.Connection, limit: int, lease: timedelta) -> list[DueMail]:
    """Claim up to `limit` due mails, oldest due first: they are not due again for `lease`, so
    no other sender (another replica) takes them meanwhile. Run it outside a transaction: the
    claim must be committed before any mail is sent. The row locks (`SKIP LOCKED`) only keep
    two senders claiming at the same moment from taking the same mail."""
    if conn.is_in_transaction():
        raise RuntimeError("claim_due commits its claim: call it outside a transaction")
    rows = await conn.fetch(
        "WITH due AS (SELECT id FROM mails WHERE status = 'pending' AND next_attempt_at <= now()"
        " ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED)"
        " UPDATE mails m SET next_attempt_at = now() + $2 FROM due WHERE m.id = due.id"
        " RETURNING m.id, m.dedup_key, m.order_id, m.recipient, m.subject, m.text_body,"
        " m.html_body, m.attempts, m.rejections",
        limit,
        lease,
    )
    return sorted((DueMail(**dict(r.items())) for r in rows), key=lambda mail: mail.id)


async def mark_sent(conn: db.Connection, mail_id: int) -> None:
    await conn.execute(
        "UPDATE mails SET status = 'sent', sent_at = now(), attempts = attempts + 1,"
        " last_error = NULL WHERE id = $1 AND status = 'pending'",
        mail_id,
    )


async def mark_failed_attempt(
    conn: db.Connection,
    mail_id: int,
    *,
    status: MailStatus,
    delay: timedelta,
    rejections: int,
    error: str,
) -> None:
    await conn.execute(
        "UPDATE mails SET status = $2, attempts = attempts + 1, rejections = $3,"
        " last_error = $4, next_attempt_at = now() + $5 WHERE id = $1 AND status = 'pending'",
        mail_id,
        str(status),
        rejections,
        error[:2000],
        delay,
    )


async def release(conn: db.Connection, mail_ids: list[int]) -> None:
    """Give claimed mails back unsent, due at once, with no attempt counted."""
    await conn.execute(
        "UPDATE mails SET next_attempt_at = now() WHERE id = ANY($1::bigint[])"
        " AND status = 'pending'",
        mail_ids,
    )


# -- reading ------------------------------------------------------------------------------------


async def mails_of_order(
    conn: db.Connection, organization_id: str, order_id: uuid.UUID
) -> list[dict[str, Any]]:
    """The order's mails the caller may see: those of its organization. A mail with no
    organization of its own (written from a saga command, which names none) is the caller's
    only when the order events told us the order is; until then it is nobody's."""
    rows = await conn.fetch(
        "SELECT m.id, m.order_id, m.template, m.recipient, m.subject, m.status, m.attempts,"
        " m.last_error, m.created_at, m.sent_at"
        " FROM mails m LEFT JOIN orders o ON o.order_id = m.order_id"
        " WHERE m.order_id = $1 AND COALESCE(m.organization_id, o.organization_id) = $2"
        " ORDER BY m.id",
        order_id,
        organization_id,
    )
    return [db.row_dict(r) for r in rows]
