"""The analytics read model over the live broker: counters match the events published."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from notification_service.main import create_app
from tests.notification_service.builders import (
    Bus,
    cart_abandoned,
    cart_converted,
    confirmed,
    created,
)
from tests.support import auth, eventually, unique

DAY1 = datetime(2031, 3, 14, 9, 30, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
LATE_EVENING = datetime(2031, 3, 14, 23, 59, 59, tzinfo=UTC)


class Tenant:
    def __init__(self) -> None:
        self.org = unique("org_an_")
        self.key = unique("key-an-")


@pytest.fixture
def tenants() -> tuple[Tenant, Tenant]:
    return Tenant(), Tenant()


@pytest.fixture
async def analytics(
    env: dict[str, str], tenants: tuple[Tenant, Tenant]
) -> AsyncIterator[AsyncTestClient[Any]]:
    """The service with two organizations of this test's own, so counters start at zero."""
    keys = ",".join(f"{t.org}={t.key}" for t in tenants)
    env = {**env, "COMMERCE_API_KEYS": f"{env['COMMERCE_API_KEYS']},{keys}"}
    async with AsyncTestClient(app=create_app(env)) as client:
        yield client


async def _summary(client: AsyncTestClient[Any], key: str, **params: str) -> Any:
    response = await client.get("/analytics/summary", params=params, headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()


def _figures(
    created: int, confirmed: int, revenue: float, abandoned: int, converted: int, rate: Any
) -> dict[str, Any]:
    return {
        "orders_created": created,
        "orders_confirmed": confirmed,
        "confirmed_revenue": revenue,
        "carts_abandoned": abandoned,
        "carts_converted": converted,
        "conversion_rate": rate,
    }


async def test_counters_match_the_events_published(
    analytics: AsyncTestClient[Any], publish: Bus, tenants: tuple[Tenant, Tenant]
) -> None:
    tenant, other = tenants
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    async def event(name: str, data: Any, at: datetime, **kw: Any) -> Any:
        return await publish.event(name, data, organization_id=tenant.org, timestamp=at, **kw)

    # Order a: created and confirmed on day 1; its order.created is delivered twice.
    first = await event("order.created", created(a, total="100.50"), DAY1)
    await publish.send_event(first)
    await event("order.confirmed", confirmed(a), LATE_EVENING)
    # Order b: confirmed on day 2 *before* its order.created (day 1) arrives — the revenue
    # settles on the day of confirmation once the total is known.
    await event("order.confirmed", confirmed(b), DAY2)
    await event("order.created", created(b, total="20"), DAY1)
    # Order c: created on day 2, never confirmed. A second confirmation of a is not counted.
    await event("order.created", created(c, total="5.25"), DAY2)
    await event("order.confirmed", confirmed(a), DAY2)
    for _ in range(2):
        await event("cart.abandoned", cart_abandoned(), DAY1)
    await event("cart.converted", cart_converted(a), DAY1)
    await event("cart.converted", cart_converted(b), DAY2)
    # Another organization's events on the same days count for it alone.
    await publish.event(
        "cart.abandoned", cart_abandoned(), organization_id=other.org, timestamp=DAY1
    )

    expected_days = [
        {"day": "2031-03-14", **_figures(2, 1, 100.5, 2, 1, 0.3333)},
        {"day": "2031-03-15", **_figures(1, 1, 20, 0, 1, 1)},
    ]
    summary = await eventually(
        lambda: _summary(analytics, tenant.key, **{"from": "2031-03-14", "to": "2031-03-15"}),
        lambda s: s["days"] == expected_days,
    )
    assert summary == {
        "organization_id": tenant.org,
        "from": "2031-03-14",
        "to": "2031-03-15",
        "days": expected_days,
        "totals": _figures(3, 2, 120.5, 2, 2, 0.5),
    }
    theirs = await eventually(
        lambda: _summary(analytics, other.key, **{"from": "2031-03-14", "to": "2031-03-14"}),
        lambda s: s["totals"]["carts_abandoned"] == 1,
    )
    assert theirs["totals"] == _figures(0, 0, 0, 1, 0, 0)


async def test_summary_fills_every_day_of_the_range_and_validates_it(
    analytics: AsyncTestClient[Any], tenants: tuple[Tenant, Tenant]
) -> None:
    tenant, _ = tenants
    quiet = await _summary(analytics, tenant.key, **{"from": "2031-02-27", "to": "2031-03-02"})
    assert [d["day"] for d in quiet["days"]] == [
        "2031-02-27",
        "2031-02-28",
        "2031-03-01",
        "2031-03-02",
    ]
    assert quiet["days"][0] == {"day": "2031-02-27", **_figures(0, 0, 0, 0, 0, None)}
    assert quiet["totals"] == _figures(0, 0, 0, 0, 0, None)

    default = await _summary(analytics, tenant.key)
    assert len(default["days"]) == 30
    assert default["to"] == datetime.now(UTC).date().isoformat()

    for params, field in (
        ({"from": "2031-03-02", "to": "2031-03-01"}, "from"),
        ({"from": "2030-01-01", "to": "2031-03-01"}, "from"),
        ({"from": "14/03/2031"}, "from"),
        ({"to": "2031-13-01"}, "to"),
    ):
        response = await analytics.get(
            "/analytics/summary", params=params, headers=auth(tenant.key)
        )
        assert response.status_code == 400, params
        assert response.headers["content-type"].startswith("application/problem+json")
        assert field in response.text
    assert (await analytics.get("/analytics/summary")).status_code == 401
