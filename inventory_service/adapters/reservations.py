"""Reservations, their items, shipments and returns (SQL)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from inventory_service.adapters.stock import Change, LedgerError, level_of
from inventory_service.domain.reservations import HeldItem, Status
from inventory_service.domain.stock import Hold
from messaging import db


@dataclass(frozen=True, slots=True)
class Reservation:
    id: uuid.UUID
    organization_id: str
    order_id: str
    status: Status
    reason: str | None
    expires_at: datetime | None


def _reservation(row: Any) -> Reservation:
    return Reservation(
        id=row["id"],
        organization_id=row["organization_id"],
        order_id=row["order_id"],
        status=Status(row["status"]),
        reason=row["reason"],
        expires_at=row["expires_at"],
    )


async def for_order(conn: db.Connection, organization_id: str, order_id: str) -> Reservation | None:
    row = await conn.fetchrow(
        "SELECT * FROM reservations WHERE organization_id = $1 AND order_id = $2",
        organization_id,
        order_id,
    )
    return None if row is None else _reservation(row)


async def insert(
    conn: db.Connection,
    organization_id: str,
    order_id: str,
    status: Status,
    *,
    expires_at: datetime | None = None,
    reason: str | None = None,
) -> uuid.UUID:
    reservation_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO reservations (id, organization_id, order_id, status, reason, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        reservation_id,
        organization_id,
        order_id,
        status.value,
        reason,
        expires_at,
    )
    return reservation_id


async def update(
    conn: db.Connection,
    reservation_id: uuid.UUID,
    status: Status,
    *,
    reason: str | None = None,
    expires_at: datetime | None = None,
) -> None:
    await conn.execute(
        "UPDATE reservations SET status = $2, reason = $3, expires_at = coalesce($4, expires_at),"
        " updated_at = now() WHERE id = $1",
        reservation_id,
        status.value,
        reason,
        expires_at,
    )


async def add_items(conn: db.Connection, reservation_id: uuid.UUID, holds: Sequence[Hold]) -> None:
    await conn.execute(
        "INSERT INTO reservation_items (reservation_id, bin_item_id, variant_id, warehouse_id,"
        " quantity) SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::int[])",
        reservation_id,
        [h.bin_item_id for h in holds],
        [h.variant_id for h in holds],
        [h.bin_name for h in holds],
        [h.quantity for h in holds],
    )


_HOLD = """
WITH reservation AS (
    INSERT INTO reservations (id, organization_id, order_id, status, expires_at)
    VALUES ($1, $2, $3, $4, $5)
), hold AS (
    SELECT * FROM unnest($6::bigint[], $7::text[], $8::text[], $9::int[])
        AS h (bin_item_id, variant_id, warehouse_id, quantity)
), items AS (
    INSERT INTO reservation_items (reservation_id, bin_item_id, variant_id, warehouse_id, quantity)
    SELECT $1, bin_item_id, variant_id, warehouse_id, quantity FROM hold
), ledger AS (
    INSERT INTO stock_movements (organization_id, bin_item_id, kind, reserved_delta, order_id,
        reservation_id)
    SELECT $2, bin_item_id, 'reserve', quantity, $3, $1 FROM hold
), total AS (
    SELECT bin_item_id, sum(quantity)::int AS quantity FROM hold GROUP BY bin_item_id
)
UPDATE bin_items bi SET reserved = bi.reserved + t.quantity, updated_at = now()
FROM total t, bins b
WHERE bi.id = t.bin_item_id AND bi.organization_id = $2 AND b.id = bi.bin_id
RETURNING bi.id, b.name AS bin_name, bi.sku_id, bi.on_hand, bi.reserved, bi.back_ordered_qty,
    bi.pre_ordered_qty, bi.low_stock_threshold, bi.out_of_stock_threshold, t.quantity
