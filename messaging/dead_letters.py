"""Dead letters: what consumers gave up on, listed and replayed.

A consumer writes a dead letter itself (with the reason) when a message cannot be decoded or keeps
failing. The broker dead-letters on its own only when a message exceeds the queue's delivery
limit (it kept killing its consumer); `drain_consumer` moves those from `<queue>.dead-letter`
into the same table. Replay puts the original message back on its queue through the outbox, so
it is as reliable as any other publish, and the consumer's inbox still protects against doubles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from contracts.topology import Queue
from messaging import db
from messaging.consumer import Consumer, RetryPolicy, _insert_dead_letter
from messaging.message import Delivery, OutgoingMessage
from messaging.outbox import Outbox

REPLAY_HEADER = "x-replayed-dead-letter"
_BROKER_HEADERS = (
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    "x-delivery-count",
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    queue: str
    message_id: str
    exchange: str
    routing_key: str
    type: str | None
    correlation_id: str | None
    reason: str
    attempts: int
    failed_at: datetime
    replayed_at: datetime | None
    replay_count: int
    body: bytes

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> DeadLetter:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


async def list_dead_letters(
    conn: db.Connection,
    *,
    queue: str | None = None,
    include_replayed: bool = False,
    limit: int = 100,
    after_id: int = 0,
) -> list[DeadLetter]:
    rows = await conn.fetch(
        "SELECT * FROM dead_letters WHERE ($1::text IS NULL OR queue = $1)"
        " AND ($2 OR replayed_at IS NULL) AND id > $3 ORDER BY id LIMIT $4",
        queue,
        include_replayed,
        after_id,
        limit,
    )
    return [DeadLetter.from_row(r) for r in rows]


async def replay_dead_letters(
    conn: db.Connection,
    outbox: Outbox,
    *,
    app_id: str,
    ids: Sequence[int] | None = None,
    queue: str | None = None,
) -> list[int]:
    """Send dead letters back to the queue they failed on (not to every queue bound to their
    exchange); returns the ids replayed. Runs in the caller's transaction, or its own."""
    async with conn.transaction():
        rows = await conn.fetch(
            "SELECT * FROM dead_letters WHERE replayed_at IS NULL"
            " AND ($1::bigint[] IS NULL OR id = ANY($1)) AND ($2::text IS NULL OR queue = $2)"
            " ORDER BY id FOR UPDATE SKIP LOCKED",
            list(ids) if ids is not None else None,
            queue,
        )
        messages = [_replay_message(row, app_id) for row in rows]
        await outbox.add(conn, *messages)
        replayed = [row["id"] for row in rows]
        await conn.execute(
            "UPDATE dead_letters SET replayed_at = now(), replay_count = replay_count + 1"
            " WHERE id = ANY($1::bigint[])",
            replayed,
        )
    return replayed


def _replay_message(row: asyncpg.Record, app_id: str) -> OutgoingMessage:
    headers: dict[str, Any] = {
        k: v
        for k, v in (row["headers"] or {}).items()
        if k not in _BROKER_HEADERS and not k.startswith("cloudEvents:")
    }
    headers[REPLAY_HEADER] = str(row["id"])
    subject = (row["headers"] or {}).get("cloudEvents:subject")
    return OutgoingMessage(
        exchange="",
        routing_key=row["queue"],
        body=row["body"],
        message_id=row["message_id"],
        type=row["type"] or row["routing_key"],
        app_id=row["app_id"] or app_id,
        correlation_id=row["correlation_id"],
        reply_to=row["reply_to"],
        subject=subject if isinstance(subject, str) else None,
        headers=headers,
    )


def _death_reason(delivery: Delivery) -> str:
    reason = delivery.headers.get("x-first-death-reason") or "dead-lettered by the broker"
    if isinstance(reason, bytes):
        reason = reason.decode()
    if reason == "delivery_limit":
        return (
            "delivery limit exceeded: the message kept failing its consumer (crash or lost"
            " connection while handling it)"
        )
    return f"dead-lettered by the broker: {reason}"


def _origin(delivery: Delivery) -> Delivery:
    """The delivery as it was on the original queue (routing key and exchange of first death)."""
    deaths = delivery.headers.get("x-death")
    first: dict[str, Any] = deaths[0] if isinstance(deaths, list) and deaths else {}
    keys = first.get("routing-keys") or [delivery.routing_key]
    return Delivery(
        queue=str(first.get("queue", delivery.queue.removesuffix(".dead-letter"))),
        message_id=delivery.message_id,
        exchange=str(first.get("exchange", "")),
        routing_key=str(keys[0]),
        body=delivery.body,
        type=delivery.type,
        correlation_id=delivery.correlation_id,
        reply_to=delivery.reply_to,
        app_id=delivery.app_id,
        headers=delivery.headers,
    )


async def _store(conn: db.Connection, delivery: Delivery, _: None) -> None:
    await _insert_dead_letter(
        conn, _origin(delivery), _death_reason(delivery), attempts=max(delivery.delivery_count, 1)
    )


def _death_key(delivery: Delivery) -> str:
    # The same message may be dead-lettered again after a replay: count the deaths in the key.
    deaths = delivery.headers.get("x-death")
    count = deaths[0].get("count", 1) if isinstance(deaths, list) and deaths else 1
    return f"{delivery.message_id}#{count}#{delivery.headers.get(REPLAY_HEADER, '')}"


def drain_consumer(queue: Queue, pool: asyncpg.Pool) -> Consumer[None]:
    """Consumes `<queue>.dead-letter` into the `dead_letters` table."""
    return Consumer(
        queue.dead_letter_spec(),
        pool=pool,
        decode=lambda _: None,
        handle=_store,
        prefetch=50,
        retry=RetryPolicy(max_attempts=10),
        idempotency_key=_death_key,
    )
