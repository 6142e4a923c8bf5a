"""Bins, bin item settings and transactions (SQL). Quantities change only through
`adapters.stock.apply`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from contracts.inventory import BinProperty
from messaging import db


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class BinFields:
    description: str | None = None
    status: int = 1
    channel: str | None = None
    type: str | None = None
    leaf_bin: bool = False
    properties: Sequence[BinProperty] = ()


def _properties(fields: BinFields) -> list[dict[str, str]]:
    return [{"name": p.name, "value": p.value} for p in fields.properties]


async def create_bin(
    conn: db.Connection, organization_id: str, name: str, fields: BinFields
) -> asyncpg.Record | None:
    """None when the organization has a bin of that name already."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "INSERT INTO bins (organization_id, name, description, status, channel, type, leaf_bin,"
        " properties) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT (organization_id, name) WHERE deleted_at IS NULL DO NOTHING RETURNING *",
        organization_id,
        name,
        fields.description,
        fields.status,
        fields.channel,
        fields.type,
        fields.leaf_bin,
        _properties(fields),
    )
    return row


async def get_bin(conn: db.Connection, organization_id: str, name: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT * FROM bins WHERE organization_id = $1 AND name = $2 AND deleted_at IS NULL",
        organization_id,
        name,
    )
    return row


async def list_bins(conn: db.Connection, organization_id: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT * FROM bins WHERE organization_id = $1 AND deleted_at IS NULL ORDER BY name",
        organization_id,
    )
    return rows


async def update_bin(
    conn: db.Connection, organization_id: str, name: str, fields: BinFields
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "UPDATE bins SET description = $3, status = $4, channel = $5, type = $6, leaf_bin = $7,"
        " properties = $8, updated_at = now()"
        " WHERE organization_id = $1 AND name = $2 AND deleted_at IS NULL RETURNING *",
        organization_id,
        name,
        fields.description,
        fields.status,
        fields.channel,
        fields.type,
        fields.leaf_bin,
        _properties(fields),
    )
    return row


async def bin_holds_stock(conn: db.Connection, bin_id: int) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM bin_items WHERE bin_id = $1"
            " AND (on_hand <> 0 OR reserved <> 0 OR back_ordered_qty <> 0))",
            bin_id,
        )
    )


async def delete_bin(conn: db.Connection, bin_id: int) -> None:
    await conn.execute("UPDATE bins SET deleted_at = now() WHERE id = $1", bin_id)


def bin_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "name": row["name"],
        "description": row["description"],
        "status": row["status"],
        "channel": row["channel"],
        "type": row["type"],
        "leafBin": row["leaf_bin"],
        "properties": row["properties"],
        "createdTime": epoch_ms(row["created_at"]),
        "updatedTime": epoch_ms(row["updated_at"]),
    }


# -- bin items ---------------------------------------------------------------------------------


async def create_item(
    conn: db.Connection,
    organization_id: str,
    bin_id: int,
    sku_id: str,
    *,
    status: int = 1,
    low_stock_threshold: int = 0,
    out_of_stock_threshold: int = 0,
) -> int | None:
    """A bin item with zero quantities (the ledger adds them); None if it exists already."""
    item_id: int | None = await conn.fetchval(
        "INSERT INTO bin_items (organization_id, bin_id, sku_id, status, low_stock_threshold,"
        " out_of_stock_threshold) VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (bin_id, sku_id) DO NOTHING RETURNING id",
        organization_id,
        bin_id,
        sku_id,
        status,
        low_stock_threshold,
        out_of_stock_threshold,
    )
    return item_id


async def update_item_settings(
    conn: db.Connection,
    bin_item_id: int,
    *,
    status: int | None,
    low_stock_threshold: int | None,
    out_of_stock_threshold: int | None,
) -> None:
    await conn.execute(
        "UPDATE bin_items SET status = coalesce($2, status),"
        " low_stock_threshold = coalesce($3, low_stock_threshold),"
        " out_of_stock_threshold = coalesce($4, out_of_stock_threshold), updated_at = now()"
        " WHERE id = $1",
        bin_item_id,
        status,
        low_stock_threshold,
        out_of_stock_threshold,
    )


async def item_row(conn: db.Connection, organization_id: str, bin_item_id: int) -> asyncpg.Record:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT bi.*, b.name AS bin_name FROM bin_items bi JOIN bins b ON b.id = bi.bin_id"
        " WHERE bi.organization_id = $1 AND bi.id = $2",
        organization_id,
        bin_item_id,
    )
    assert row is not None
    return row


# -- transactions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TransactionRecord:
    bin_item_id: int
    type: int
    status: int
    atp_qty: int
    back_ordered_qty: int
    from_bin_name: str | None
    to_bin_name: str | None
    reference_id: str | None
    notes: str | None
    properties: str | None


async def insert_transaction(
    conn: db.Connection, organization_id: str, record: TransactionRecord
) -> int:
    transaction_id: int = await conn.fetchval(
        "INSERT INTO transactions (organization_id, bin_item_id, type, status, atp_qty,"
        " back_ordered_qty, from_bin_name, to_bin_name, reference_id, notes, properties)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        organization_id,
        record.bin_item_id,
        record.type,
        record.status,
        record.atp_qty,
        record.back_ordered_qty,
        record.from_bin_name,
        record.to_bin_name,
        record.reference_id,
        record.notes,
        record.properties,
    )
    return transaction_id


_TRANSACTION_SELECT = (
    "SELECT t.*, bi.sku_id, b.name AS bin_name FROM transactions t"
    " JOIN bin_items bi ON bi.id = t.bin_item_id JOIN bins b ON b.id = bi.bin_id"
)


async def get_transaction(
    conn: db.Connection, organization_id: str, transaction_id: int
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        _TRANSACTION_SELECT + " WHERE t.organization_id = $1 AND t.id = $2",
        organization_id,
        transaction_id,
    )
    return row


async def patch_transaction(
    conn: db.Connection,
    organization_id: str,
    transaction_id: int,
    *,
    status: int | None,
    notes: str | None,
    properties: str | None,
) -> bool:
    updated = await conn.fetchval(
        "UPDATE transactions SET status = coalesce($3, status), notes = coalesce($4, notes),"
        " properties = coalesce($5, properties), updated_at = now()"
        " WHERE organization_id = $1 AND id = $2 RETURNING true",
        organization_id,
        transaction_id,
        status,
        notes,
        properties,
    )
    return bool(updated)


def transaction_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "binItemId": row["bin_item_id"],
        "binName": row["bin_name"],
        "skuId": row["sku_id"],
        "type": row["type"],
        "status": row["status"],
        "atpQty": row["atp_qty"],
        "backOrderedQty": row["back_ordered_qty"],
        "fromBinName": row["from_bin_name"],
        "toBinName": row["to_bin_name"],
        "referenceId": row["reference_id"],
        "notes": row["notes"],
        "properties": row["properties"],
        "createdTime": epoch_ms(row["created_at"]),
        "updatedTime": epoch_ms(row["updated_at"]),
    }
