"""Cart abandonment: idle carts are announced once with `cart.abandoned`, also when several
sweepers (replicas) run at the same time."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import asyncpg

from messaging import db
from messaging.outbox import Outbox
from messaging.settings import RuntimeSettings
from order_service.commands import Context
from order_service.config import Settings
from order_service.main import SCHEMA
from order_service.sweeper import CartAbandonmentSweeper
from tests.order_service.conftest import Shop
from tests.support import Recorder, eventually


def always(pool: db.Pool) -> Callable[[], db.Pool]:
    return lambda: pool


async def backdate(conn: asyncpg.Connection, *cart_ids: str) -> None:
    await conn.execute(
        "UPDATE carts SET last_activity_at = now() - interval '2 days' WHERE id = ANY($1::uuid[])",
        [uuid.UUID(c) for c in cart_ids],
    )


async def announcements(conn: asyncpg.Connection, cart_id: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM outbox WHERE type = 'cart.abandoned'"
        " AND position($1 in convert_from(body, 'UTF8')) > 0",
        cart_id,
    )
    return count


async def test_an_idle_cart_is_announced_once(
    shop: Shop, conn: asyncpg.Connection, namespaced: RuntimeSettings
) -> None:
    async with Recorder(namespaced, "order_events", "cart.abandoned") as events:
        idle = await shop.cart(("var_1", 2, "10.00"), ("var_2", 1, "5.25"))
        fresh = await shop.cart(("var_1", 1, "10.00"))
        empty = await shop.cart()
        checked_out = await shop.order()
        await backdate(conn, idle["cart_id"], empty["cart_id"], checked_out["cart_id"])
        body = await events.wait_for(
            "cart.abandoned", lambda b: b["data"]["cart_id"] == idle["cart_id"]
        )
    assert body["data"]["items_count"] == 3
    assert body["data"]["total_value"] == 25.25
    assert body["data"]["customer_id"] == "cust_789"
    assert body["data"]["abandoned_at"] > body["data"]["last_activity_at"]
    assert (await shop.get(f"/carts/{idle['cart_id']}"))["status"] == "abandoned"
    for other in (fresh, empty, checked_out):
        assert await announcements(conn, other["cart_id"]) == 0
    assert await announcements(conn, idle["cart_id"]) == 1


async def test_concurrent_sweepers_announce_each_cart_once(
    order_env: dict[str, str], namespaced: RuntimeSettings, shop: Shop, conn: asyncpg.Connection
) -> None:
    """Three more "replicas" (own pools) sweep alongside the service's own sweeper."""
    carts = [(await shop.cart(("var_9", 1, "1.00")))["cart_id"] for _ in range(8)]
    schema = namespaced.schema(SCHEMA)
    pools = [await db.create_pool(namespaced.database_url, schema, min_size=1) for _ in range(3)]
    ctx = Context(outbox=Outbox(schema), settings=Settings.from_env(order_env))
    sweepers = [CartAbandonmentSweeper(always(pool), ctx) for pool in pools]
    try:
        await backdate(conn, *carts)
        await asyncio.gather(*(sweep() for sweep in sweepers for _ in range(2)))
    finally:
        for pool in pools:
            await pool.close()

    async def counts() -> list[int]:
        return [await announcements(conn, c) for c in carts]

    assert await eventually(counts, lambda found: all(n >= 1 for n in found)) == [1] * len(carts)


async def test_an_abandoned_cart_can_still_be_filled_and_checked_out(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    cart = await shop.cart(("var_1", 1, "10.00"))
    await backdate(conn, cart["cart_id"])
    await eventually(
        lambda: shop.get(f"/carts/{cart['cart_id']}"), lambda c: c["status"] == "abandoned"
    )
    refilled = await shop.post(
        f"/carts/{cart['cart_id']}/items",
        {"variant_id": "var_2", "quantity": 1, "unit_price": 2},
        201,
    )
    assert refilled["status"] == "active"
    order = await shop.post(
        f"/carts/{cart['cart_id']}/checkout", {"email": "a@example.com", "full_name": "A"}, 201
    )
    assert order["total_amount"] == 12.0
    assert await announcements(conn, cart["cart_id"]) == 1
