"""The saga's admin API (SPEC §10): list, show, replay one, replay every Failed saga."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath, JSONBody, QueryParameter

from finance_service import handlers, views
from finance_service.config import Settings
from finance_service.domain.saga import SagaNotFound, SagaNotReplayable, SagaState
from messaging import db
from messaging.web import InvalidInput, admin, command, problem, runtime_of

#: Idempotency keys of admin commands are kept under this scope (they have no organization).
ADMIN_SCOPE = "_admin"


class ReplayRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    state: Literal["Failed"]


async def admin_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    await admin(connection)  # type: ignore[arg-type]  # reads headers and app state only


def _not_found(_: Request[Any, Any, State], exc: SagaNotFound) -> Response[bytes]:
    return problem(404, "Not found", str(exc))


def _not_replayable(_: Request[Any, Any, State], exc: SagaNotReplayable) -> Response[bytes]:
    return problem(409, "Conflict", str(exc), state=exc.saga.state.value)


def _state(value: str | None) -> SagaState | None:
    try:
        return None if value is None else SagaState(value)
    except ValueError:
        allowed = ", ".join(s.value for s in SagaState)
        raise InvalidInput(f"state must be one of {allowed}", field="state") from None


def _settings(request: Request[Any, Any, State]) -> Settings:
    settings: Settings = request.app.state["finance_settings"]
    return settings


class SagaController(Controller):
    path = "/sagas"
    tags = ["sagas"]
    guards = [admin_only]
    exception_handlers = {SagaNotFound: _not_found, SagaNotReplayable: _not_replayable}

    @get("/", summary="Checkout sagas, newest change first")
    async def list_sagas(
        self,
        request: Request[Any, Any, State],
        # `state` is reserved in Litestar handlers: mapped, and checked by `_state` so that a
        # wrong value is reported under the public name.
        saga_state: Annotated[str | None, QueryParameter(name="state")] = None,
        limit: Annotated[int, QueryParameter(gt=0, le=1000)] = 100,
    ) -> list[views.SagaSummary]:
        async with db.acquire(runtime_of(request).pool) as conn:
            return await views.saga_list(conn, state=_state(saga_state), limit=limit)

    @get("/{order_id:uuid}", summary="One saga with every transition")
    async def show(
        self, request: Request[Any, Any, State], order_id: FromPath[uuid.UUID]
    ) -> views.SagaView:
        async with db.acquire(runtime_of(request).pool) as conn:
            return await views.saga_view(conn, order_id)

    @post("/{order_id:uuid}/replay", summary="A Failed saga back to Placed", status_code=200)
    async def replay(
        self, request: Request[Any, Any, State], order_id: FromPath[uuid.UUID]
    ) -> Response[bytes]:
        async def work(conn: db.Connection) -> views.SagaView:
            saga = await handlers.replay(
                conn, runtime_of(request).outbox, order_id, _settings(request).policy
            )
            return await views.view_of(conn, saga)

        return await command(request, ADMIN_SCOPE, work)

    @post("/replay", summary="Every Failed saga back to Placed", status_code=200)
    async def replay_all(
        self, request: Request[Any, Any, State], data: JSONBody[ReplayRequest]
    ) -> Response[bytes]:
        async def work(conn: db.Connection) -> views.ReplayedView:
            replayed = await handlers.replay_all(
                conn, runtime_of(request).outbox, _settings(request).policy
            )
            return views.ReplayedView(replayed=replayed)

        return await command(request, ADMIN_SCOPE, work)


ROUTES = [SagaController]