"""


async def insert_holding(
    conn: db.Connection,
    organization_id: str,
    order_id: str,
    status: Status,
    expires_at: datetime | None,
    holds: Sequence[Hold],
) -> tuple[uuid.UUID, list[Change]]:
    """A new reservation with its items, ledger rows and reserved quantities: ONE statement."""
    reservation_id = uuid.uuid4()
    rows = await conn.fetch(
        _HOLD,
        reservation_id,
        organization_id,
        order_id,
        status.value,
        expires_at,
        [h.bin_item_id for h in holds],
        [h.variant_id for h in holds],
        [h.bin_name for h in holds],
        [h.quantity for h in holds],
    )
    if len(rows) != len({h.bin_item_id for h in holds}):
        raise LedgerError(f"bin items of {holds} not all found")
    changes = [Change(level_of(r), level_of(r).atp + r["quantity"]) for r in rows]
    return reservation_id, changes


async def lock_for_orders(
    conn: db.Connection, orders: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], Status]:
    """Lock (in id order) the reservations of these (organization, order) pairs; returns their
    statuses. Orders without one are absent (a concurrent insert meets the unique key)."""
    rows = await conn.fetch(
        "SELECT organization_id, order_id, status FROM reservations"
        " WHERE (organization_id, order_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
        " ORDER BY id FOR UPDATE",
        [organization for organization, _ in orders],
        [order for _, order in orders],
    )
    return {(r["organization_id"], r["order_id"]): Status(r["status"]) for r in rows}


@dataclass(slots=True)
class NewReservations:
    """Reservations decided by a batch's handlers, written together by `insert_many`."""

    ids: list[uuid.UUID] = field(default_factory=list)
    organization_ids: list[str] = field(default_factory=list)
    order_ids: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    reasons: list[str | None] = field(default_factory=list)
    expires_at: list[datetime | None] = field(default_factory=list)
    holds: list[tuple[uuid.UUID, str, str, Hold]] = field(default_factory=list)

    def add(
        self,
        reservation_id: uuid.UUID,
        organization_id: str,
        order_id: str,
        status: Status,
        *,
        reason: str | None = None,
        expires_at: datetime | None = None,
        holds: Sequence[Hold] = (),
    ) -> None:
        self.ids.append(reservation_id)
        self.organization_ids.append(organization_id)
        self.order_ids.append(order_id)
        self.statuses.append(status.value)
        self.reasons.append(reason)
        self.expires_at.append(expires_at)
        self.holds += [(reservation_id, organization_id, order_id, h) for h in holds]

    def __len__(self) -> int:
        return len(self.ids)


_INSERT_MANY = """
WITH reservation AS (
    INSERT INTO reservations (id, organization_id, order_id, status, reason, expires_at)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
        $6::timestamptz[])
), hold AS (
    SELECT * FROM unnest($7::uuid[], $8::text[], $9::text[], $10::bigint[], $11::text[],
        $12::text[], $13::int[])
        AS h (reservation_id, organization_id, order_id, bin_item_id, variant_id, warehouse_id,
            quantity)
), items AS (
    INSERT INTO reservation_items (reservation_id, bin_item_id, variant_id, warehouse_id, quantity)
    SELECT reservation_id, bin_item_id, variant_id, warehouse_id, quantity FROM hold
), ledger AS (
    INSERT INTO stock_movements (organization_id, bin_item_id, kind, reserved_delta, order_id,
        reservation_id)
    SELECT organization_id, bin_item_id, 'reserve', quantity, order_id, reservation_id FROM hold
), total AS (
    SELECT organization_id, bin_item_id, sum(quantity)::int AS quantity FROM hold
    GROUP BY organization_id, bin_item_id
)
UPDATE bin_items bi SET reserved = bi.reserved + t.quantity, updated_at = now()
FROM total t
WHERE bi.id = t.bin_item_id AND bi.organization_id = t.organization_id
RETURNING bi.id, bi.reserved
"""


async def insert_many(conn: db.Connection, new: NewReservations) -> dict[int, int]:
    """The reservations with their items, ledger rows and reserved quantities: ONE statement.
    Returns each changed bin item's `reserved` afterwards."""
    if not new:
        return {}
    holds = new.holds
    rows = await conn.fetch(
        _INSERT_MANY,
        new.ids,
        new.organization_ids,
        new.order_ids,
        new.statuses,
        new.reasons,
        new.expires_at,
        [reservation_id for reservation_id, _, _, _ in holds],
        [organization for _, organization, _, _ in holds],
        [order for _, _, order, _ in holds],
        [h.bin_item_id for _, _, _, h in holds],
        [h.variant_id for _, _, _, h in holds],
        [h.bin_name for _, _, _, h in holds],
        [h.quantity for _, _, _, h in holds],
    )
    return {r["id"]: r["reserved"] for r in rows}


