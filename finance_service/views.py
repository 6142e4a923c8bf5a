"""What the HTTP API and the CLI show of a saga: msgspec structs built from the store."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from finance_service.adapters import sagas
from finance_service.domain.saga import Saga, SagaNotFound, SagaState
from messaging import db


class TransitionView(msgspec.Struct, frozen=True, kw_only=True):
    from_state: str | None
    to_state: str
    message_id: str
    at: datetime


class SagaView(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /sagas/{order_id}` (SPEC §10)."""

    order_id: uuid.UUID
    state: str
    attempts: int
    transitions: list[TransitionView]


class SagaSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of `GET /sagas?state=`."""

    order_id: uuid.UUID
    state: str
    attempts: int
    timeout_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ReplayedView(msgspec.Struct, frozen=True, kw_only=True):
    """`POST /sagas/replay`: the order ids whose saga went back to Placed."""

    replayed: list[uuid.UUID]


async def saga_view(conn: db.Connection, order_id: uuid.UUID) -> SagaView:
    saga = await sagas.load(conn, order_id)
    if saga is None:
        raise SagaNotFound(order_id)
    return await view_of(conn, saga)


async def view_of(conn: db.Connection, saga: Saga) -> SagaView:
    transitions = await sagas.transitions(conn, saga.order_id)
    return SagaView(
        order_id=saga.order_id,
        state=saga.state.value,
        attempts=saga.attempts,
        transitions=[
            TransitionView(
                from_state=t.from_state, to_state=t.to_state, message_id=t.message_id, at=t.at
            )
            for t in transitions
        ],
    )


async def saga_list(
    conn: db.Connection, *, state: SagaState | None, limit: int
) -> list[SagaSummary]:
    return [
        SagaSummary(
            order_id=row.saga.order_id,
            state=row.saga.state.value,
            attempts=row.saga.attempts,
            timeout_at=row.saga.timeout_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
        for row in await sagas.listing(conn, state=state, limit=limit)
    ]
