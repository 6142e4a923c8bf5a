"""`commerce inventory check-ledger`: do current quantities equal the stock-movement ledger?"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from inventory_service.adapters.stock import Mismatch, check_ledger
from inventory_service.main import SCHEMA
from messaging import db
from messaging.settings import RuntimeSettings


async def mismatches(settings: RuntimeSettings) -> list[Mismatch]:
    conn = await db.connect(settings.database_url, settings.schema(SCHEMA))
    try:
        return await check_ledger(conn)
    finally:
        await conn.close()


def _check_ledger(_: argparse.Namespace, settings: RuntimeSettings) -> int:
    found = asyncio.run(mismatches(settings))
    for m in found:
        print(f"bin item {m.bin_item_id}: {m.column} is {m.current}, ledger says {m.expected}")
    print("ledger balances" if not found else f"{len(found)} mismatch(es)")
    return 0 if not found else 1


def register(subparsers: Any) -> None:
    inventory = subparsers.add_parser("inventory", help="inventory service commands")
    commands = inventory.add_subparsers(dest="inventory_command", required=True)
    check = commands.add_parser(
        "check-ledger", help="check that every bin item's quantities equal its ledger's sums"
    )
    check.set_defaults(handler=_check_ledger)
