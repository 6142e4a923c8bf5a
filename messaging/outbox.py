"""Transactional outbox: `Outbox.add` in the caller's transaction, `OutboxRelay` publishes.

The relay wakes on LISTEN/NOTIFY (the insert notifies at commit, so there is no polling delay on
the hot path), on every broker (re)connect, and on a slow fallback poll. Only one relay of a
schema publishes: the one holding the schema's relay lock, a session-level advisory lock taken
on the connection it listens on; the others stand by and bid for the lock whenever they wake,
so one takes over when the leader's connection ends. The leader publishes the due rows in table
order and marks them sent after the broker confirmed them — two statements per batch, and no
transaction open (nor connection held) while it waits for the broker. A Postgres outage between
the confirm and the mark is waited out, and the rows are marked when it is over. Delivery is at
least once: a row published but not yet marked when its relay dies (or loses its lock, and
another relay leads meanwhile) is published again by the next leader.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg

from messaging import db, metrics
from messaging.broker import Broker
from messaging.errors import BrokerUnavailable
from messaging.logs import get_logger
from messaging.message import OutgoingMessage
from messaging.tasks import cancel_and_wait

log = get_logger(__name__)

_COLUMNS = (
    "message_id",
    "exchange",
    "routing_key",
    "type",
    "app_id",
    "correlation_id",
    "subject",
    "reply_to",
    "headers",
    "body",
    "created_at",
)
_TYPES = ("text",) * 8 + ("jsonb", "bytea", "timestamptz")  # of the columns above


def _unnest(first: int) -> str:
    """The outbox columns as `unnest($first::text[], …)`, with two more arrays for filling in."""
    arrays = [f"${first + i}::{kind}[]" for i, kind in enumerate((*_TYPES, "int", "int"))]
    names = ", ".join((*_COLUMNS, "fill_at", "fill_length"))
    return f"unnest({', '.join(arrays)}) AS m ({names})"


def _insert_sql(first: int, *, fill: str | None = None, source: str | None = None) -> str:
    body = "m.body"
    if fill is not None:
        body = (
            "CASE WHEN m.fill_at = 0 THEN m.body ELSE overlay(m.body PLACING"
            f" convert_to({fill}, 'UTF8') FROM m.fill_at FOR m.fill_length) END"
        )
    values = ", ".join(f"m.{c}" if c != "body" else body for c in _COLUMNS)
    sources = _unnest(first) if source is None else f"{source}, {_unnest(first)}"
    return f"INSERT INTO outbox ({', '.join(_COLUMNS)}) SELECT {values} FROM {sources}"


# One round trip: the rows and the NOTIFY (a data-modifying CTE runs even though the outer
# SELECT does not read it). The notification is delivered at commit, and only if it commits.
_INSERT = f"WITH written AS ({_insert_sql(1)}) SELECT pg_notify($14, '')"


def notify_channel(schema: str) -> str:
    return f"outbox_{db.check_schema_name(schema)}"


class Outbox:
    """Writes messages into the service schema's outbox table, inside a caller's transaction."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self.channel = notify_channel(schema)

    async def add(self, conn: db.Connection, *messages: OutgoingMessage) -> None:
        if not messages:
            return
        if not conn.is_in_transaction():
            raise RuntimeError("Outbox.add must run inside the transaction of the state change")
        await conn.execute(_INSERT, *_columns(messages, None), self.channel)

    def rows(
        self, messages: Sequence[OutgoingMessage], *, placeholder: bytes | None = None
    ) -> OutboxRows:
        """`messages` for a statement that writes them itself (see `OutboxRows`). With a
        `placeholder`, each body is searched for it; its first occurrence is filled in."""
        return OutboxRows(_columns(messages, placeholder), self.channel)


