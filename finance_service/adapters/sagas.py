"""asyncpg SQL for the saga store: `sagas` and `saga_transitions` (migrations/0001_finance.sql).

Writes are optimistic: `save` inserts a new saga (ON CONFLICT DO NOTHING) or updates one only at
the version it was read at, and reports whether it won. The timeout job is the one reader that
locks: `due` takes rows `FOR UPDATE SKIP LOCKED`, so replicas share the due sagas out between
them and each timeout fires in exactly one transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from finance_service.domain.saga import Saga, SagaState, Transition
from messaging import db

_COLUMNS = (
    "order_id, state, attempts, basket_id, full_name, email, total_money, timeout_at, version"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SagaRow:
    """A saga as listed: the domain object plus its bookkeeping times."""

    saga: Saga
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class TransitionRow:
    from_state: str | None
    to_state: str
    message_id: str
    cause: str
    at: datetime


def _saga(row: asyncpg.Record) -> Saga:
    return Saga(
        order_id=row["order_id"],
        state=SagaState(row["state"]),
        attempts=row["attempts"],
        basket_id=row["basket_id"],
        full_name=row["full_name"],
        email=row["email"],
        total_money=row["total_money"],
        timeout_at=row["timeout_at"],
        version=row["version"],
    )


async def load(conn: db.Connection, order_id: uuid.UUID) -> Saga | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM sagas WHERE order_id = $1", order_id)
    return None if row is None else _saga(row)


async def save(conn: db.Connection, transition: Transition, *, message_id: str, cause: str) -> bool:
    """Store the saga after `transition` and record the transition; False when another writer
    changed the saga since it was read (nothing is written then: reload and decide again)."""
    saga = transition.saga
    if saga.version == 0:
        stored = await conn.fetchval(
            "INSERT INTO sagas (order_id, state, attempts, basket_id, full_name, email,"
            " total_money, timeout_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT (order_id) DO NOTHING RETURNING true",
            saga.order_id,
            saga.state.value,
            saga.attempts,
            saga.basket_id,
            saga.full_name,
            saga.email,
            saga.total_money,
            saga.timeout_at,
        )
    else:
        stored = await conn.fetchval(
            "UPDATE sagas SET state = $3, attempts = $4, basket_id = $5, full_name = $6,"
            " email = $7, total_money = $8, timeout_at = $9, version = version + 1,"
            " updated_at = now() WHERE order_id = $1 AND version = $2 RETURNING true",
            saga.order_id,
            saga.version,
            saga.state.value,
            saga.attempts,
            saga.basket_id,
            saga.full_name,
            saga.email,
            saga.total_money,
            saga.timeout_at,
        )
    if not stored:
        return False
    await conn.execute(
        "INSERT INTO saga_transitions (order_id, from_state, to_state, message_id, cause)"
        " VALUES ($1, $2, $3, $4, $5)",
        saga.order_id,
        transition.from_state.value if transition.from_state else None,
        transition.to_state.value,
        message_id,
        cause,
    )
    return True


async def due(conn: db.Connection, now: datetime, *, limit: int) -> list[Saga]:
    """Placed sagas whose timeout has come, locked for this transaction; rows another replica
    holds are skipped (it is firing them)."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM sagas WHERE timeout_at <= $1 AND state = 'Placed'"
        " ORDER BY timeout_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        now,
        limit,
    )
    return [_saga(row) for row in rows]


async def order_ids_in_state(conn: db.Connection, state: SagaState) -> list[uuid.UUID]:
    rows = await conn.fetch(
        "SELECT order_id FROM sagas WHERE state = $1 ORDER BY updated_at, order_id", state.value
    )
    return [row["order_id"] for row in rows]


async def listing(conn: db.Connection, *, state: SagaState | None, limit: int) -> list[SagaRow]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS}, created_at, updated_at FROM sagas"
        " WHERE $1::text IS NULL OR state = $1 ORDER BY updated_at DESC, order_id LIMIT $2",
        state.value if state else None,
        limit,
    )
    return [
        SagaRow(saga=_saga(row), created_at=row["created_at"], updated_at=row["updated_at"])
        for row in rows
    ]


async def transitions(conn: db.Connection, order_id: uuid.UUID) -> list[TransitionRow]:
    rows = await conn.fetch(
        "SELECT from_state, to_state, message_id, cause, at FROM saga_transitions"
        " WHERE order_id = $1 ORDER BY id",
        order_id,
    )
    return [
        TransitionRow(
            from_state=row["from_state"],
            to_state=row["to_state"],
            message_id=row["message_id"],
            cause=row["cause"],
            at=row["at"],
        )
        for row in rows
    ]
