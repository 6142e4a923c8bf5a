"""Unit tests of the analytics rules: no broker, no database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from contracts.order_events import OrderEvent, new_order_event
from notification_service.analytics.domain import (
    Counts,
    InvalidRange,
    OrderFacts,
    conversion_rate,
    event_day,
    every_day,
    order_confirmed,
    order_created,
    summary_range,
)
from tests.notification_service.builders import cart_abandoned, confirmed

D1, D2 = date(2031, 3, 14), date(2031, 3, 15)


def test_created_then_confirmed_counts_revenue_on_the_day_of_confirmation() -> None:
    step1 = order_created(OrderFacts(), D1, Decimal("10.50"))
    assert step1.increments == [(D1, Counts(orders_created=1))]
    step2 = order_confirmed(step1.facts, D2)
    assert step2.increments == [
        (D2, Counts(orders_confirmed=1)),
        (D2, Counts(confirmed_revenue=Decimal("10.50"))),
    ]
    assert step2.facts.revenue_counted


def test_confirmed_before_created_settles_the_revenue_when_the_total_arrives() -> None:
    step1 = order_confirmed(OrderFacts(), D2)
    assert step1.increments == [(D2, Counts(orders_confirmed=1))]
    assert not step1.facts.revenue_counted
    step2 = order_created(step1.facts, D1, Decimal(7))
    assert step2.increments == [
        (D1, Counts(orders_created=1)),
        (D2, Counts(confirmed_revenue=Decimal(7))),
    ]


def test_an_order_counts_once_as_created_and_once_as_confirmed() -> None:
    facts = order_confirmed(order_created(OrderFacts(), D1, Decimal(1)).facts, D1).facts
    assert order_created(facts, D2, Decimal(1)).increments == []
    assert order_confirmed(facts, D2).increments == []


def test_conversion_rate() -> None:
    assert conversion_rate(0, 0) is None
    assert conversion_rate(1, 2) == Decimal("0.3333")
    assert conversion_rate(2, 0) == Decimal(1)
    assert (Counts(carts_converted=1) + Counts(carts_abandoned=1)).conversion_rate == Decimal("0.5")


def test_the_day_is_the_utc_date_of_the_event_timestamp() -> None:
    late = datetime(2031, 3, 14, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    event = new_order_event("cart.abandoned", "org", cart_abandoned(), timestamp=late)
    assert event_day(event, datetime.now(UTC)) == D2
    untimed: OrderEvent[object] = OrderEvent(event="order.confirmed", data=confirmed("o1"))
    assert event_day(untimed, datetime.now(UTC)) == date(2025, 11, 23)


def test_summary_range_defaults_and_limits() -> None:
    assert summary_range(None, None, D2) == (D2 - timedelta(days=29), D2)
    assert summary_range(D1, None, D2) == (D1, D2)
    with pytest.raises(InvalidRange):
        summary_range(D2, D1, D2)
    with pytest.raises(InvalidRange):
        summary_range(D1 - timedelta(days=366), D1, D2)
    assert every_day({D2: Counts(orders_created=3)}, D1, D2) == [
        (D1, Counts()),
        (D2, Counts(orders_created=3)),
    ]
