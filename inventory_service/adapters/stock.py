"""Bin items and the stock-movement ledger: the only way quantities change."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from inventory_service.domain.stock import StockLevel
from inventory_service.domain.transactions import Delta
from messaging import db

_LEVEL_COLUMNS = (
    "bi.id, b.name AS bin_name, bi.sku_id, bi.on_hand, bi.reserved, bi.back_ordered_qty,"
    " bi.pre_ordered_qty, bi.low_stock_threshold, bi.out_of_stock_threshold"
)


def level_of(row: asyncpg.Record) -> StockLevel:
    return StockLevel(
        bin_item_id=row["id"],
        bin_name=row["bin_name"],
        sku_id=row["sku_id"],
        on_hand=row["on_hand"],
        reserved=row["reserved"],
        back_ordered=row["back_ordered_qty"],
        pre_ordered=row["pre_ordered_qty"],
        low_stock_threshold=row["low_stock_threshold"],
        out_of_stock_threshold=row["out_of_stock_threshold"],
    )


async def lock_organization(conn: db.Connection, organization_id: str) -> None:
    """Every transaction that changes an organization's stock takes this lock first.

    Consumers handle batches of messages in one transaction, each locking its own rows; without
    one lock taken first, two batches could lock the same rows in opposite orders and deadlock.
    """
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('inventory:' || $1::text))", organization_id
    )


async def levels_for_skus(
    conn: db.Connection, organization_id: str, skus: Sequence[str]
) -> list[StockLevel]:
    """Every active bin item of these SKUs, locked in id order."""
    rows = await conn.fetch(
        f"SELECT {_LEVEL_COLUMNS} FROM bin_items bi JOIN bins b ON b.id = bi.bin_id"
        " WHERE bi.organization_id = $1 AND bi.sku_id = ANY($2::text[])"
        " AND b.deleted_at IS NULL AND b.status = 1 AND bi.status = 1"
        " ORDER BY bi.id FOR UPDATE OF bi",
        organization_id,
        list(skus),
    )
    return [level_of(r) for r in rows]


async def reservation_candidates(
    conn: db.Connection, organization_id: str, order_id: str, skus: Sequence[str]
) -> tuple[str | None, list[StockLevel]]:
    """In one round trip: the organization's stock lock, the order's reservation status (None
    if it has none) and, if none, its SKUs' active bin items locked in id order."""
    rows = await conn.fetch(
        "SELECT * FROM reservation_candidates($1, $2, $3::text[])",
        organization_id,
        order_id,
        list(skus),
    )
    if rows and rows[0]["status"] is not None:
        return rows[0]["status"], []
    return None, [level_of(r) for r in rows]


async def level_in_bin(
    conn: db.Connection, organization_id: str, bin_name: str, sku_id: str, *, lock: bool = False
) -> StockLevel | None:
    row = await conn.fetchrow(
        f"SELECT {_LEVEL_COLUMNS} FROM bin_items bi JOIN bins b ON b.id = bi.bin_id"
        " WHERE bi.organization_id = $1 AND b.name = $2 AND bi.sku_id = $3"
        " AND b.deleted_at IS NULL" + (" FOR UPDATE OF bi" if lock else ""),
        organization_id,
        bin_name,
        sku_id,
    )
    return None if row is None else level_of(row)


async def levels_of_sku(conn: db.Connection, organization_id: str, sku_id: str) -> list[StockLevel]:
    rows = await conn.fetch(
        f"SELECT {_LEVEL_COLUMNS} FROM bin_items bi JOIN bins b ON b.id = bi.bin_id"
        " WHERE bi.organization_id = $1 AND bi.sku_id = $2 AND b.deleted_at IS NULL"
        " ORDER BY b.name",
        organization_id,
        sku_id,
    )
    return [level_of(r) for r in rows]


@dataclass(frozen=True, slots=True)
class Change:
    """A bin item after a set of ledger rows, with its ATP before them."""

    level: StockLevel
    atp_before: int


@dataclass(frozen=True, slots=True)
class Refs:
    """What a ledger row points at."""

    order_id: str | None = None
    transaction_id: int | None = None
    return_id: str | None = None
    reservation_id: uuid.UUID | None = None


