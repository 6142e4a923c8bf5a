"""HTTP API of the notification service: `GET /notifications?order_id=` (SPEC §10).

Which mails a caller sees: those of the caller's organization. Order events name the
organization; the saga commands (BookWorm) do not. A mail written from a command before any
order event named its order's organization has none yet and is listed to nobody; as soon as an
order event of that order arrives, the order's organization is known, is written onto every
mail of the order, and the mails are listed to that organization only.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec
from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import FromQuery

from messaging import db
from messaging.web import Org, organization, runtime_of
from notification_service.adapters import repository


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    order_id: uuid.UUID
    template: str
    #: None while the mail waits for the order's contact.
    recipient: str | None
    subject: str | None
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


class Notifications(msgspec.Struct, frozen=True, kw_only=True):
    order_id: uuid.UUID
    notifications: list[Notification]


class NotificationsController(Controller):
    path = "/notifications"
    tags = ["notifications"]
    dependencies = {"organization_id": Provide(organization)}

    @get("/", summary="The mails of an order: recipient, template, subject, status, sent_at")
    async def list_for_order(
        self,
        request: Request[Any, Any, State],
        organization_id: Org,
        order_id: FromQuery[uuid.UUID],
    ) -> Notifications:
        async with db.acquire(runtime_of(request).pool) as conn:
            rows = await repository.mails_of_order(conn, organization_id, order_id)
        return Notifications(
            order_id=order_id, notifications=[msgspec.convert(r, Notification) for r in rows]
        )
