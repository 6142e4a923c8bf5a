"""Periodic jobs: the mail sender and the sweep for waiting mail. Safe on several replicas.

The sender locks a batch of due mail with `FOR UPDATE SKIP LOCKED` and keeps the lock while it
talks to the SMTP server, so another replica never sends the same mail; it marks each mail sent
or schedules its next attempt (exponential backoff) in that same transaction. Delivery is at
least once: a crash between the server's acceptance and the commit sends that mail again, with
the same Message-ID.
"""

from __future__ import annotations

from messaging import db
from messaging.logs import get_logger
from notification_service.adapters import repository
from notification_service.adapters.smtp import SmtpMailer
from notification_service.config import MailPolicy
from notification_service.domain.mail import after_failure
from notification_service.handlers import resolve_waiting

log = get_logger(__name__)


async def send_due_mail(pool: db.Pool, mailer: SmtpMailer, policy: MailPolicy) -> int:
    """Send what is due, batch after batch; stop at the first batch the server did not take."""
    sent_total = 0
    while True:
        async with db.acquire(pool) as conn, conn.transaction():
            due = await repository.claim_due(conn, policy.batch_size)
            if not due:
                return sent_total
            outcomes = await mailer.send(due)
            for mail, outcome in zip(due, outcomes, strict=True):
                if outcome.sent:
                    await repository.mark_sent(conn, mail.id)
                    continue
                retry = after_failure(
                    mail.attempts + 1,
                    rejected=outcome.rejected,
                    initial=policy.retry_initial,
                    maximum=policy.retry_max,
                    max_rejections=policy.max_rejections,
                )
                await repository.mark_failed_attempt(
                    conn,
                    mail.id,
                    status=retry.status,
                    delay=retry.delay,
                    error=outcome.error or "",
                )
        sent = sum(1 for o in outcomes if o.sent)
        sent_total += sent
        if sent < len(due):
            log.warning(
                "mail not sent; will retry",
                failed=len(due) - sent,
                error=next(o.error for o in outcomes if not o.sent),
            )
            return sent_total
        log.info("mail sent", count=sent)


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
