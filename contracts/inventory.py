"""Inventory payload models of seed 002 (``ecomm`` exchange) and the bulk-transaction queue."""

from __future__ import annotations

import enum

import msgspec

from contracts.codec import UnknownMessageError, decoder, encode


class TransactionType(enum.IntEnum):
    NONE = 0
    ADD = 1
    REMOVE = 2
    TRANSFER = 3
    RECONCILE = 4


class TransactionStatus(enum.IntEnum):
    INACTIVE = 0
    ACTIVE = 1


class DisplayStatus(enum.StrEnum):
    """Values of ``displayStatus``; the field itself is a plain string so that a status added
    later does not make older consumers fail."""

    IN_STOCK = "IN STOCK"
    LOW_STOCK = "LOW STOCK"
    OUT_OF_STOCK = "OUT OF STOCK"
    BACKORDER = "BACKORDER"


# --- per-item outcome of a bulk transaction -----------------------------------------------


class TransactionResponse(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True
):
    response_code: str
    response_message: str


class ResponseCode(enum.Enum):
    """Outcome codes of bulk transactions, in the seed's ``INV_BTM_nnn`` style."""

    TRANSACTION_CREATED = "INV_BTM_001"
    INSUFFICIENT_ATP = "INV_BTM_002"
    BIN_NOT_FOUND = "INV_BTM_003"
    INVALID_TRANSACTION_TYPE = "INV_BTM_004"
    BIN_ITEM_NOT_FOUND = "INV_BTM_005"
    ROLLED_BACK = "INV_BTM_006"
    INVALID_QUANTITY = "INV_BTM_007"

    @property
    def code(self) -> str:
        return str(self.value)

    @property
    def message(self) -> str:
        return _RESPONSE_MESSAGES[self]

    def response(self) -> TransactionResponse:
        return TransactionResponse(response_code=self.code, response_message=self.message)


_RESPONSE_MESSAGES: dict[ResponseCode, str] = {
    ResponseCode.TRANSACTION_CREATED: "Transaction created",
    ResponseCode.INSUFFICIENT_ATP: "Insufficient ATP quantity",
    ResponseCode.BIN_NOT_FOUND: "Bin not found",
    ResponseCode.INVALID_TRANSACTION_TYPE: "Invalid transaction type",
    ResponseCode.BIN_ITEM_NOT_FOUND: "BinItem not found",
    ResponseCode.ROLLED_BACK: "Rolled back: another transaction failed and allOrNone is set",
    ResponseCode.INVALID_QUANTITY: "Invalid quantity",
}


# --- entities inside the internal event payloads --------------------------------------------


class BinProperty(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    name: str
    value: str


class InventoryBin(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    bin_name: str
    description: str | None = None
    status: int | None = None
    channel: str | None = None
    type: str | None = None
    leaf_bin: bool | None = None
    properties: list[BinProperty] | None = None


class InventoryBinItem(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True
):
    bin_name: str
    bin_item_id: int
    sku_id: str
    display_status: str
    atp_qty: int | None = None
    back_ordered_qty: int | None = None
    pre_ordered_qty: int | None = None
    low_stock_threshold: int | None = None
    out_of_stock_threshold: int | None = None


class InventoryTransaction(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True
):
    transaction_id: int
    bin_item_id: int
    transaction_type: TransactionType
    # Not in the seed's payload model; carried so consumers need not resolve binItemId.
    bin_name: str | None = None
    sku_id: str | None = None
    atp_qty: int | None = None
    back_ordered_qty: int | None = None
    from_bin_name: str | None = None
    to_bin_name: str | None = None
    notes: str | None = None
    status: int | None = None


class InventoryBinPayload(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True
):
    event_name: str
    bin: InventoryBin


class InventoryBinItemPayload(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True
):
    event_name: str
    bin_item: InventoryBinItem


class InventoryTransactionPayload(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True
):
    event_name: str
    transaction: InventoryTransaction


InventoryPayload = InventoryBinPayload | InventoryBinItemPayload | InventoryTransactionPayload

# Routing key on ``ecomm`` -> (payload type, the seed's ``eventName``).
INVENTORY_PAYLOAD_EVENTS: dict[str, tuple[type[InventoryPayload], str]] = {
    "inventory.bin.created": (InventoryBinPayload, "BIN_CREATED"),
    "inventory.bin.updated": (InventoryBinPayload, "BIN_UPDATED"),
    "inventory.bin.deleted": (InventoryBinPayload, "BIN_DELETED"),
    "inventory.binitem.created": (InventoryBinItemPayload, "BINITEM_CREATED"),
    "inventory.binitem.updated": (InventoryBinItemPayload, "BINITEM_UPDATED"),
    "inventory.transaction.created": (InventoryTransactionPayload, "TRANSACTION_CREATED"),
    "inventory.transaction.updated": (InventoryTransactionPayload, "TRANSACTION_UPDATED"),
}


def _lookup(routing_key: str) -> tuple[type[InventoryPayload], str]:
    try:
        return INVENTORY_PAYLOAD_EVENTS[routing_key]
    except KeyError:
        raise UnknownMessageError(f"unknown inventory payload event {routing_key!r}") from None


def payload_type_for(routing_key: str) -> type[InventoryPayload]:
    return _lookup(routing_key)[0]


def event_name_for(routing_key: str) -> str:
    """The seed's ``eventName`` for a routing key, e.g. ``BIN_CREATED``."""
    return _lookup(routing_key)[1]


def decode_inventory_payload(body: bytes, routing_key: str) -> InventoryPayload:
    return decoder(payload_type_for(routing_key)).decode(body)


# --- bulk transactions (queue ``inventory.bulktransactions``) -----------------------------


class BulkTransaction(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True
):
    id: int | None = None
    bin_item_id: int | None = None
    # A plain int, not TransactionType: an unknown type must become this item's
    # INVALID_TRANSACTION_TYPE response, not a decode failure of the whole batch.
    type: int
    status: int = TransactionStatus.ACTIVE.value
    from_bin_name: str | None = None
    to_bin_name: str | None = None
    reference_id: str | None = None
    atp_qty: int = 0
    back_ordered_qty: int = 0
    properties: str | None = None
    notes: str | None = None


class BulkBinItem(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    bin_name: str
    sku_id: str
    transaction: BulkTransaction
    response: TransactionResponse | None = None


class BulkTransactionPayload(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True
):
    all_or_none: bool
    bin_items: list[BulkBinItem]


def decode_bulk_transaction(body: bytes) -> BulkTransactionPayload:
    return decoder(BulkTransactionPayload).decode(body)


def encode_inventory(payload: InventoryPayload | BulkTransactionPayload) -> bytes:
    return encode(payload)
