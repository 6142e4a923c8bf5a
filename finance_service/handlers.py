"""The saga's handlers: load → one domain decision → store with the commands (outbox).

Every write goes through `apply`, which is optimistic: the saga is read without a lock, the
domain decides, and the store only accepts the write at the version that was read. When another
replica (or worker) got there first, the saga is read again — in READ COMMITTED each statement
sees what has committed since — and the domain decides again on the fresh state, so no update
is ever lost and every transition is decided on the state it really left.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from contracts.bookworm import BookWormMessage, decode_bookworm
from contracts.topology import BOOKWORM_INTEGRATION_EVENTS, BOOKWORM_PREFIX
from finance_service.adapters import sagas
from finance_service.domain import saga as domain
from finance_service.domain.saga import Decision, Ignored, IntegrationEvent, Saga, SagaPolicy
from messaging import db, envelopes
from messaging.logs import get_logger
from messaging.message import Delivery
from messaging.outbox import Outbox

log = get_logger(__name__)

SERVICE = "finance_service"
#: Conflicts in a row before the message goes back to the consumer's retry (with backoff).
MAX_CONFLICTS = 20


class ConcurrentUpdate(RuntimeError):
    """The saga kept changing under us; the consumer retries the message later."""


def utcnow() -> datetime:
    return datetime.now(UTC)


# -- the consumer of `finance-order-state-machine` ------------------------------------------------


def message_name(delivery: Delivery) -> str:
    """The AMQP `type` names the message; without one, the fanout exchange it came through."""
    if delivery.type:
        return delivery.type
    _, found, name = delivery.exchange.partition(BOOKWORM_PREFIX)
    return name if found else delivery.routing_key


def decode_integration_event(delivery: Delivery) -> IntegrationEvent:
    """Raises for anything but the five integration events (dead-lettered at once)."""
    name = message_name(delivery)
    if name not in BOOKWORM_INTEGRATION_EVENTS:
        raise ValueError(f"{name!r} is not an integration event of the checkout saga")
    event: BookWormMessage = decode_bookworm(delivery.body, name)
    return event  # type: ignore[return-value]  # one of the five, by the check above


@dataclass(frozen=True, slots=True)
class SagaEventHandler:
    outbox: Outbox
    policy: SagaPolicy

    async def __call__(
        self, conn: db.Connection, delivery: Delivery, event: IntegrationEvent
    ) -> None:
        def decide(saga: Saga | None) -> Decision:
            return domain.on_event(saga, event, now=utcnow(), policy=self.policy)

        await apply(
            conn,
            self.outbox,
            event.order_id,
            decide,
            message_id=delivery.message_id,
            cause=type(event).__name__,
        )


# -- the one write path ---------------------------------------------------------------------------


async def apply(
    conn: db.Connection,
    outbox: Outbox,
    order_id: uuid.UUID,
    decide: Callable[[Saga | None], Decision],
    *,
    message_id: str,
    cause: str,
) -> Decision:
    """Decide on the stored saga and write the outcome, re-deciding after a concurrent write.
    Runs in the caller's transaction: saga, transition and commands commit together."""
    for _ in range(MAX_CONFLICTS):
        decision = decide(await sagas.load(conn, order_id))
        if isinstance(decision, Ignored):
            log.info(
                "saga message ignored", order_id=str(order_id), cause=cause, reason=decision.reason
            )
            return decision
        if await sagas.save(conn, decision, message_id=message_id, cause=cause):
            await outbox.add(
                conn, *(envelopes.bookworm(c, app_id=SERVICE) for c in decision.commands)
            )
            log.info(
                "saga transition",
                order_id=str(order_id),
                cause=cause,
                from_state=decision.from_state,
                to_state=decision.to_state,
                attempts=decision.saga.attempts,
                commands=[type(c).__name__ for c in decision.commands],
            )
            return decision
        log.info("saga changed concurrently; deciding again", order_id=str(order_id), cause=cause)
    raise ConcurrentUpdate(f"saga {order_id} changed {MAX_CONFLICTS} times while handling {cause}")


# -- durable timeouts -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimeoutJob:
    """Fires the due timeouts: re-send PlaceOrderCommand or give up (SPEC §6).

    The timeouts live in `sagas.timeout_at`, so they survive restarts; each batch is taken
    `FOR UPDATE SKIP LOCKED` in one transaction with its effects, so with several replicas
    every timeout fires exactly once."""

    pool: db.Pool
    outbox: Outbox
    policy: SagaPolicy
    batch_size: int = 100

    async def __call__(self) -> int:
        fired = 0
        while True:
            async with db.acquire(self.pool) as conn, conn.transaction():
                now = utcnow()
                due = await sagas.due(conn, now, limit=self.batch_size)
                for saga in due:
                    await self._fire(conn, saga, now)
            fired += len(due)
            if len(due) < self.batch_size:
                return fired

    async def _fire(self, conn: db.Connection, saga: Saga, now: datetime) -> None:
        def decide(current: Saga | None) -> Decision:
            if current is None:  # pragma: no cover - sagas are never deleted
                return Ignored("the saga is gone")
            return domain.on_timeout(current, now=now, policy=self.policy)

        # The row is locked, so the version read is current; `apply` checks it all the same.
        await apply(
            conn,
            self.outbox,
            saga.order_id,
            decide,
            message_id=str(uuid.uuid4()),
            cause=domain.TIMEOUT,
        )


# -- replay of failed checkouts -------------------------------------------------------------------


async def replay(
    conn: db.Connection, outbox: Outbox, order_id: uuid.UUID, policy: SagaPolicy
) -> Saga:
    """A Failed saga back to Placed with PlaceOrderCommand re-sent. Raises `SagaNotFound` or
    `SagaNotReplayable` (nothing is written then)."""

    def decide(saga: Saga | None) -> Decision:
        return domain.replay(saga, order_id=order_id, now=utcnow(), policy=policy)

    decision = await apply(
        conn, outbox, order_id, decide, message_id=str(uuid.uuid4()), cause=domain.REPLAY
    )
    assert not isinstance(decision, Ignored)  # replay decides or raises
    return decision.saga


async def replay_all(conn: db.Connection, outbox: Outbox, policy: SagaPolicy) -> list[uuid.UUID]:
    """Replay every Failed saga in the caller's transaction; the order ids replayed."""
    replayed = []
    for order_id in await sagas.order_ids_in_state(conn, domain.SagaState.FAILED):
        try:
            await replay(conn, outbox, order_id, policy)
        except domain.SagaNotReplayable:  # moved on since it was listed: not ours to replay
            continue
        replayed.append(order_id)
    return replayed
