"""The mail sender (`jobs.send_due_mail`) on the live database, against real SMTP servers and a
fake mailer: which failures fail a mail, the lease, and the window of one mail.

No service runs here: each test calls the sender itself, so the only sender is the test's.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiosmtpd.controller import Controller

from messaging import db
from messaging.settings import RuntimeSettings
from notification_service import jobs
from notification_service.adapters.repository import DueMail
from notification_service.adapters.smtp import SENT, Outcome, SmtpMailer
from notification_service.bootstrap import SCHEMA, migrations
from notification_service.config import MailPolicy, SmtpSettings
from notification_service.smtp_sink import EmlWriter, SmtpSink
from tests.notification_service.builders import email
from tests.notification_service.conftest import free_port, mails_to
from tests.support import (
    Infra,
    eventually,
    local_postgres,
    stop_postgres_for,
    unique,
)

#: No backoff, so that every run of the sender finds the failed mail due again.
AT_ONCE = MailPolicy(retry_initial=0, retry_max=0)


class Outbox:
    """Mails of the test's own in the service's table, due before any other (an old due date)."""

    def __init__(self, pool: db.Pool) -> None:
        self.pool = pool
        self.ids: list[int] = []

    async def add(self, recipient: str) -> int:
        order_id = uuid.uuid4()
        async with db.acquire(self.pool) as conn:
            mail_id: int = await conn.fetchval(
                "INSERT INTO mails (dedup_key, message_id, order_id, template, params, recipient,"
                " subject, text_body, html_body, status, next_attempt_at)"
                " VALUES ($1, $2, $3, 'order_received', '{}', $4, 'We received your order',"
                " 'Hello,\n', '<p>Hello,</p>\n', 'pending', '2000-01-01T00:00:00Z')"
                " RETURNING id",
                f"order:{order_id}:order_received",
                str(uuid.uuid4()),
                order_id,
                recipient,
            )
        self.ids.append(mail_id)
        return mail_id

    async def rows(self) -> dict[int, asyncpg.Record]:
        async with db.acquire(self.pool) as conn:
            rows = await conn.fetch(
                "SELECT *, next_attempt_at > now() AS leased FROM mails WHERE id = ANY($1)",
                self.ids,
            )
        return {r["id"]: r for r in rows}

    async def remove(self) -> None:
        async with db.acquire(self.pool) as conn:
            await conn.execute("DELETE FROM mails WHERE id = ANY($1)", self.ids)


@pytest.fixture
async def pool(namespaced: RuntimeSettings) -> AsyncIterator[db.Pool]:
    schema = namespaced.schema(SCHEMA)
    await db.prepare_schema(namespaced.database_url, schema, migrations())
    pool = await db.create_pool(namespaced.database_url, schema)
    yield pool
    await pool.close()


@pytest.fixture
async def outbox(pool: db.Pool) -> AsyncIterator[Outbox]:
    mails = Outbox(pool)
    yield mails
    await mails.remove()  # nothing of ours is left for another test's sender


def mailer_for(host: str, port: int, **settings: Any) -> SmtpMailer:
    return SmtpMailer(SmtpSettings(host=host, port=port, embedded=False, **settings))


# -- which failures fail a mail ---------------------------------------------------------------


async def test_a_bad_address_fails_alone_and_the_rest_of_its_batch_is_sent_once(
    pool: db.Pool, outbox: Outbox, smtp: SmtpSink
) -> None:
    """Addresses the checkout accepts but no mail can carry, between good ones in one batch."""
    token = unique("")
    bad = [f"ü{token}@example.com", f"a..{token}@example.com", f".{token}@example.com"]
    good = [email() for _ in range(4)]
    good_ids, bad_ids = [await outbox.add(good[0])], []
    for bad_address, good_address in zip(bad, good[1:], strict=True):
        bad_ids.append(await outbox.add(bad_address))
        good_ids.append(await outbox.add(good_address))
    mailer = mailer_for(smtp.host, smtp.port)

    assert await jobs.send_due_mail(pool, mailer, AT_ONCE) >= len(good)
    await jobs.send_due_mail(pool, mailer, AT_ONCE)  # a second run sends nothing again

    assert {r: len(mails_to(smtp, r)) for r in good} == dict.fromkeys(good, 1)
    rows = await outbox.rows()
    assert [rows[i]["status"] for i in good_ids] == ["sent"] * len(good)
    for mail_id in bad_ids:
        row = rows[mail_id]
        assert (row["status"], row["attempts"], row["sent_at"]) == ("failed", 1, None)
        assert row["last_error"].startswith("unsendable: cannot build the mail: ")


class _RefusingSomeRecipients(EmlWriter):
    """An SMTP server that refuses `nobody-…` (550) and defers `busy-…` (451)."""

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.startswith("nobody-"):
            return "550 5.1.1 no such user"
        if address.startswith("busy-"):
            return "451 4.7.1 greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@asynccontextmanager
async def refusing_server(directory: Path) -> AsyncIterator[tuple[str, int]]:
    port = free_port()
    controller = Controller(_RefusingSomeRecipients(directory), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield "127.0.0.1", port
    finally:
        controller.stop()


async def test_a_mail_the_server_refuses_is_given_up_after_its_own_rejections(
    pool: db.Pool, outbox: Outbox, tmp_path: Path
) -> None:
    refused, deferred, fine = unique("nobody-"), unique("busy-"), email()
    refused_id = await outbox.add(f"{refused}@example.com")
    deferred_id = await outbox.add(f"{deferred}@example.com")
    fine_id = await outbox.add(fine)
    policy = MailPolicy(retry_initial=0, retry_max=0, max_rejections=2)
    async with refusing_server(tmp_path) as (host, port):
        mailer = mailer_for(host, port)
        await jobs.send_due_mail(pool, mailer, policy)
        rows = await outbox.rows()
        assert (rows[refused_id]["status"], rows[refused_id]["rejections"]) == ("pending", 1)
        assert rows[fine_id]["status"] == "sent"

        await jobs.send_due_mail(pool, mailer, policy)
        await jobs.send_due_mail(pool, mailer, policy)

    rows = await outbox.rows()
    refused_row, deferred_row = rows[refused_id], rows[deferred_id]
    assert (refused_row["status"], refused_row["rejections"]) == ("failed", 2)
    assert "550" in refused_row["last_error"]
    assert refused_row["last_error"].startswith("rejected: ")
    # A 4xx is not a refusal of the mail: waited out like an outage.
    assert (deferred_row["status"], deferred_row["rejections"]) == ("pending", 0)
    assert deferred_row["attempts"] == 3
    assert "451" in deferred_row["last_error"]
    assert len(mails_to(SmtpSink(tmp_path), fine)) == 1


async def _refuse_session(greeting: bytes, auth: bytes) -> asyncio.Server:
    """A server that refuses the session itself: at its greeting, or when we authenticate."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(greeting)
        while not greeting.startswith(b"5") and (line := await reader.readline()):
            verb = line.split(b" ", 1)[0].strip().upper()
            if verb in (b"EHLO", b"HELO"):
                writer.write(b"250-refusing.example\r\n250 AUTH PLAIN LOGIN\r\n")
            elif verb == b"AUTH":
                writer.write(auth)
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                break
            else:
                writer.write(b"503 bad sequence of commands\r\n")
            await writer.drain()
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


