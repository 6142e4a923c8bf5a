"""Periodic jobs: the mail sender and the sweep for waiting mail. Safe on several replicas.

The sender claims a batch of due mail with a lease: one committed statement makes those mails
not due again for `MailPolicy.lease`, so no other sender (another replica) takes them. Then it
sends them in one SMTP session, one after the other, and records each mail's outcome in a short
transaction of its own right after the server's answer; no transaction is open while it talks
to the server. It starts no mail it could not finish within the lease (what is left is given
back, due at once), so two senders never send the same mail at the same time.

Delivery is at least once, with a window of one mail: if the process dies between the server's
acceptance of a mail and the record of it, that one mail is sent again once its lease ends, with
the same Message-ID. The mails claimed with it and not sent yet are due again after the lease,
as if never claimed. Losing the database there is not such a window: the server's answer is
held and recorded as soon as Postgres answers again, and nothing more is sent meanwhile. Only
an outage longer than the lease lets another replica take that mail and send it again.
"""

from __future__ import annotations

import time
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from functools import partial
from typing import Protocol

from messaging import db
from messaging.logs import get_logger
from notification_service.adapters import repository
from notification_service.adapters.repository import DueMail
from notification_service.adapters.smtp import Outcome
from notification_service.config import MailPolicy
from notification_service.domain.mail import Failure, MailStatus, after_failure
from notification_service.handlers import resolve_waiting

log = get_logger(__name__)


class MailSession(Protocol):
    """One session with the mail server (`adapters.smtp.SmtpSession`)."""

    @property
    def down(self) -> Outcome | None:
        """Once the server is out of reach: the outcome of every further mail."""

    async def send(self, mail: DueMail) -> Outcome: ...


class Mailer(Protocol):
    """What the sender needs of the mail server (`adapters.smtp.SmtpMailer`)."""

    @property
    def longest_send(self) -> float:
        """Seconds one mail may take at most."""

    def session(self) -> AbstractAsyncContextManager[MailSession]: ...


async def send_due_mail(pool: db.Pool, mailer: Mailer, policy: MailPolicy) -> int:
    """Send what is due, batch after batch, until nothing is due or a batch is not sent whole
    (a mail failed, the server is out of reach or too slow for the lease); returns how many
    mails were sent."""
    sent_total = 0
    while True:
        # Read before the claim: the lease ends no earlier than `lease` after this moment.
        claimed_at = time.monotonic()
        async with db.acquire(pool) as conn:
            due = await repository.claim_due(
                conn, policy.batch_size, timedelta(seconds=policy.lease)
            )
        if not due:
            return sent_total
        deadline = claimed_at + policy.lease - mailer.longest_send
        sent, more = await _send_batch(pool, mailer, policy, due, deadline)
        sent_total += sent
        if not more:
            return sent_total


async def _send_batch(
    pool: db.Pool, mailer: Mailer, policy: MailPolicy, due: list[DueMail], deadline: float
) -> tuple[int, bool]:
    """Send `due` in one session, recording each outcome as it comes; returns how many were
    sent and whether to go on with the next batch."""
    sent = 0
    async with mailer.session() as session:
        for index, mail in enumerate(due):
            if session.down is not None:
                async with db.acquire(pool) as conn, conn.transaction():
                    for rest in due[index:]:
                        await _record(conn, rest, session.down, policy)
                break
            if time.monotonic() > deadline:
                async with db.acquire(pool) as conn:
                    await repository.release(conn, [m.id for m in due[index:]])
                log.warning(
                    "SMTP server too slow for the lease; mail given back",
                    given_back=len(due) - index,
                )
                break
            outcome = await session.send(mail)
            await db.outlast_outage(
                partial(_record_alone, pool, mail, outcome, policy),
                waiting="postgres unreachable; holding the outcome of a mail",
                mail_id=mail.id,
            )
            sent += outcome.sent
    if sent:
        log.info("mail sent", count=sent)
    if session.down is not None:
        log.warning(
            "SMTP server out of reach; mail will be retried",
            error=session.down.error,
            not_sent=len(due) - sent,
        )
    # Only a batch sent whole is followed by another at once: a mail that failed may be due
    # again already (no backoff configured), and one run must not try it over and over.
    return sent, sent == len(due)


async def _record_alone(pool: db.Pool, mail: DueMail, outcome: Outcome, policy: MailPolicy) -> None:
    """`_record` on a connection of its own, to be tried again after a lost connection: a sent
    mail is marked once whatever the tries; a failure whose commit was lost with the connection
    is counted twice (one more attempt of backoff, never a mail sent twice)."""
    async with db.acquire(pool) as conn:
        await _record(conn, mail, outcome, policy)


async def _record(conn: db.Connection, mail: DueMail, outcome: Outcome, policy: MailPolicy) -> None:
    """The outcome of one attempt: sent, or failed with its backoff or for good."""
    if outcome.sent:
        await repository.mark_sent(conn, mail.id)
        return
    failure = outcome.failure or Failure.TEMPORARY
    retry = after_failure(
        failure,
        attempts=mail.attempts + 1,
        rejections=mail.rejections,
        initial=policy.retry_initial,
        maximum=policy.retry_max,
        max_rejections=policy.max_rejections,
    )
    error = f"{failure}: {outcome.error}"
    await repository.mark_failed_attempt(
        conn,
        mail.id,
        status=retry.status,
        delay=retry.delay,
        rejections=retry.rejections,
        error=error,
    )
    if failure is not Failure.TEMPORARY:
        log.warning(
            "mail failed for good" if retry.status is MailStatus.FAILED else "mail refused",
            mail_id=mail.id,
            order_id=str(mail.order_id) if mail.order_id else None,
            rejections=retry.rejections,
            error=error,
        )


async def resolve_waiting_mail(pool: db.Pool, limit: int = 100) -> int:
    """Release waiting mail whose contact (or return→order mapping) committed concurrently
    with it, which the handlers alone cannot see."""
    async with db.acquire(pool) as conn, conn.transaction():
        await repository.attach_waiting_returns(conn)
        orders = await repository.orders_with_resolvable_mail(conn, limit)
    released = 0
    for order_id in orders:
        async with db.acquire(pool) as conn, conn.transaction():
            released += await resolve_waiting(conn, order_id, skip_locked=True)
    return released
