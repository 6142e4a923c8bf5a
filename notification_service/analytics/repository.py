"""SQL of the analytics read model (tables `analytics_daily`, `analytics_orders`)."""

from __future__ import annotations

from datetime import date

from messaging import db
from notification_service.analytics.domain import Counts, OrderFacts


async def lock_order(conn: db.Connection, order_id: str, organization_id: str) -> OrderFacts:
    """The order's facts, its row locked until commit (created and confirmed may race)."""
    await conn.execute(
        "INSERT INTO analytics_orders (order_id, organization_id) VALUES ($1, $2)"
        " ON CONFLICT (order_id) DO NOTHING",
        order_id,
        organization_id,
    )
    row = await conn.fetchrow(
        "SELECT total_amount, created_day, confirmed_day, revenue_counted"
        " FROM analytics_orders WHERE order_id = $1 FOR UPDATE",
        order_id,
    )
    assert row is not None
    return OrderFacts(
        total=row["total_amount"],
        created_day=row["created_day"],
        confirmed_day=row["confirmed_day"],
        revenue_counted=row["revenue_counted"],
    )


async def save_order(conn: db.Connection, order_id: str, facts: OrderFacts) -> None:
    await conn.execute(
        "UPDATE analytics_orders SET total_amount = $2, created_day = $3, confirmed_day = $4,"
        " revenue_counted = $5, updated_at = now() WHERE order_id = $1",
        order_id,
        facts.total,
        facts.created_day,
        facts.confirmed_day,
        facts.revenue_counted,
    )


async def add(conn: db.Connection, organization_id: str, day: date, counts: Counts) -> None:
    await conn.execute(
        "INSERT INTO analytics_daily AS d (organization_id, day, orders_created,"
        " orders_confirmed, confirmed_revenue, carts_abandoned, carts_converted)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (organization_id, day) DO UPDATE SET"
        " orders_created = d.orders_created + EXCLUDED.orders_created,"
        " orders_confirmed = d.orders_confirmed + EXCLUDED.orders_confirmed,"
        " confirmed_revenue = d.confirmed_revenue + EXCLUDED.confirmed_revenue,"
        " carts_abandoned = d.carts_abandoned + EXCLUDED.carts_abandoned,"
        " carts_converted = d.carts_converted + EXCLUDED.carts_converted",
        organization_id,
        day,
        counts.orders_created,
        counts.orders_confirmed,
        counts.confirmed_revenue,
        counts.carts_abandoned,
        counts.carts_converted,
    )


async def daily(
    conn: db.Connection, organization_id: str, start: date, end: date
) -> dict[date, Counts]:
    rows = await conn.fetch(
        "SELECT day, orders_created, orders_confirmed, confirmed_revenue, carts_abandoned,"
        " carts_converted FROM analytics_daily"
        " WHERE organization_id = $1 AND day BETWEEN $2 AND $3",
        organization_id,
        start,
        end,
    )
    return {
        r["day"]: Counts(
            r["orders_created"],
            r["orders_confirmed"],
            r["confirmed_revenue"],
            r["carts_abandoned"],
            r["carts_converted"],
        )
        for r in rows
    }