@dataclass(frozen=True, slots=True)
class OutboxRows:
    """Messages as the parameters of an outbox INSERT, for a state change written together
    with its messages in ONE statement: such a statement needs no transaction around it, so
    the locks it takes are held while Postgres runs it, not across round trips."""

    columns: list[list[Any]]
    #: The relay's NOTIFY channel: the statement must `pg_notify(channel, '')`.
    channel: str

    def insert_sql(self, first: int, *, fill: str | None = None, source: str | None = None) -> str:
        """`INSERT INTO outbox …` over parameters `$first` to `$first + 12` (`columns`), as a
        term of the caller's data-modifying CTE.

        `fill` is an SQL text expression over `source` (a CTE of that statement, e.g. the
        inserted row) for a value the statement itself decides, such as a gap-free number taken
        from a locked counter: it replaces the placeholder in the bodies that carry one. The
        rows are written once per row of `source`, so none when it has none."""
        return _insert_sql(first, fill=fill, source=source)


def _columns(messages: Sequence[OutgoingMessage], placeholder: bytes | None) -> list[list[Any]]:
    """One array per column of `_unnest`, the messages in order."""
    columns: list[list[Any]] = [[] for _ in range(len(_COLUMNS) + 2)]
    for m in messages:
        at = m.body.find(placeholder) + 1 if placeholder else 0
        row = (
            m.message_id,
            m.exchange,
            m.routing_key,
            m.type,
            m.app_id,
            m.correlation_id,
            m.subject,
            m.reply_to,
            dict(m.headers),
            m.body,
            m.timestamp,
            at,
            len(placeholder) if at and placeholder else 0,
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


def _message_of(row: asyncpg.Record) -> OutgoingMessage:
    return OutgoingMessage(
        message_id=row["message_id"],
        exchange=row["exchange"],
        routing_key=row["routing_key"],
        type=row["type"],
        app_id=row["app_id"],
        correlation_id=row["correlation_id"],
        subject=row["subject"],
        reply_to=row["reply_to"],
        headers=row["headers"] or {},
        body=row["body"],
        timestamp=row["created_at"],
    )


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        broker: Broker,
        *,
        dsn: str,
        schema: str,
        batch_size: int = 500,
        poll_interval: float = 5.0,
        max_attempts: int = 10,
        retention: timedelta = timedelta(days=1),
    ) -> None:
        self._pool = pool
        self._broker = broker
        self._dsn = dsn
        self._schema = schema
        self._channel = notify_channel(schema)
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._max_attempts = max_attempts
        self._retention = retention
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        #: The LISTEN connection, which holds the relay lock while this relay leads.
        self._session: asyncpg.Connection | None = None
        self._leading = False
        self.published = 0
        broker.on_connect(self._on_broker_connect)

    async def _on_broker_connect(self, _: object) -> None:
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name=f"outbox-listen:{self._schema}"),
            asyncio.create_task(self._run(), name=f"outbox-relay:{self._schema}"),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []

    async def _listen(self) -> None:
        delay = 0.2
        while True:
            try:
                conn = await asyncpg.connect(self._dsn)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("outbox listener cannot reach postgres", error=repr(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = 0.2
            closed = asyncio.Event()
            try:
                conn.add_termination_listener(lambda _, closed=closed: closed.set())
                await conn.add_listener(self._channel, lambda *_: self._wake.set())
                self._session = conn
                self._wake.set()  # catch up on what was written while not listening
                await closed.wait()
                log.warning("outbox listener lost its connection")
            finally:
                # The server ends the session and with it the lock: another relay may lead now.
                self._session, self._leading = None, False
                with contextlib.suppress(Exception):
                    await conn.close()

    async def _run(self) -> None:
        purge_every, rounds = 100, 0
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11, wait_for swallows a cancellation
            # that arrives as the event is set, and stop() would wait for this task forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval):
                    await self._wake.wait()
            self._wake.clear()
            if not self._broker.is_connected:
                continue
            try:
                while await self.publish_pending() >= self._batch_size:
                    pass
                rounds += 1
                if rounds % purge_every == 1:
                    await self.purge_sent()
            except Exception as exc:
                if not db.is_connection_error(exc):
                    log.exception("outbox relay failed")
                else:
                    log.warning("outbox relay cannot reach postgres", error=repr(exc))
                await asyncio.sleep(1.0)

    async def _lead(self) -> bool:
        """Whether this relay publishes: it holds the relay lock, or takes it now if free."""
        session = self._session
        if session is None or session.is_closed():
            self._leading = False
        elif not self._leading:
            self._leading = bool(
                await session.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", self._channel)
            )
            if self._leading:
                log.info("outbox relay leads", schema=self._schema)
        return self._leading

    async def publish_pending(self) -> int:
        """Publish one batch of due rows; returns how many it published or recorded a failure
        for (0 if another relay leads, nothing is due, or the broker is unreachable)."""
        if not await self._lead():
            return 0
        async with db.acquire(self._pool) as conn:
            rows = await conn.fetch(
                "SELECT * FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL"
                " AND next_attempt_at <= now() ORDER BY id LIMIT $1",
                self._batch_size,
            )
        if not rows:
            return 0
        outcomes = await self._broker.publish_many([_message_of(r) for r in rows])
        # What the broker confirmed has happened: a Postgres outage now is waited out, so that
        # the rows are marked when it is back rather than published again.
        await db.outlast_outage(
            lambda: self._record(rows, outcomes),
            waiting="outbox relay holds the broker's confirms until postgres is back",
            schema=self._schema,
        )
        # Rows left waiting for the broker do not count: the caller must not spin on them.
        return sum(not isinstance(o, BrokerUnavailable) for o in outcomes)

    async def _record(
        self, rows: Sequence[asyncpg.Record], outcomes: Sequence[BaseException | None]
    ) -> None:
        """Mark what the broker confirmed as sent, and count an attempt for what it refused.
        Safe to run again after a lost connection: every statement sets absolute values, and
        the figures are counted once all of them went through."""
        sent = [r["id"] for r, error in zip(rows, outcomes, strict=True) if error is None]
        refused = [
            (row, error, row["attempts"] + 1)
            for row, error in zip(rows, outcomes, strict=True)
            # BrokerUnavailable is not the message's fault: it waits, attempts unchanged.
            if error is not None and not isinstance(error, BrokerUnavailable)
        ]
        async with db.acquire(self._pool) as conn:
            if sent:
                await conn.execute(
                    "UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[])", sent
                )
            for row, error, attempts in refused:
                await conn.execute(
                    "UPDATE outbox SET attempts = $2, last_error = $3,"
                    " next_attempt_at = now() + $4::interval,"
                    " failed_at = CASE WHEN $5 THEN now() END WHERE id = $1",
                    row["id"],
                    attempts,
                    repr(error),
                    timedelta(seconds=min(2**attempts, 300)),
                    attempts >= self._max_attempts,
                )
        self.published += len(sent)
        metrics.PUBLISHED.labels(self._schema).inc(len(sent))
        for row, error, attempts in refused:
            metrics.PUBLISH_FAILURES.labels(self._schema).inc()
            given_up = attempts >= self._max_attempts
            (log.error if given_up else log.warning)(
                "outbox message not accepted by the broker",
                message_id=row["message_id"],
                exchange=row["exchange"],
                routing_key=row["routing_key"],
                attempts=attempts,
                given_up=given_up,
                error=repr(error),
            )

    async def purge_sent(self) -> int:
        """Forget rows confirmed longer ago than the retention period."""
        async with db.acquire(self._pool) as conn:
            status: str = await conn.execute(
                "DELETE FROM outbox WHERE sent_at < now() - $1::interval", self._retention
            )
        return int(status.split()[-1])

    async def due(self) -> int:
        """Rows to publish now (not those waiting for a retry later)."""
        async with db.acquire(self._pool) as conn:
            count: int = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL"
                " AND next_attempt_at <= now()"
            )
        return count

    async def backlog(self) -> tuple[int, float]:
        """(rows waiting, age in seconds of the oldest) — for readiness and metrics."""
        async with db.acquire(self._pool) as conn:
            row = await conn.fetchrow(
                "SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(created_at)), 0)"
                " AS age FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL"
            )
        assert row is not None
        return int(row["n"]), float(row["age"])
