"""The HTTP API's units of work: each runs in the transaction `messaging.web.command` opens."""

from __future__ import annotations

from typing import Any

from contracts.inventory import (
    BulkTransactionPayload,
    InventoryBin,
    InventoryTransaction,
    ResponseCode,
    TransactionType,
)
from inventory_service import operations as ops
from inventory_service.adapters import catalog, events, stock
from inventory_service.adapters import reservations as store
from inventory_service.domain.transactions import TransactionRejected
from inventory_service.schemas import (
    BinIn,
    BinItemIn,
    BinItemPatch,
    BinUpdate,
    CheckIn,
    TransactionIn,
    TransactionPatch,
)
from messaging import db
from messaging.outbox import Outbox
from messaging.web import Conflict, DomainError, InvalidInput, NotFound


def _fields(data: BinIn | BinUpdate) -> catalog.BinFields:
    return catalog.BinFields(
        description=data.description,
        status=data.status,
        channel=data.channel,
        type=data.type,
        leaf_bin=data.leaf_bin,
        properties=data.properties,
    )


def _bin_payload(row: Any) -> InventoryBin:
    view = catalog.bin_view(row)
    return InventoryBin(
        bin_name=row["name"],
        description=view["description"],
        status=view["status"],
        channel=view["channel"],
        type=view["type"],
        leaf_bin=view["leafBin"],
        properties=None,
    )


async def get_bin(conn: db.Connection, organization_id: str, name: str) -> Any:
    row = await catalog.get_bin(conn, organization_id, name)
    if row is None:
        raise NotFound(f"bin {name!r} not found")
    return row


def http_error(rejected: TransactionRejected) -> DomainError:
    """Seed response codes → problem details."""
    code = rejected.code
    if code in (ResponseCode.BIN_NOT_FOUND, ResponseCode.BIN_ITEM_NOT_FOUND):
        return NotFound(rejected.detail)
    if code is ResponseCode.INSUFFICIENT_ATP:
        return Conflict(rejected.detail)
    field = "type" if code is ResponseCode.INVALID_TRANSACTION_TYPE else "atpQty"
    return InvalidInput(rejected.detail, field=field)


# -- bins ----------------------------------------------------------------------------------------


async def create_bin(
    conn: db.Connection, organization_id: str, outbox: Outbox, data: BinIn
) -> dict[str, Any]:
    row = await catalog.create_bin(conn, organization_id, data.name, _fields(data))
    if row is None:
        raise Conflict(f"bin {data.name!r} exists already", field="name")
    await outbox.add(conn, events.bin_event("inventory.bin.created", _bin_payload(row)))
    return catalog.bin_view(row)


async def update_bin(
    conn: db.Connection, organization_id: str, outbox: Outbox, name: str, data: BinUpdate
) -> dict[str, Any]:
    if data.name is not None and data.name != name:
        raise InvalidInput("a bin cannot be renamed", field="name")
    row = await catalog.update_bin(conn, organization_id, name, _fields(data))
    if row is None:
        raise NotFound(f"bin {name!r} not found")
    await outbox.add(conn, events.bin_event("inventory.bin.updated", _bin_payload(row)))
    return catalog.bin_view(row)


async def delete_bin(
    conn: db.Connection, organization_id: str, outbox: Outbox, name: str
) -> dict[str, Any]:
    await stock.lock_organization(conn, organization_id)
    row = await get_bin(conn, organization_id, name)
    if await catalog.bin_holds_stock(conn, row["id"]):
        raise Conflict(f"bin {name!r} still holds stock: move or remove it first")
    await catalog.delete_bin(conn, row["id"])
    await outbox.add(conn, events.bin_event("inventory.bin.deleted", _bin_payload(row)))
    return {"responseCode": "INV_BIN_003", "responseMessage": "BIN_DELETED", "name": name}


# -- bin items ---------------------------------------------------------------------------------


async def create_item(
    conn: db.Connection, organization_id: str, outbox: Outbox, bin_name: str, data: BinItemIn
) -> dict[str, Any]:
    await stock.lock_organization(conn, organization_id)
    bin_row = await get_bin(conn, organization_id, bin_name)
    item_id = await catalog.create_item(
        conn,
        organization_id,
        bin_row["id"],
        data.sku_id,
        status=data.status,
        low_stock_threshold=data.low_stock_threshold,
        out_of_stock_threshold=data.out_of_stock_threshold,
    )
    if item_id is None:
        raise Conflict(f"SKU {data.sku_id!r} is in bin {bin_name!r} already", field="skuId")
    deltas = ops.quantity_deltas(
        item_id,
        None,
        atp_qty=data.atp_qty,
        back_ordered_qty=data.back_ordered_qty,
        pre_ordered_qty=data.pre_ordered_qty,
    )
    await stock.apply(conn, organization_id, deltas)
    level = await stock.level_in_bin(conn, organization_id, bin_name, data.sku_id)
    assert level is not None
    await outbox.add(conn, events.bin_item_event("inventory.binitem.created", level))
    return ops.item_view(await catalog.item_row(conn, organization_id, item_id))


async def patch_item(
    conn: db.Connection,
    organization_id: str,
    outbox: Outbox,
    bin_name: str,
    sku_id: str,
    data: BinItemPatch,
) -> dict[str, Any]:
    await stock.lock_organization(conn, organization_id)
    level = await stock.level_in_bin(conn, organization_id, bin_name, sku_id, lock=True)
    if level is None:
        raise NotFound(f"SKU {sku_id!r} not found in bin {bin_name!r}")
    await catalog.update_item_settings(
        conn,
        level.bin_item_id,
        status=data.status,
        low_stock_threshold=data.low_stock_threshold,
        out_of_stock_threshold=data.out_of_stock_threshold,
    )
    deltas = ops.quantity_deltas(
        level.bin_item_id,
        level,
        atp_qty=data.atp_qty,
        back_ordered_qty=data.back_ordered_qty,
        pre_ordered_qty=data.pre_ordered_qty,
    )
    changes = await stock.apply(conn, organization_id, deltas)
    after = await stock.level_in_bin(conn, organization_id, bin_name, sku_id)
    assert after is not None
    messages = [events.bin_item_event("inventory.binitem.updated", after)]
    await outbox.add(conn, *messages, *ops.low_stock_alerts(changes))
    return ops.item_view(await catalog.item_row(conn, organization_id, level.bin_item_id))


