"""The database itself refuses negative stock, and the ledger check sees tampering."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from inventory_service.adapters.stock import check_ledger
from tests.inventory_service.conftest import stock_bin
from tests.support import unique


async def _item_id(conn: asyncpg.Connection, sku: str) -> int:
    item_id: int = await conn.fetchval("SELECT id FROM bin_items WHERE sku_id = $1", sku)
    return item_id


async def test_raw_sql_cannot_make_atp_or_reserved_negative(
    client: AsyncTestClient[Any], conn: asyncpg.Connection
) -> None:
    sku = unique("sku-")
    await stock_bin(client, {sku: 3})
    item_id = await _item_id(conn, sku)
    with pytest.raises(asyncpg.CheckViolationError, match="bin_items_atp_not_negative"):
        await conn.execute("UPDATE bin_items SET reserved = 4 WHERE id = $1", item_id)
    with pytest.raises(asyncpg.CheckViolationError, match="bin_items_atp_not_negative"):
        await conn.execute("UPDATE bin_items SET on_hand = on_hand - 4 WHERE id = $1", item_id)
    with pytest.raises(asyncpg.CheckViolationError, match="bin_items_reserved_not_negative"):
        await conn.execute("UPDATE bin_items SET reserved = -1 WHERE id = $1", item_id)
    assert (
        await conn.fetchval("SELECT on_hand - reserved FROM bin_items WHERE id = $1", item_id) == 3
    )


async def test_the_ledger_check_reports_a_quantity_changed_behind_its_back(
    client: AsyncTestClient[Any], conn: asyncpg.Connection
) -> None:
    sku = unique("sku-")
    await stock_bin(client, {sku: 3})
    item_id = await _item_id(conn, sku)
    async with conn.transaction():
        await conn.execute("UPDATE bin_items SET on_hand = 7 WHERE id = $1", item_id)
        found = [m for m in await check_ledger(conn) if m.bin_item_id == item_id]
        assert [(m.column, m.current, m.expected) for m in found] == [("on_hand", 7, 3)]
        await conn.execute("UPDATE bin_items SET on_hand = 3 WHERE id = $1", item_id)
