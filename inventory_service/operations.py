"""Units of work shared by the HTTP routes and the bulk-transaction consumer.

Each runs inside the caller's transaction, takes the organization's stock lock (exclusively: see
the lock order in adapters/stock.py) before touching quantities, changes quantities only through
the ledger and returns the messages to publish.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec

from contracts.inventory import (
    BulkBinItem,
    BulkTransactionPayload,
    InventoryTransaction,
    ResponseCode,
    TransactionType,
)
from inventory_service.adapters import catalog, events, stock
from inventory_service.domain import transactions as rules
from inventory_service.domain.stock import StockLevel, crossed_low_stock
from inventory_service.domain.transactions import Delta, TransactionRejected
from messaging import db
from messaging.message import OutgoingMessage
from messaging.outbox import Outbox


def low_stock_alerts(changes: Sequence[stock.Change]) -> list[OutgoingMessage]:
    return [
        events.stock_low(c.level)
        for c in changes
        if crossed_low_stock(c.atp_before, c.level.atp, c.level.low_stock_threshold)
    ]


@dataclass(frozen=True, slots=True)
class TransactionSpec:
    bin_name: str | None
    sku_id: str
    type: int
    status: int = 1
    atp_qty: int = 0
    back_ordered_qty: int = 0
    from_bin_name: str | None = None
    to_bin_name: str | None = None
    reference_id: str | None = None
    notes: str | None = None
    properties: str | None = None


@dataclass(frozen=True, slots=True)
class TransactionDone:
    transaction_id: int
    bin_item_id: int
    messages: list[OutgoingMessage]


async def locked_level(
    conn: db.Connection, organization_id: str, bin_name: str, sku_id: str
) -> StockLevel:
    level = await stock.level_in_bin(conn, organization_id, bin_name, sku_id, lock=True)
    if level is not None:
        return level
    if await catalog.get_bin(conn, organization_id, bin_name) is None:
        raise TransactionRejected(ResponseCode.BIN_NOT_FOUND, f"bin {bin_name!r} not found")
    raise TransactionRejected(
        ResponseCode.BIN_ITEM_NOT_FOUND, f"SKU {sku_id!r} not found in bin {bin_name!r}"
    )


async def run_transaction(
    conn: db.Connection, organization_id: str, spec: TransactionSpec
) -> TransactionDone:
    """One seed-002 transaction (the caller holds the organization's stock lock)."""
    kind = rules.parse_type(spec.type)
    rules.check_quantities(kind, spec.atp_qty, spec.back_ordered_qty)
    source_bin = (
        (spec.from_bin_name or spec.bin_name) if kind is TransactionType.TRANSFER else spec.bin_name
    )
    if not source_bin:
        raise TransactionRejected(ResponseCode.BIN_NOT_FOUND, "binName is required")
    source = await locked_level(conn, organization_id, source_bin, spec.sku_id)
    target = None
    if kind is TransactionType.TRANSFER:
        if not spec.to_bin_name:
            raise TransactionRejected(ResponseCode.BIN_NOT_FOUND, "toBinName is required")
        target = await locked_level(conn, organization_id, spec.to_bin_name, spec.sku_id)
    deltas = rules.plan(kind, spec.atp_qty, spec.back_ordered_qty, source, target)
    record = catalog.TransactionRecord(
        bin_item_id=source.bin_item_id,
        type=kind.value,
        status=spec.status,
        atp_qty=spec.atp_qty,
        back_ordered_qty=spec.back_ordered_qty,
        from_bin_name=source_bin if kind is TransactionType.TRANSFER else None,
        to_bin_name=spec.to_bin_name if kind is TransactionType.TRANSFER else None,
        reference_id=spec.reference_id,
        notes=spec.notes,
        properties=spec.properties,
    )
    transaction_id = await catalog.insert_transaction(conn, organization_id, record)
    changes = await stock.apply(
        conn, organization_id, deltas, stock.Refs(transaction_id=transaction_id)
    )
    created = InventoryTransaction(
        transaction_id=transaction_id,
        bin_item_id=source.bin_item_id,
        transaction_type=kind,
        bin_name=source.bin_name,
        sku_id=source.sku_id,
        atp_qty=spec.atp_qty,
        back_ordered_qty=spec.back_ordered_qty,
        from_bin_name=record.from_bin_name,
        to_bin_name=record.to_bin_name,
        notes=spec.notes,
        status=spec.status,
    )
    messages = [events.transaction_event("inventory.transaction.created", created)]
    return TransactionDone(transaction_id, source.bin_item_id, messages + low_stock_alerts(changes))


# -- bulk transactions -------------------------------------------------------------------------


def _spec_of(item: BulkBinItem) -> TransactionSpec:
    t = item.transaction
    return TransactionSpec(
        bin_name=item.bin_name,
        sku_id=item.sku_id,
        type=t.type,
        status=t.status,
        atp_qty=t.atp_qty,
        back_ordered_qty=t.back_ordered_qty,
        from_bin_name=t.from_bin_name,
        to_bin_name=t.to_bin_name,
        reference_id=t.reference_id,
        notes=t.notes,
        properties=t.properties,
    )


@dataclass(slots=True)
class _ItemOutcome:
    item: BulkBinItem
    code: ResponseCode
    done: TransactionDone | None = None

    def answer(self, code: ResponseCode | None = None) -> BulkBinItem:
        transaction = self.item.transaction
        if self.done is not None and code is None:
            transaction = msgspec.structs.replace(
                transaction, id=self.done.transaction_id, bin_item_id=self.done.bin_item_id
            )
        return msgspec.structs.replace(
            self.item, transaction=transaction, response=(code or self.code).response()
        )


async def _one(conn: db.Connection, organization_id: str, item: BulkBinItem) -> _ItemOutcome:
    try:
        async with conn.transaction():  # a savepoint: a failed item leaves no trace
            done = await run_transaction(conn, organization_id, _spec_of(item))
    except TransactionRejected as rejected:
        return _ItemOutcome(item, rejected.code)
    except asyncpg.CheckViolationError:  # the database's own guard against negative stock
        return _ItemOutcome(item, ResponseCode.INSUFFICIENT_ATP)
    return _ItemOutcome(item, ResponseCode.TRANSACTION_CREATED, done)


class _RollBack(Exception):
    pass


async def run_bulk(
    conn: db.Connection, organization_id: str, outbox: Outbox, payload: BulkTransactionPayload
) -> BulkTransactionPayload:
    """Every item answered with its response code. With `allOrNone`, one failure rolls back all
    of them (the others answer ROLLED_BACK) and nothing is published."""
    await stock.lock_organization(conn, organization_id)
    outcomes: list[_ItemOutcome] = []
    try:
        async with conn.transaction():
            for item in payload.bin_items:
                outcomes.append(await _one(conn, organization_id, item))
            if payload.all_or_none and any(o.done is None for o in outcomes):
                raise _RollBack
    except _RollBack:
        answers = [
            o.answer(ResponseCode.ROLLED_BACK if o.done is not None else None) for o in outcomes
        ]
        return msgspec.structs.replace(payload, bin_items=answers)
    await outbox.add(conn, *(m for o in outcomes if o.done for m in o.done.messages))
    return msgspec.structs.replace(payload, bin_items=[o.answer() for o in outcomes])


# -- bin items ---------------------------------------------------------------------------------


def quantity_deltas(
    bin_item_id: int,
    current: StockLevel | None,
    *,
    atp_qty: int | None,
    back_ordered_qty: int | None,
    pre_ordered_qty: int | None,
) -> list[Delta]:
    """Ledger rows that set a bin item's ATP, back-ordered and pre-ordered quantities."""
    atp, back, pre = (
        (current.atp, current.back_ordered, current.pre_ordered) if current else (0, 0, 0)
    )
    delta = Delta(
        bin_item_id,
        "adjust",
        on_hand=0 if atp_qty is None else atp_qty - atp,
        back_ordered=0 if back_ordered_qty is None else back_ordered_qty - back,
        pre_ordered=0 if pre_ordered_qty is None else pre_ordered_qty - pre,
    )
    if (delta.on_hand, delta.back_ordered, delta.pre_ordered) == (0, 0, 0):
        return []
    return [delta]


def item_view(row: Any) -> dict[str, Any]:
    level = StockLevel(
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
    return {
        "id": level.bin_item_id,
        "binName": level.bin_name,
        "skuId": level.sku_id,
        "status": row["status"],
        "atpQty": level.atp,
        "onHand": level.on_hand,
        "reserved": level.reserved,
        "backOrderedQty": level.back_ordered,
        "preOrderedQty": level.pre_ordered,
        "lowStockThreshold": level.low_stock_threshold,
        "outOfStockThreshold": level.out_of_stock_threshold,
        "displayStatus": level.display_status,
        "createdTime": catalog.epoch_ms(row["created_at"]),
        "updatedTime": catalog.epoch_ms(row["updated_at"]),
    }
