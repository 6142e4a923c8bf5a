"""`GET /analytics/summary?from=&to=`: the caller organization's figures per day and in total."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import ResponseSpec
from litestar.params import QueryParameter

from contracts.codec import encode
from messaging import db
from messaging.web import InvalidInput, Org, organization, runtime_of
from notification_service.analytics import domain, repository


class Figures(msgspec.Struct, frozen=True, kw_only=True):
    orders_created: int
    orders_confirmed: int
    #: A JSON number with the exact digits (money is never a string on this API).
    confirmed_revenue: Decimal
    carts_abandoned: int
    carts_converted: int
    #: carts_converted / (carts_converted + carts_abandoned), 4 places; null without carts.
    conversion_rate: Decimal | None

    @classmethod
    def of(cls, counts: domain.Counts) -> Figures:
        return cls(
            orders_created=counts.orders_created,
            orders_confirmed=counts.orders_confirmed,
            confirmed_revenue=counts.confirmed_revenue,
            carts_abandoned=counts.carts_abandoned,
            carts_converted=counts.carts_converted,
            conversion_rate=counts.conversion_rate,
        )


class Day(Figures, frozen=True, kw_only=True):
    day: date


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    organization_id: str
    start: date = msgspec.field(name="from")
    end: date = msgspec.field(name="to")
    days: list[Day]
    totals: Figures


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_day(text: str | None, field: str) -> date | None:
    """A `YYYY-MM-DD` query value; a 400 naming the query parameter otherwise."""
    if text is None or text == "":
        return None
    try:
        if not _DAY.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{field} must be a date written YYYY-MM-DD", field=field) from None


async def summarize(
    conn: db.Connection, organization_id: str, start: str | None, end: str | None
) -> Summary:
    today = datetime.now(UTC).date()
    try:
        first, last = domain.summary_range(parse_day(start, "from"), parse_day(end, "to"), today)
    except domain.InvalidRange as exc:
        raise InvalidInput(str(exc), field=exc.field) from exc
    days = domain.every_day(await repository.daily(conn, organization_id, first, last), first, last)
    totals = sum((counts for _, counts in days), domain.Counts())
    return Summary(
        organization_id=organization_id,
        start=first,
        end=last,
        days=[Day(day=day, **msgspec.structs.asdict(Figures.of(c))) for day, c in days],
        totals=Figures.of(totals),
    )


_FROM = "first day (UTC), YYYY-MM-DD; default: 29 days before `to`"
_TO = "last day (UTC), YYYY-MM-DD, inclusive; default: today"


class AnalyticsController(Controller):
    path = "/analytics"
    tags = ["analytics"]
    dependencies = {"organization_id": Provide(organization)}

    @get(
        "/summary",
        summary="Orders, revenue and cart conversion per day (UTC) for the caller's organization",
        responses={200: ResponseSpec(data_container=Summary, description="per day and totals")},
    )
    async def summary(
        self,
        request: Request[Any, Any, State],
        organization_id: Org,
        start: Annotated[str | None, QueryParameter(name="from", description=_FROM)] = None,
        end: Annotated[str | None, QueryParameter(name="to", description=_TO)] = None,
    ) -> Response[bytes]:
        async with db.acquire(runtime_of(request).pool) as conn:
            result = await summarize(conn, organization_id, start, end)
        return Response(encode(result), media_type="application/json")