_APPLY = """
WITH m AS (
    SELECT * FROM unnest($2::bigint[], $3::text[], $4::int[], $5::int[], $6::int[], $7::int[])
        AS m (bin_item_id, kind, d_on_hand, d_reserved, d_back, d_pre)
), ledger AS (
    INSERT INTO stock_movements (organization_id, bin_item_id, kind, on_hand_delta,
        reserved_delta, back_ordered_delta, pre_ordered_delta, order_id, transaction_id,
        return_id, reservation_id)
    SELECT $1, bin_item_id, kind, d_on_hand, d_reserved, d_back, d_pre, $8, $9, $10, $11 FROM m
), total AS (
    SELECT bin_item_id, sum(d_on_hand)::int AS d_on_hand, sum(d_reserved)::int AS d_reserved,
        sum(d_back)::int AS d_back, sum(d_pre)::int AS d_pre
    FROM m GROUP BY bin_item_id
)
UPDATE bin_items bi SET on_hand = bi.on_hand + t.d_on_hand, reserved = bi.reserved + t.d_reserved,
    back_ordered_qty = bi.back_ordered_qty + t.d_back,
    pre_ordered_qty = bi.pre_ordered_qty + t.d_pre, updated_at = now()
FROM total t, bins b
WHERE bi.id = t.bin_item_id AND bi.organization_id = $1 AND b.id = bi.bin_id
RETURNING bi.id, b.name AS bin_name, bi.sku_id, bi.on_hand, bi.reserved, bi.back_ordered_qty,
    bi.pre_ordered_qty, bi.low_stock_threshold, bi.out_of_stock_threshold,
    t.d_on_hand, t.d_reserved
"""


class LedgerError(RuntimeError):
    pass


async def apply(
    conn: db.Connection, organization_id: str, deltas: Sequence[Delta], refs: Refs = Refs()
) -> list[Change]:
    """Write the ledger rows and move the quantities in ONE statement, so they cannot part.

    The CHECK constraints of `bin_items` reject any result with a negative ATP or reservation
    (asyncpg.CheckViolationError)."""
    if not deltas:
        return []
    rows = await conn.fetch(
        _APPLY,
        organization_id,
        [d.bin_item_id for d in deltas],
        [d.kind for d in deltas],
        [d.on_hand for d in deltas],
        [d.reserved for d in deltas],
        [d.back_ordered for d in deltas],
        [d.pre_ordered for d in deltas],
        refs.order_id,
        refs.transaction_id,
        refs.return_id,
        refs.reservation_id,
    )
    if len(rows) != len({d.bin_item_id for d in deltas}):
        raise LedgerError(f"bin items {[d.bin_item_id for d in deltas]} not all found")
    changes = []
    for row in rows:
        level = level_of(row)
        before = (level.on_hand - row["d_on_hand"]) - (level.reserved - row["d_reserved"])
        changes.append(Change(level, before))
    return sorted(changes, key=lambda c: c.level.bin_item_id)


@dataclass(frozen=True, slots=True)
class Mismatch:
    bin_item_id: int
    column: str
    current: int
    expected: int


_CHECK = """
WITH sums AS (
    SELECT bin_item_id, sum(on_hand_delta) AS on_hand, sum(reserved_delta) AS reserved,
        sum(back_ordered_delta) AS back_ordered, sum(pre_ordered_delta) AS pre_ordered
    FROM stock_movements GROUP BY bin_item_id
), holds AS (
    SELECT ri.bin_item_id, sum(ri.quantity - ri.deducted) AS held
    FROM reservation_items ri JOIN reservations r ON r.id = ri.reservation_id
    WHERE ri.active AND r.status IN ('held', 'committed', 'deducted')
    GROUP BY ri.bin_item_id
)
SELECT bi.id, bi.on_hand, bi.reserved, bi.back_ordered_qty, bi.pre_ordered_qty,
    coalesce(s.on_hand, 0) AS l_on_hand, coalesce(s.reserved, 0) AS l_reserved,
    coalesce(s.back_ordered, 0) AS l_back_ordered, coalesce(s.pre_ordered, 0) AS l_pre_ordered,
    coalesce(h.held, 0) AS held
FROM bin_items bi LEFT JOIN sums s ON s.bin_item_id = bi.id LEFT JOIN holds h
    ON h.bin_item_id = bi.id
WHERE bi.on_hand <> coalesce(s.on_hand, 0) OR bi.reserved <> coalesce(s.reserved, 0)
    OR bi.back_ordered_qty <> coalesce(s.back_ordered, 0)
    OR bi.pre_ordered_qty <> coalesce(s.pre_ordered, 0) OR bi.reserved <> coalesce(h.held, 0)
ORDER BY bi.id
"""


async def check_ledger(conn: db.Connection) -> list[Mismatch]:
    """Bin items whose quantities differ from the ledger's sums, or whose `reserved` differs
    from what active reservations hold. Empty means the books balance."""
    found: list[Mismatch] = []
    for row in await conn.fetch(_CHECK):
        pairs: list[tuple[str, Any, Any]] = [
            ("on_hand", row["on_hand"], row["l_on_hand"]),
            ("reserved", row["reserved"], row["l_reserved"]),
            ("back_ordered_qty", row["back_ordered_qty"], row["l_back_ordered"]),
            ("pre_ordered_qty", row["pre_ordered_qty"], row["l_pre_ordered"]),
            ("reserved (holds)", row["reserved"], row["held"]),
        ]
        found += [
            Mismatch(row["id"], name, int(current), int(expected))
            for name, current, expected in pairs
            if current != expected
        ]
    return found
