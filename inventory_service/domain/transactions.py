"""Seed-002 transactions (ADD, REMOVE, TRANSFER, RECONCILE) as ledger deltas."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.inventory import ResponseCode, TransactionType
from inventory_service.domain.stock import StockLevel

MAX_QUANTITY = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Delta:
    """One ledger row: how a bin item's quantities change, and why (`kind`)."""

    bin_item_id: int
    kind: str
    on_hand: int = 0
    reserved: int = 0
    back_ordered: int = 0
    pre_ordered: int = 0


class TransactionRejected(Exception):
    """A transaction the rules refuse, with its seed-style response code."""

    def __init__(self, code: ResponseCode, detail: str | None = None) -> None:
        super().__init__(detail or code.message)
        self.code = code
        self.detail = detail or code.message


def parse_type(value: int) -> TransactionType:
    try:
        kind = TransactionType(value)
    except ValueError:
        raise TransactionRejected(ResponseCode.INVALID_TRANSACTION_TYPE) from None
    if kind is TransactionType.NONE:
        raise TransactionRejected(ResponseCode.INVALID_TRANSACTION_TYPE)
    return kind


def check_quantities(kind: TransactionType, atp_qty: int, back_ordered_qty: int) -> None:
    for name, value in (("atpQty", atp_qty), ("backOrderedQty", back_ordered_qty)):
        if not 0 <= value <= MAX_QUANTITY:
            raise TransactionRejected(ResponseCode.INVALID_QUANTITY, f"{name} out of range")
    if kind is not TransactionType.RECONCILE and atp_qty == 0 and back_ordered_qty == 0:
        raise TransactionRejected(
            ResponseCode.INVALID_QUANTITY, "atpQty or backOrderedQty must be positive"
        )


def plan(
    kind: TransactionType,
    atp_qty: int,
    back_ordered_qty: int,
    source: StockLevel,
    target: StockLevel | None = None,
) -> list[Delta]:
    """The ledger rows of one transaction on `source` (and `target` for a TRANSFER).

    RECONCILE sets the counted quantities: ATP to `atp_qty` (on hand = count + reserved) and the
    back-ordered quantity to `back_ordered_qty`."""
    check_quantities(kind, atp_qty, back_ordered_qty)
    if kind is TransactionType.ADD:
        return [Delta(source.bin_item_id, "add", on_hand=atp_qty, back_ordered=back_ordered_qty)]
    if kind is TransactionType.RECONCILE:
        return [
            Delta(
                source.bin_item_id,
                "reconcile",
                on_hand=atp_qty - source.atp,
                back_ordered=back_ordered_qty - source.back_ordered,
            )
        ]
    if atp_qty > source.atp or back_ordered_qty > source.back_ordered:
        raise TransactionRejected(
            ResponseCode.INSUFFICIENT_ATP,
            f"{source.bin_name}/{source.sku_id} has atpQty {source.atp},"
            f" backOrderedQty {source.back_ordered}",
        )
    if kind is TransactionType.REMOVE:
        return [
            Delta(source.bin_item_id, "remove", on_hand=-atp_qty, back_ordered=-back_ordered_qty)
        ]
    if target is None:
        raise TransactionRejected(ResponseCode.BIN_NOT_FOUND, "TRANSFER needs toBinName")
    if target.bin_item_id == source.bin_item_id:
        raise TransactionRejected(ResponseCode.INVALID_TRANSACTION_TYPE, "transfer to same bin")
    return [
        Delta(source.bin_item_id, "transfer_out", on_hand=-atp_qty, back_ordered=-back_ordered_qty),
        Delta(target.bin_item_id, "transfer_in", on_hand=atp_qty, back_ordered=back_ordered_qty),
    ]