@pytest.mark.parametrize(
    ("greeting", "auth", "code"),
    [
        (b"554 5.3.2 no service for you\r\n", b"", "554"),
        (b"220 refusing.example ESMTP\r\n", b"535 5.7.8 credentials invalid\r\n", "535"),
    ],
    ids=["greeting-554", "auth-535"],
)
async def test_a_server_that_refuses_the_session_never_fails_mail(
    pool: db.Pool, outbox: Outbox, greeting: bytes, auth: bytes, code: str
) -> None:
    """Bad credentials or a server refusing service are outages, not refusals of each mail:
    even with a budget of one rejection, the mail waits (with backoff) for the server."""
    mail_id = await outbox.add(email())
    server = await _refuse_session(greeting, auth)
    host, port = server.sockets[0].getsockname()[:2]
    mailer = mailer_for(host, port, username="commerce", password="wrong", timeout=2.0)
    policy = MailPolicy(retry_initial=0, retry_max=0, max_rejections=1)
    try:
        for _ in range(3):
            assert await jobs.send_due_mail(pool, mailer, policy) == 0
    finally:
        server.close()
        await server.wait_closed()

    row = (await outbox.rows())[mail_id]
    assert (row["status"], row["attempts"], row["rejections"]) == ("pending", 3, 0)
    assert row["last_error"].startswith("temporary: ")
    assert code in row["last_error"]


