"""Bin items and the stock-movement ledger: the only way quantities change."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
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


# Lock order, the same everywhere, so that no two transactions wait for each other in a circle:
# (1) the advisory lock of each organization involved, in sorted order; (2) bin items; (3)
# reservation rows. Batches of `order.placed` events — the hot path — take (1) shared and lock
# every bin item they can touch in ONE statement, in id order, so that any number of them run
# side by side. Every other change to an organization's stock (the other order events, HTTP
# commands, bulk requests, the expiry sweeper) takes (1) exclusively: it runs alone in that
# organization, after the placements in flight have committed, and may lock rows in any order.


async def lock_organizations(
    conn: db.Connection, organization_ids: Iterable[str], *, shared: bool = False
) -> None:
    """Take the organizations' stock locks (transaction-level), in sorted order."""
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    for organization_id in sorted(set(organization_ids)):
        await conn.execute(
            f"SELECT {function}(hashtext('inventory:' || $1::text))", organization_id
        )


async def lock_organization(conn: db.Connection, organization_id: str) -> None:
    """The organization's stock lock, exclusively: see the lock order above."""
    await lock_organizations(conn, [organization_id])


@dataclass(frozen=True, slots=True)
class Locked:
    """A bin item locked for a batch of order events; `usable` if its bin and itself are
    active (only those take new holds)."""

    organization_id: str
    usable: bool
    level: StockLevel


_LOCK_FOR_ORDERS = f"""
SELECT bi.organization_id, (b.deleted_at IS NULL AND b.status = 1 AND bi.status = 1) AS usable,
    {_LEVEL_COLUMNS}
FROM bin_items bi JOIN bins b ON b.id = bi.bin_id
WHERE bi.id IN (
    SELECT id FROM bin_items
    WHERE (organization_id, sku_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
    UNION
    SELECT ri.bin_item_id FROM reservation_items ri JOIN reservations r ON r.id = ri.reservation_id
    WHERE ri.active AND (r.organization_id, r.order_id) IN
        (SELECT * FROM unnest($3::text[], $4::text[]))
)
ORDER BY bi.id FOR UPDATE OF bi
"""


async def lock_for_orders(
    conn: db.Connection,
    skus: Sequence[tuple[str, str]],
    holders: Sequence[tuple[str, str]] = (),
) -> list[Locked]:
    """In one statement and in id order, lock every bin item of these (organization, SKU)
    pairs and every bin item held by the reservations of these (organization, order) pairs."""
    rows = await conn.fetch(
        _LOCK_FOR_ORDERS,
        [organization for organization, _ in skus],
        [sku for _, sku in skus],
        [organization for organization, _ in holders],
        [order for _, order in holders],
    )
    return [Locked(r["organization_id"], r["usable"], level_of(r)) for r in rows]


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
