"""Idempotent, batching consumer with retries and dead-lettering.

For every delivery: decode (a body that cannot be decoded is dead-lettered at once), then in ONE
Postgres transaction record the message id in `inbox` and run the handler, which writes its
effects and any outgoing messages (outbox) on the same connection. The ack is sent only after
that transaction committed; a message whose id is already in the inbox is acknowledged with no
second effect.

Up to `batch_size` deliveries that are already waiting are handled in one transaction, which
amortises the commit. If anything in a batch fails, the batch is rolled back and its messages
are handled one by one, so one bad message never takes others with it.

Failures: a lost Postgres connection is waited out (retried without limit, nothing acked);
any other error is retried with exponential backoff up to `max_attempts`, then the message is
written to `dead_letters` with the reason and acknowledged, and the consumer goes on.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import asyncpg
import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from contracts.topology import Queue
from messaging import db, metrics
from messaging.broker import close_quietly
from messaging.errors import PermanentError
from messaging.logs import get_logger
from messaging.message import Delivery
from messaging.tasks import cancel_and_wait
from messaging.topology import declare_queue

log = get_logger(__name__)

T = TypeVar("T")
Decode = Callable[[Delivery], T]
Handle = Callable[[db.Connection, Delivery, T], Awaitable[None]]
#: Called once per transaction, before the handlers, with the payloads about to be handled
#: (duplicates and poison left out) — e.g. to lock every row the batch touches in one
#: consistent order, so that parallel workers never deadlock.
Prepare = Callable[[db.Connection, list[T]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    initial_delay: float = 0.1
    max_delay: float = 5.0


@dataclass(slots=True)
class ConsumerStats:
    handled: int = 0
    duplicates: int = 0
    retried: int = 0
    dead_lettered: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Pending(Generic[T]):
    message: AbstractIncomingMessage
    delivery: Delivery
    payload: T | None = None
    poison: str | None = None


class Consumer(Generic[T]):
    def __init__(
        self,
        queue: Queue,
        *,
        pool: asyncpg.Pool,
        decode: Decode[T],
        handle: Handle[T],
        prefetch: int = 100,
        batch_size: int = 1,
        workers: int = 1,
        retry: RetryPolicy | None = None,
        idempotency_key: Callable[[Delivery], str] | None = None,
        declare: bool = True,
        prepare: Prepare[T] | None = None,
    ) -> None:
        if batch_size < 1 or workers < 1 or prefetch < batch_size:
            raise ValueError("need batch_size >= 1, workers >= 1 and prefetch >= batch_size")
        self.queue = queue
        self._pool = pool
        self._decode = decode
        self._handle = handle
        self._prefetch = prefetch
        self._batch_size = batch_size
        self._workers = workers
        self._retry = retry or RetryPolicy()
        self._key = idempotency_key or (lambda d: d.message_id)
        self._declare = declare
        self._prepare_batch = prepare
        self._buffer: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._channel: AbstractChannel | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.stats = ConsumerStats()

    @property
    def name(self) -> str:
        return self.queue.name

    # -- attach / detach, called by the broker on every (re)connect -------------------------------

    async def attach(self, connection: AbstractConnection) -> None:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=self._prefetch)
        amqp_queue = (
            await declare_queue(channel, self.queue)
            if self._declare
            else await channel.get_queue(self.queue.name, ensure=True)
        )
        self._channel = channel
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._work(), name=f"consumer:{self.name}:{i}")
                for i in range(self._workers)
            ]
        await amqp_queue.consume(self._buffer.put, no_ack=False)
        log.info(
            "consuming",
            queue=self.name,
            prefetch=self._prefetch,
            batch_size=self._batch_size,
            workers=self._workers,
        )

    async def detach(self) -> None:
        """The connection is gone: what is buffered will be redelivered, so drop it."""
        self._channel = None
        while not self._buffer.empty():
            self._buffer.get_nowait()

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []
        if self._channel is not None and not self._channel.is_closed:
            await close_quietly(self._channel)
        await self.detach()

    # -- the work loop ----------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            batch = [await self._buffer.get()]
            while len(batch) < self._batch_size and not self._buffer.empty():
                batch.append(self._buffer.get_nowait())
            try:
                await self._process([self._prepare(m) for m in batch])
            except asyncio.CancelledError:
                raise
            except Exception:  # never let one batch stop the consumer
                log.exception(
                    "consumer batch crashed; messages will be redelivered", queue=self.name
                )

    def _prepare(self, message: AbstractIncomingMessage) -> _Pending[T]:
        delivery = Delivery.from_amqp(self.name, message)
        pending: _Pending[T] = _Pending(message, delivery)
        try:
            pending.payload = self._decode(delivery)
        except Exception as exc:
            pending.poison = f"undecodable: {exc}"
        return pending

    async def _process(self, batch: list[_Pending[T]]) -> None:
        if len(batch) > 1:
            try:
                outcomes = await self._until_postgres(lambda: self._transaction(batch))
            except Exception:
                for pending in batch:  # find the culprit: each message alone
                    await self._process_one(pending)
                return
            await self._finish(batch, outcomes, attempts=1)
        else:
            await self._process_one(batch[0])

    async def _process_one(self, pending: _Pending[T]) -> None:
        attempts, outcomes = 0, ["handled"]
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self._retry.max_attempts),
                wait=wait_exponential(
                    multiplier=self._retry.initial_delay, max=self._retry.max_delay
                )
                + wait_random(0, self._retry.initial_delay),
                retry=retry_if_exception(lambda e: not isinstance(e, PermanentError)),
                reraise=True,
            ):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    if attempts > 1:
                        self.stats.retried += 1
                        metrics.RETRIES.labels(self.name).inc()
                    outcomes = await self._until_postgres(lambda: self._transaction([pending]))
        except Exception as exc:
            await self._dead_letter(pending, _describe(exc), attempts)
            return
        await self._finish([pending], outcomes, attempts)

    async def _until_postgres(self, work: Callable[[], Awaitable[list[str]]]) -> list[str]:
        """Run `work`, waiting out any Postgres outage: that is never the message's fault."""
        return await db.outlast_outage(
            work, waiting="postgres unreachable; holding messages", queue=self.name
        )

    async def _transaction(self, batch: list[_Pending[T]]) -> list[str]:
        """One transaction for the whole batch; returns each message's outcome."""
        outcomes: list[str] = []
        with metrics.BATCH_SECONDS.labels(self.name).time():
            async with db.acquire(self._pool) as conn, conn.transaction():
                fresh = await self._record_ids(conn, batch)
                for pending in batch:
                    key = self._key(pending.delivery)
                    if pending.poison is not None:
                        outcomes.append("dead_lettered")
                    elif key in fresh:
                        fresh.discard(key)  # a second copy in the same batch is a duplicate
                        outcomes.append("handled")
                    else:
                        outcomes.append("duplicate")
                work = [p for p, o in zip(batch, outcomes, strict=True) if o == "handled"]
                if self._prepare_batch is not None and work:
                    payloads = [p.payload for p in work]
                    await self._prepare_batch(conn, payloads)  # type: ignore[arg-type]
                for pending, outcome in zip(batch, outcomes, strict=True):
                    if outcome == "dead_lettered":
                        assert pending.poison is not None
                        await _insert_dead_letter(conn, pending.delivery, pending.poison, 1)
                    elif outcome == "handled":
                        context = pending.delivery.log_context()
                        with structlog.contextvars.bound_contextvars(**context):
                            await self._handle(conn, pending.delivery, pending.payload)  # type: ignore[arg-type]
        return outcomes

    async def _record_ids(self, conn: db.Connection, batch: list[_Pending[T]]) -> set[str]:
        """Record the batch's message ids in the inbox in one statement; returns the new ones."""
        keys = [self._key(p.delivery) for p in batch if p.poison is None]
        if not keys:
            return set()
        rows = await conn.fetch(
            "INSERT INTO inbox (consumer, message_id) SELECT $1, unnest($2::text[])"
            " ON CONFLICT DO NOTHING RETURNING message_id",
            self.name,
            keys,
        )
        return {row["message_id"] for row in rows}

    async def _finish(self, batch: list[_Pending[T]], outcomes: list[str], attempts: int) -> None:
        # The batch's acks leave together. Awaited one after another, each waits for the
        # connection's writer task to put it on the wire — a turn of the event loop apiece,
        # which on a busy service held the worker for tens of milliseconds per batch.
        await asyncio.gather(*(self._ack(pending.message) for pending in batch))
        for pending, outcome in zip(batch, outcomes, strict=True):
            self._count(outcome)
            fields = pending.delivery.log_context()
            if outcome == "dead_lettered":
                log.error(
                    "message dead-lettered", reason=pending.poison, attempts=attempts, **fields
                )
            else:
                log.info("message " + outcome, attempts=attempts, **fields)

    async def _dead_letter(self, pending: _Pending[T], reason: str, attempts: int) -> None:
        async def write() -> list[str]:
            async with db.acquire(self._pool) as conn, conn.transaction():
                await _insert_dead_letter(conn, pending.delivery, reason, attempts)
            return ["dead_lettered"]

        await self._until_postgres(write)
        pending.poison = reason
        await self._finish([pending], ["dead_lettered"], attempts)

    async def _ack(self, message: AbstractIncomingMessage) -> None:
        try:
            await message.ack()
        except Exception as exc:  # the channel went away after commit: redelivery is a no-op
            log.info(
                "ack lost with the channel; the redelivery will be deduplicated",
                message_id=message.message_id,
                error=repr(exc),
            )

    def _count(self, outcome: str) -> None:
        metrics.MESSAGES.labels(self.name, outcome).inc()
        self.stats.by_outcome[outcome] = self.stats.by_outcome.get(outcome, 0) + 1
        if outcome == "handled":
            self.stats.handled += 1
        elif outcome == "duplicate":
            self.stats.duplicates += 1
        else:
            self.stats.dead_lettered += 1


def _describe(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


async def _insert_dead_letter(
    conn: db.Connection, delivery: Delivery, reason: str, attempts: int
) -> None:
    await conn.execute(
        "INSERT INTO dead_letters (queue, message_id, exchange, routing_key, type, app_id,"
        " correlation_id, reply_to, headers, body, reason, attempts)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        delivery.queue,
        delivery.message_id,
        delivery.exchange,
        delivery.routing_key,
        delivery.type,
        delivery.app_id,
        delivery.correlation_id,
        delivery.reply_to,
        _jsonable(delivery.headers),
        delivery.body,
        reason,
        attempts,
    )


def _jsonable(value: object) -> object:
    """AMQP header tables hold bytes, datetimes and nested tables; keep them as JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