# -- the lease and the window of one mail -----------------------------------------------------


Send = Callable[[DueMail], Awaitable[Outcome]]


class _FakeSession:
    def __init__(self, answer: Send) -> None:
        self._answer = answer
        self.down: Outcome | None = None

    async def send(self, mail: DueMail) -> Outcome:
        return await self._answer(mail)


@dataclass
class FakeMailer:
    """A mail server that answers with `send`, and remembers what it was given."""

    answer: Send = field(default=lambda mail: _sent(mail))
    longest_send: float = 0.1
    sent: list[int] = field(default_factory=list)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[_FakeSession]:
        async def send(mail: DueMail) -> Outcome:
            outcome = await self.answer(mail)
            self.sent.append(mail.id)
            return outcome

        yield _FakeSession(send)


async def _sent(mail: DueMail) -> Outcome:
    return SENT


async def test_each_outcome_is_recorded_after_its_own_answer_with_no_transaction_open(
    pool: db.Pool, outbox: Outbox, database: asyncpg.Connection
) -> None:
    ids = [await outbox.add(email()) for _ in range(4)]
    seen: list[tuple[int, bool, list[str], int]] = []

    async def look(mail: DueMail) -> Outcome:
        """What another connection sees while the sender waits for the server."""
        before = [i for i in ids if i < mail.id]
        statuses = await database.fetch(
            "SELECT status FROM mails WHERE id = ANY($1) ORDER BY id", before
        )
        claimed = await database.fetchval(
            "SELECT next_attempt_at > now() FROM mails WHERE id = $1", mail.id
        )
        sender = await database.fetchrow(
            "SELECT count(*) AS connections,"
            " count(*) FILTER (WHERE state LIKE 'idle in transaction%') AS in_transaction"
            " FROM pg_stat_activity WHERE application_name = current_schema()"
            " AND pid <> pg_backend_pid()"
        )
        assert sender is not None
        assert sender["connections"] > 0  # the sender's pool is what we look at
        seen.append((mail.id, claimed, [r["status"] for r in statuses], sender["in_transaction"]))
        return SENT

    mailer = FakeMailer(answer=look)
    await jobs.send_due_mail(pool, mailer, MailPolicy(batch_size=50))

    ours = [s for s in seen if s[0] in ids]
    assert [s[0] for s in ours] == ids  # one batch, in order
    for index, (_, claimed, earlier, open_transactions) in enumerate(ours):
        assert claimed, "the claim is committed before the mail is sent"
        assert earlier == ["sent"] * index, "each mail is recorded before the next is sent"
        assert open_transactions == 0
    assert {r["status"] for r in (await outbox.rows()).values()} == {"sent"}


