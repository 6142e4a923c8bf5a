"""Analytics rules: what each event adds to which day. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from contracts.order_events import (
    CartAbandonedData,
    CartConvertedData,
    OrderConfirmedData,
    OrderEvent,
)

RATE_PLACES = Decimal("0.0001")
MAX_SUMMARY_DAYS = 366


@dataclass(frozen=True, slots=True)
class Counts:
    orders_created: int = 0
    orders_confirmed: int = 0
    confirmed_revenue: Decimal = field(default_factory=Decimal)
    carts_abandoned: int = 0
    carts_converted: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.orders_created + other.orders_created,
            self.orders_confirmed + other.orders_confirmed,
            self.confirmed_revenue + other.confirmed_revenue,
            self.carts_abandoned + other.carts_abandoned,
            self.carts_converted + other.carts_converted,
        )

    @property
    def conversion_rate(self) -> Decimal | None:
        return conversion_rate(self.carts_converted, self.carts_abandoned)


def conversion_rate(converted: int, abandoned: int) -> Decimal | None:
    """carts converted / (converted + abandoned); None when there were no such carts."""
    carts = converted + abandoned
    if carts == 0:
        return None
    return (Decimal(converted) / Decimal(carts)).quantize(RATE_PLACES)


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What is known of one order, so it counts once and its revenue settles once."""

    total: Decimal | None = None
    created_day: date | None = None
    confirmed_day: date | None = None
    revenue_counted: bool = False


@dataclass(frozen=True, slots=True)
class Change:
    facts: OrderFacts
    increments: list[tuple[date, Counts]]


def _settle_revenue(facts: OrderFacts, increments: list[tuple[date, Counts]]) -> Change:
    """Once both the total and the day of confirmation are known, count the revenue there."""
    if facts.revenue_counted or facts.total is None or facts.confirmed_day is None:
        return Change(facts, increments)
    revenue = (facts.confirmed_day, Counts(confirmed_revenue=facts.total))
    return Change(replace(facts, revenue_counted=True), [*increments, revenue])


def order_created(facts: OrderFacts, day: date, total: Decimal) -> Change:
    if facts.created_day is not None:
        return Change(facts, [])
    created = replace(facts, created_day=day, total=total)
    return _settle_revenue(created, [(day, Counts(orders_created=1))])


def order_confirmed(facts: OrderFacts, day: date) -> Change:
    if facts.confirmed_day is not None:
        return Change(facts, [])
    confirmed = replace(facts, confirmed_day=day)
    return _settle_revenue(confirmed, [(day, Counts(orders_confirmed=1))])


def cart_counts(data: CartAbandonedData | CartConvertedData) -> Counts:
    if isinstance(data, CartAbandonedData):
        return Counts(carts_abandoned=1)
    return Counts(carts_converted=1)


def event_day(event: OrderEvent[Any], received_at: datetime) -> date:
    """The UTC date of the event's timestamp. Envelopes without one (the seed's examples) fall
    back to the time the data names, then to when it was received."""
    moment = event.timestamp
    data = event.data
    if moment is None:
        if isinstance(data, OrderConfirmedData):
            moment = data.confirmed_at
        elif isinstance(data, CartAbandonedData):
            moment = data.abandoned_at
        elif isinstance(data, CartConvertedData):
            moment = data.converted_at
    return (moment or received_at).astimezone(UTC).date()


class InvalidRange(ValueError):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def summary_range(start: date | None, end: date | None, today: date) -> tuple[date, date]:
    """`from`/`to` (inclusive); by default the 30 days up to today."""
    end = end or today
    start = start or end - timedelta(days=29)
    if start > end:
        raise InvalidRange("from must not be after to", "from")
    if (end - start).days + 1 > MAX_SUMMARY_DAYS:
        raise InvalidRange(f"at most {MAX_SUMMARY_DAYS} days per summary", "from")
    return start, end


def every_day(stored: dict[date, Counts], start: date, end: date) -> list[tuple[date, Counts]]:
    """One entry per day of the range, zeros where nothing happened."""
    days = (end - start).days + 1
    return [
        (day, stored.get(day, Counts())) for day in (start + timedelta(days=n) for n in range(days))
    ]