async def held_items(conn: db.Connection, reservation_id: uuid.UUID) -> list[HeldItem]:
    rows = await conn.fetch(
        "SELECT id, bin_item_id, variant_id, warehouse_id, quantity - deducted AS remaining"
        " FROM reservation_items WHERE reservation_id = $1 AND active ORDER BY id",
        reservation_id,
    )
    return [
        HeldItem(r["id"], r["bin_item_id"], r["variant_id"], r["warehouse_id"], r["remaining"])
        for r in rows
    ]


async def deactivate_items(conn: db.Connection, reservation_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE reservation_items SET active = false WHERE reservation_id = $1 AND active",
        reservation_id,
    )


async def add_deducted(conn: db.Connection, amounts: Sequence[tuple[int, int]]) -> None:
    await conn.execute(
        "UPDATE reservation_items ri SET deducted = ri.deducted + d.quantity"
        " FROM unnest($1::bigint[], $2::int[]) AS d (id, quantity) WHERE ri.id = d.id",
        [item_id for item_id, _ in amounts],
        [quantity for _, quantity in amounts],
    )


async def due(conn: db.Connection, limit: int) -> list[tuple[uuid.UUID, str]]:
    """Holds past their expiry (id, organization), oldest first; not locked (see the sweeper)."""
    rows = await conn.fetch(
        "SELECT id, organization_id FROM reservations WHERE status = 'held'"
        " AND expires_at < now() ORDER BY expires_at LIMIT $1",
        limit,
    )
    return [(r["id"], r["organization_id"]) for r in rows]


async def lock_due(conn: db.Connection, ids: Sequence[uuid.UUID]) -> list[Reservation]:
    """The still-due holds among `ids` that no other replica is working on."""
    rows = await conn.fetch(
        "SELECT * FROM reservations WHERE id = ANY($1::uuid[]) AND status = 'held'"
        " AND expires_at < now() ORDER BY id FOR UPDATE SKIP LOCKED",
        list(ids),
    )
    return [_reservation(r) for r in rows]


async def view(conn: db.Connection, organization_id: str, order_id: str) -> dict[str, Any] | None:
    reservation = await for_order(conn, organization_id, order_id)
    if reservation is None:
        return None
    rows = await conn.fetch(
        "SELECT variant_id, warehouse_id, quantity, deducted, active FROM reservation_items"
        " WHERE reservation_id = $1 ORDER BY id",
        reservation.id,
    )
    return {
        "reservation_id": str(reservation.id),
        "order_id": reservation.order_id,
        "status": reservation.status.value,
        "reason": reservation.reason,
        "expires_at": reservation.expires_at,
        "items": [
            {
                "variant_id": r["variant_id"],
                "warehouse_id": r["warehouse_id"],
                "quantity": r["quantity"],
                "deducted": r["deducted"],
                "active": r["active"],
            }
            for r in rows
        ],
    }


async def record_shipment(
    conn: db.Connection, organization_id: str, shipment_id: str, order_id: str
) -> bool:
    """False when this shipment was deducted already."""
    inserted = await conn.fetchval(
        "INSERT INTO shipment_deductions (organization_id, shipment_id, order_id)"
        " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING true",
        organization_id,
        shipment_id,
        order_id,
    )
    return bool(inserted)


async def record_return(
    conn: db.Connection,
    organization_id: str,
    return_id: str,
    order_id: str,
    warehouse_id: str,
    received_at: datetime,
) -> bool:
    """False when this return was received already."""
    inserted = await conn.fetchval(
        "INSERT INTO return_receipts (organization_id, return_id, order_id, warehouse_id,"
        " received_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
        organization_id,
        return_id,
        order_id,
        warehouse_id,
        received_at,
    )
    return bool(inserted)


async def add_return_item(
    conn: db.Connection,
    organization_id: str,
    return_id: str,
    *,
    variant_id: str,
    quantity: int,
    condition: str,
    return_reason: str,
    bin_item_id: int | None,
) -> None:
    await conn.execute(
        "INSERT INTO return_items (organization_id, return_id, variant_id, quantity, condition,"
        " return_reason, restocked, bin_item_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        organization_id,
        return_id,
        variant_id,
        quantity,
        condition,
        return_reason,
        bin_item_id is not None,
        bin_item_id,
    )