async def test_a_crash_mid_batch_leaves_the_unsent_mail_due_again_after_the_lease(
    pool: db.Pool, outbox: Outbox
) -> None:
    ids = [await outbox.add(email()) for _ in range(5)]
    policy = MailPolicy(lease=1.0, batch_size=50)

    async def crash_on_the_third(mail: DueMail) -> Outcome:
        if mail.id == ids[2]:
            raise RuntimeError("the process dies while the server answers")
        return SENT

    with pytest.raises(RuntimeError, match="process dies"):
        await jobs.send_due_mail(pool, FakeMailer(answer=crash_on_the_third), policy)
    rows = await outbox.rows()
    assert [rows[i]["status"] for i in ids] == ["sent", "sent", "pending", "pending", "pending"]
    assert all(rows[i]["leased"] and rows[i]["attempts"] == 0 for i in ids[2:])

    # Another sender (a replica, or the restarted process) leaves it alone during the lease…
    replica = FakeMailer()
    await jobs.send_due_mail(pool, replica, policy)
    assert not set(replica.sent) & set(ids)

    # …and sends it once the lease is over; what was sent before is not sent again.
    async def ours_sent() -> list[Any]:
        await jobs.send_due_mail(pool, replica, policy)
        return [r["status"] for r in (await outbox.rows()).values()]

    await eventually(ours_sent, lambda statuses: set(statuses) == {"sent"}, timeout=10)
    assert sorted(i for i in replica.sent if i in ids) == ids[2:]


@pytest.mark.postgres_restart
async def test_a_mail_accepted_as_the_database_goes_down_is_recorded_when_it_is_back(
    pool: db.Pool, outbox: Outbox, infra: Infra
) -> None:
    if not local_postgres(infra):
        pytest.skip("needs pg_ctlcluster for the database the tests use")
    ids = [await outbox.add(email()) for _ in range(3)]
    back: list[asyncio.Task[None]] = []

    async def lose_the_database_with_the_second(mail: DueMail) -> Outcome:
        if mail.id == ids[1]:
            # The server has taken the mail; the database is gone before that is recorded.
            back.append(await stop_postgres_for(1.0))
        return SENT

    mailer = FakeMailer(answer=lose_the_database_with_the_second)
    try:
        await jobs.send_due_mail(pool, mailer, MailPolicy(batch_size=50))
    finally:
        await asyncio.gather(*back)
    assert back, "the database was stopped while the batch was sent"

    rows = await outbox.rows()
    assert [rows[i]["status"] for i in ids] == ["sent"] * 3
    assert [rows[i]["attempts"] for i in ids] == [1] * 3
    assert [i for i in mailer.sent if i in ids] == ids  # each once, in order


async def test_no_mail_is_started_that_could_not_be_finished_within_the_lease(
    pool: db.Pool, outbox: Outbox
) -> None:
    ids = [await outbox.add(email()) for _ in range(3)]
    slow = FakeMailer(longest_send=5.0)

    assert await jobs.send_due_mail(pool, slow, MailPolicy(lease=2.0)) == 0

    assert not set(slow.sent) & set(ids)
    rows = await outbox.rows()
    # Given back: due at once, no attempt counted.
    assert [(rows[i]["status"], rows[i]["attempts"], rows[i]["leased"]) for i in ids] == [
        ("pending", 0, False)
    ] * 3


async def test_two_senders_at_once_send_every_mail_once(
    pool: db.Pool, outbox: Outbox, smtp: SmtpSink
) -> None:
    recipients = [email() for _ in range(30)]
    for recipient in recipients:
        await outbox.add(recipient)
    policy = MailPolicy(batch_size=4)
    replicas = [mailer_for(smtp.host, smtp.port) for _ in range(2)]

    started = time.monotonic()
    await asyncio.gather(*(jobs.send_due_mail(pool, mailer, policy) for mailer in replicas))

    assert time.monotonic() - started < policy.lease
    assert {r: len(mails_to(smtp, r)) for r in recipients} == dict.fromkeys(recipients, 1)
    rows = (await outbox.rows()).values()
    assert {(r["status"], r["attempts"]) for r in rows} == {("sent", 1)}
