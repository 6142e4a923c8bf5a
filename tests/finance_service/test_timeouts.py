"""Durable timeouts: retry and exhaustion, a restart between scheduling and firing, replicas."""

from __future__ import annotations

import uuid
from collections import Counter

import asyncpg

from tests.finance_service.conftest import (
    Commands,
    OrderService,
    in_state,
    running,
    saga_of,
    wait_saga,
)
from tests.support import eventually


def fast_timeouts(
    service_env: dict[str, str], *, seconds: float = 1, max_attempts: int = 3, poll: float = 0.1
) -> dict[str, str]:
    return {
        **service_env,
        "SAGA_PLACE_ORDER_TIMEOUT_SECONDS": str(seconds),
        "SAGA_MAX_ATTEMPTS": str(max_attempts),
        "SAGA_TIMEOUT_POLL_SECONDS": str(poll),
    }


async def sent(database: asyncpg.Connection, order_id: uuid.UUID) -> Counter[str]:
    """What the saga wrote to its outbox for an order: the authoritative record of sends."""
    rows = await database.fetch("SELECT type FROM outbox WHERE correlation_id = $1", str(order_id))
    return Counter(row["type"] for row in rows)


async def test_timeouts_resend_place_order_then_cancel_and_fail(
    service_env: dict[str, str],
    orders: OrderService,
    commands: Commands,
    database: asyncpg.Connection,
) -> None:
    async with running(fast_timeouts(service_env, seconds=1, max_attempts=3)) as client:
        checkout = await orders.checkout()
        await wait_saga(client, checkout.order_id, in_state("Placed"))
        retried = await wait_saga(
            client, checkout.order_id, lambda s: s["attempts"] == 2 and s["state"] == "Placed"
        )
        failed = await wait_saga(client, checkout.order_id, in_state("Failed"), timeout=20)
        # While the service runs: its relay publishes what the last transition wrote.
        await commands.wait("PlaceOrderCommand", checkout.order_id, 3)
        [cancel] = await commands.wait("CancelOrderCommand", checkout.order_id)

    assert [t["to_state"] for t in retried["transitions"]] == ["Placed", "Placed"]
    assert failed["attempts"] == 3
    assert [(t["from_state"], t["to_state"]) for t in failed["transitions"]] == [
        (None, "Placed"),
        ("Placed", "Placed"),
        ("Placed", "Placed"),
        ("Placed", "Failed"),
    ]
    # Each timeout is recorded with an id of its own.
    assert len({t["message_id"] for t in failed["transitions"]}) == 4
    assert await sent(database, checkout.order_id) == {
        "PlaceOrderCommand": 3,
        "CancelOrderCommand": 1,
    }
    assert (cancel["email"], cancel["fullName"]) == ("ada@example.com", "Ada Lovelace")
    assert commands.all_of(checkout.order_id) == {"PlaceOrderCommand": 3, "CancelOrderCommand": 1}


async def test_a_timeout_scheduled_before_a_restart_fires_once_after_it(
    service_env: dict[str, str],
    orders: OrderService,
    commands: Commands,
    database: asyncpg.Connection,
) -> None:
    env = fast_timeouts(service_env, seconds=2, max_attempts=2)
    async with running(env) as client:
        checkout = await orders.checkout()
        await wait_saga(client, checkout.order_id, in_state("Placed"))
    # The service is down while the timeout comes due.

    async def overdue() -> bool:
        due = await database.fetchval(
            "SELECT timeout_at < now() - interval '0.5 seconds' FROM sagas WHERE order_id = $1",
            checkout.order_id,
        )
        return due is True

    await eventually(overdue, bool)
    assert await sent(database, checkout.order_id) == {"PlaceOrderCommand": 1}

    async with running(env) as client:
        fired = await wait_saga(client, checkout.order_id, lambda s: s["attempts"] == 2)
        failed = await wait_saga(client, checkout.order_id, in_state("Failed"))
        await commands.wait("CancelOrderCommand", checkout.order_id)
        await commands.wait("PlaceOrderCommand", checkout.order_id, 2)

    assert [t["to_state"] for t in fired["transitions"]] == ["Placed", "Placed"]
    assert [t["to_state"] for t in failed["transitions"]] == ["Placed", "Placed", "Failed"]
    assert await sent(database, checkout.order_id) == {
        "PlaceOrderCommand": 2,
        "CancelOrderCommand": 1,
    }
    assert commands.all_of(checkout.order_id) == {"PlaceOrderCommand": 2, "CancelOrderCommand": 1}


async def test_with_two_replicas_every_timeout_fires_once(
    service_env: dict[str, str],
    orders: OrderService,
    commands: Commands,
    database: asyncpg.Connection,
) -> None:
    # Both replicas poll far more often than the timeouts come due, so they race for each one.
    env = fast_timeouts(service_env, seconds=1, max_attempts=2, poll=0.02)
    async with running(env) as first, running(env) as second:
        checkouts = [await orders.checkout() for _ in range(20)]

        async def all_failed() -> list[dict[str, object]]:
            return [await saga_of(first, c.order_id) for c in checkouts]

        sagas = await eventually(
            all_failed, lambda found: all(s.get("state") == "Failed" for s in found), timeout=30
        )
        # The other replica sees the same store.
        assert (await saga_of(second, checkouts[0].order_id))["state"] == "Failed"

        async def delivered() -> list[dict[str, int]]:
            return [commands.all_of(c.order_id) for c in checkouts]

        expected = {"PlaceOrderCommand": 2, "CancelOrderCommand": 1}
        await eventually(delivered, lambda found: all(f == expected for f in found))

    for checkout, saga in zip(checkouts, sagas, strict=True):
        transitions = saga["transitions"]
        assert isinstance(transitions, list)
        assert [t["to_state"] for t in transitions] == ["Placed", "Placed", "Failed"]
        assert await sent(database, checkout.order_id) == {
            "PlaceOrderCommand": 2,
            "CancelOrderCommand": 1,
        }
