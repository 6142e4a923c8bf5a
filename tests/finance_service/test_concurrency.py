"""Optimistic concurrency: two writers of one saga at once never lose an update.

The first two tests interleave two handlers deterministically on two connections (as two
replicas would); the last one lets two replicas race over the live broker.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from contracts.bookworm import (
    BasketDeletedCompleteIntegrationEvent,
    BasketDeletedFailedIntegrationEvent,
    BookWormMessage,
    OrderStatusChangedToCancelIntegrationEvent,
    OrderStatusChangedToCompleteIntegrationEvent,
    new_bookworm,
)
from finance_service.domain.saga import IntegrationEvent, SagaPolicy
from finance_service.handlers import SagaEventHandler
from finance_service.main import SCHEMA
from messaging import db
from messaging.message import Delivery
from messaging.outbox import Outbox
from messaging.settings import RuntimeSettings
from tests.finance_service.conftest import (
    Commands,
    OrderService,
    checkout_event,
    in_state,
    running,
    saga_of,
    wait_saga,
)
from tests.support import eventually

POLICY = SagaPolicy(place_order_timeout=timedelta(hours=1))


@pytest.fixture
async def connections(
    namespaced: RuntimeSettings, client: Any
) -> AsyncIterator[tuple[asyncpg.Connection, asyncpg.Connection, asyncpg.Connection]]:
    """Two "replicas" and an observer, on the finance schema (migrated by the `client` app)."""
    schema = namespaced.schema(SCHEMA)
    opened = [await db.connect(namespaced.database_url, schema) for _ in range(3)]
    yield opened[0], opened[1], opened[2]
    for conn in opened:
        await conn.close()


def delivery(event: BookWormMessage) -> Delivery:
    name = type(event).__name__
    return Delivery(
        queue="finance-order-state-machine",
        message_id=str(event.id),
        exchange=f"BookWorm.Contracts:{name}",
        routing_key="",
        body=b"",
        type=name,
    )


async def handle(
    handler: SagaEventHandler, conn: asyncpg.Connection, event: IntegrationEvent
) -> None:
    await handler(conn, delivery(event), event)


async def waits_for_a_lock(observer: asyncpg.Connection, conn: asyncpg.Connection) -> None:
    pid = conn.get_server_pid()

    async def waiting() -> str | None:
        found: str | None = await observer.fetchval(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid
        )
        return found

    await eventually(waiting, lambda kind: kind == "Lock")


async def race(
    connections: tuple[asyncpg.Connection, asyncpg.Connection, asyncpg.Connection],
    namespaced: RuntimeSettings,
    first: IntegrationEvent,
    second: IntegrationEvent,
) -> None:
    """Both handlers read the same saga version; the second writes only after the first
    committed, so its first write attempt conflicts."""
    a, b, observer = connections
    handler = SagaEventHandler(Outbox(namespaced.schema(SCHEMA)), POLICY)
    tx_a, tx_b = a.transaction(), b.transaction()
    await tx_a.start()
    await handle(handler, a, first)  # written, not committed: the row stays locked
    await tx_b.start()
    second_handled = asyncio.create_task(handle(handler, b, second))
    await waits_for_a_lock(observer, b)  # read the old version, now blocked on its UPDATE
    await tx_a.commit()
    await second_handled
    await tx_b.commit()


async def state_of(conn: asyncpg.Connection, order_id: uuid.UUID) -> dict[str, Any]:
    saga = await conn.fetchrow(
        "SELECT state, version, timeout_at FROM sagas WHERE order_id = $1", order_id
    )
    assert saga is not None
    transitions = await conn.fetch(
        "SELECT from_state, to_state, message_id FROM saga_transitions WHERE order_id = $1"
        " ORDER BY id",
        order_id,
    )
    sent = await conn.fetch(
        "SELECT type FROM outbox WHERE correlation_id = $1 ORDER BY id", str(order_id)
    )
    return {
        "state": saga["state"],
        "version": saga["version"],
        "timeout_at": saga["timeout_at"],
        "transitions": [(t["from_state"], t["to_state"], t["message_id"]) for t in transitions],
        "sent": [row["type"] for row in sent],
    }


async def placed_saga(
    connections: tuple[asyncpg.Connection, asyncpg.Connection, asyncpg.Connection],
    namespaced: RuntimeSettings,
) -> Any:
    checkout = checkout_event()
    conn = connections[0]
    handler = SagaEventHandler(Outbox(namespaced.schema(SCHEMA)), POLICY)
    async with conn.transaction():
        await handle(handler, conn, checkout)
    return checkout


async def test_a_writer_that_lost_the_race_decides_again_and_drops_an_illegal_move(
    connections: tuple[asyncpg.Connection, asyncpg.Connection, asyncpg.Connection],
    namespaced: RuntimeSettings,
) -> None:
    checkout = await placed_saga(connections, namespaced)
    completed = new_bookworm(
        OrderStatusChangedToCompleteIntegrationEvent,
        order_id=checkout.order_id,
        basket_id=checkout.basket_id,
        full_name=checkout.full_name,
        email=checkout.email,
        total_money=checkout.total_money,
    )
    basket_failed = new_bookworm(
        BasketDeletedFailedIntegrationEvent,
        order_id=checkout.order_id,
        basket_id=checkout.basket_id,
        email=checkout.email,
        total_money=checkout.total_money,
    )

    await race(connections, namespaced, completed, basket_failed)

    # Decided on what it read, the basket failure would have overwritten Completed with Failed.
    saga = await state_of(connections[2], checkout.order_id)
    assert saga["state"] == "Completed"
    assert saga["version"] == 2
    assert saga["transitions"] == [
        (None, "Placed", str(checkout.id)),
        ("Placed", "Completed", str(completed.id)),
    ]
    assert saga["sent"] == ["PlaceOrderCommand", "CompleteOrderCommand"]


async def test_a_writer_that_lost_the_race_applies_its_change_on_top(
    connections: tuple[asyncpg.Connection, asyncpg.Connection, asyncpg.Connection],
    namespaced: RuntimeSettings,
) -> None:
    checkout = await placed_saga(connections, namespaced)
    basket_deleted = new_bookworm(
        BasketDeletedCompleteIntegrationEvent,
        order_id=checkout.order_id,
        basket_id=checkout.basket_id,
        total_money=checkout.total_money,
    )
    cancelled = new_bookworm(
        OrderStatusChangedToCancelIntegrationEvent,
        order_id=checkout.order_id,
        basket_id=checkout.basket_id,
        full_name=checkout.full_name,
        email=checkout.email,
        total_money=checkout.total_money,
    )

    await race(connections, namespaced, basket_deleted, cancelled)

    saga = await state_of(connections[2], checkout.order_id)
    assert saga["state"] == "Cancelled"
    assert saga["version"] == 3
    assert saga["timeout_at"] is None
    assert saga["transitions"] == [
        (None, "Placed", str(checkout.id)),
        ("Placed", "Placed", str(basket_deleted.id)),
        ("Placed", "Cancelled", str(cancelled.id)),
    ]
    assert saga["sent"] == [
        "PlaceOrderCommand",
        "DeleteBasketCompleteCommand",
        "CancelOrderCommand",
    ]


async def test_two_replicas_handling_messages_of_one_order_keep_a_consistent_saga(
    finance_env: dict[str, str],
    orders: OrderService,
    commands: Commands,
    database: asyncpg.Connection,
) -> None:
    async with running(finance_env) as first, running(finance_env):
        checkouts = [await orders.checkout() for _ in range(15)]
        for checkout in checkouts:
            await wait_saga(first, checkout.order_id, in_state("Placed"))
        # Per order, three messages at once: both replicas (and their workers) take some.
        published: list[str] = []
        for checkout in checkouts:
            basket_deleted = new_bookworm(
                BasketDeletedCompleteIntegrationEvent,
                order_id=checkout.order_id,
                basket_id=checkout.basket_id,
                total_money=checkout.total_money,
            )
            published.append(await orders.publish(basket_deleted))
            for status in (
                OrderStatusChangedToCompleteIntegrationEvent,
                OrderStatusChangedToCancelIntegrationEvent,
            ):
                published.append(str((await orders.status(checkout, status)).id))

        async def handled() -> int:
            count: int = await database.fetchval(
                "SELECT count(*) FROM inbox WHERE message_id = ANY($1::text[])", published
            )
            return count

        await eventually(handled, lambda n: n == len(published), timeout=30)
        final = [await saga_of(first, c.order_id) for c in checkouts]

    for checkout, saga in zip(checkouts, final, strict=True):
        stored = await state_of(database, checkout.order_id)
        chain = stored["transitions"]
        # No lost update: every transition starts where the one before ended, one per version.
        assert all(prev[1] == nxt[0] for prev, nxt in itertools.pairwise(chain))
        assert len(chain) == stored["version"]
        assert chain[-1][1] == saga["state"]
        assert saga["state"] in {"Completed", "Cancelled"}
        finished = "CompleteOrderCommand" if saga["state"] == "Completed" else "CancelOrderCommand"
        assert stored["sent"].count(finished) == 1
        assert (
            "CompleteOrderCommand" not in stored["sent"]
            or "CancelOrderCommand" not in (stored["sent"])
        )
        assert stored["sent"].count("DeleteBasketCompleteCommand") <= 1
        assert stored["sent"].count("PlaceOrderCommand") == 1
    assert (
        await database.fetchval(
            "SELECT count(*) FROM dead_letters WHERE message_id = ANY($1::text[])", published
        )
        == 0
    )