async def get_item(
    conn: db.Connection, organization_id: str, bin_name: str, sku_id: str
) -> dict[str, Any]:
    level = await stock.level_in_bin(conn, organization_id, bin_name, sku_id)
    if level is None:
        raise NotFound(f"SKU {sku_id!r} not found in bin {bin_name!r}")
    return ops.item_view(await catalog.item_row(conn, organization_id, level.bin_item_id))


# -- transactions ------------------------------------------------------------------------------


async def create_transaction(
    conn: db.Connection, organization_id: str, outbox: Outbox, data: TransactionIn
) -> dict[str, Any]:
    await stock.lock_organization(conn, organization_id)
    spec = ops.TransactionSpec(
        bin_name=data.bin_name,
        sku_id=data.sku_id,
        type=data.type,
        status=data.status,
        atp_qty=data.atp_qty,
        back_ordered_qty=data.back_ordered_qty,
        from_bin_name=data.from_bin_name,
        to_bin_name=data.to_bin_name,
        reference_id=data.reference_id,
        notes=data.notes,
        properties=data.properties,
    )
    try:
        done = await ops.run_transaction(conn, organization_id, spec)
    except TransactionRejected as rejected:
        raise http_error(rejected) from None
    await outbox.add(conn, *done.messages)
    row = await catalog.get_transaction(conn, organization_id, done.transaction_id)
    assert row is not None
    return catalog.transaction_view(row)


async def patch_transaction(
    conn: db.Connection,
    organization_id: str,
    outbox: Outbox,
    transaction_id: int,
    data: TransactionPatch,
) -> dict[str, Any]:
    found = await catalog.patch_transaction(
        conn,
        organization_id,
        transaction_id,
        status=data.status,
        notes=data.notes,
        properties=data.properties,
    )
    row = await catalog.get_transaction(conn, organization_id, transaction_id) if found else None
    if row is None:
        raise NotFound(f"transaction {transaction_id} not found")
    await outbox.add(conn, events.transaction_event("inventory.transaction.updated", _tx(row)))
    return catalog.transaction_view(row)


def _tx(row: Any) -> InventoryTransaction:
    return InventoryTransaction(
        transaction_id=row["id"],
        bin_item_id=row["bin_item_id"],
        transaction_type=TransactionType(row["type"]),
        bin_name=row["bin_name"],
        sku_id=row["sku_id"],
        atp_qty=row["atp_qty"],
        back_ordered_qty=row["back_ordered_qty"],
        from_bin_name=row["from_bin_name"],
        to_bin_name=row["to_bin_name"],
        notes=row["notes"],
        status=row["status"],
    )


async def bulk(
    conn: db.Connection, organization_id: str, outbox: Outbox, data: BulkTransactionPayload
) -> BulkTransactionPayload:
    return await ops.run_bulk(conn, organization_id, outbox, data)


# -- reads -------------------------------------------------------------------------------------


async def check(conn: db.Connection, organization_id: str, data: CheckIn) -> dict[str, Any]:
    """Can these quantities be promised? One answer per line, in the seed's shape."""
    answers = []
    for line in data.bin_items:
        if line.bin_name is None:
            levels = await stock.levels_of_sku(conn, organization_id, line.sku_id)
            found = bool(levels)
            available = sum(max(level.atp, 0) for level in levels)
            missing = ResponseCode.BIN_ITEM_NOT_FOUND
        else:
            level = await stock.level_in_bin(conn, organization_id, line.bin_name, line.sku_id)
            found = level is not None
            available = level.atp if level is not None else 0
            bin_known = await catalog.get_bin(conn, organization_id, line.bin_name) is not None
            missing = ResponseCode.BIN_ITEM_NOT_FOUND if bin_known else ResponseCode.BIN_NOT_FOUND
        answer: dict[str, Any] = {
            "binName": line.bin_name,
            "skuId": line.sku_id,
            "atpQty": line.atp_qty,
            "availableQty": available,
            "available": found and available >= line.atp_qty,
        }
        if not found:
            answer["response"] = {"responseCode": missing.code, "responseMessage": missing.message}
        elif available < line.atp_qty:
            code = ResponseCode.INSUFFICIENT_ATP
            answer["response"] = {"responseCode": code.code, "responseMessage": code.message}
        answers.append(answer)
    return {"binItems": answers}


async def stock_of(conn: db.Connection, organization_id: str, sku_id: str) -> dict[str, Any]:
    levels = await stock.levels_of_sku(conn, organization_id, sku_id)
    if not levels:
        raise NotFound(f"SKU {sku_id!r} is in no bin")
    return {
        "skuId": sku_id,
        "atpQty": sum(level.atp for level in levels),
        "bins": [
            {
                "binName": level.bin_name,
                "onHand": level.on_hand,
                "reserved": level.reserved,
                "atpQty": level.atp,
                "displayStatus": level.display_status,
            }
            for level in levels
        ],
    }


async def reservation(conn: db.Connection, organization_id: str, order_id: str) -> dict[str, Any]:
    view = await store.view(conn, organization_id, order_id)
    if view is None:
        raise NotFound(f"no reservation for order {order_id!r}")
    return view
