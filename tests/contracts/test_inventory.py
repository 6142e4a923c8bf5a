"""Seed-002 inventory payloads and the bulk-transaction request/reply body."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from contracts.codec import UnknownMessageError, encode
from contracts.inventory import (
    INVENTORY_PAYLOAD_EVENTS,
    BinProperty,
    BulkBinItem,
    BulkTransaction,
    BulkTransactionPayload,
    DisplayStatus,
    InventoryBin,
    InventoryBinItem,
    InventoryBinItemPayload,
    InventoryBinPayload,
    InventoryTransaction,
    InventoryTransactionPayload,
    ResponseCode,
    TransactionResponse,
    TransactionType,
    decode_bulk_transaction,
    decode_inventory_payload,
    encode_inventory,
    event_name_for,
    payload_type_for,
)

from ._shared import EXAMPLES_DIR


def _bulk_example() -> Any:
    path = EXAMPLES_DIR / "inventory_external" / "CreateBulkTransaction.json"
    if not path.is_file():
        pytest.skip(f"{path} not found: set SHARED_DIR to the shared/ checkout")
    return json.loads(path.read_bytes())["detail"]["payload"]["bulkTransaction"]


def test_bulk_transaction_example_decodes_and_keeps_its_response() -> None:
    example = _bulk_example()

    payload = decode_bulk_transaction(json.dumps(example).encode())

    assert payload.all_or_none is False
    item = payload.bin_items[0]
    assert (item.bin_name, item.sku_id) == ("binexternalevents1715236155273", "Active_Sku1")
    assert item.transaction.type == TransactionType.ADD
    assert (item.transaction.atp_qty, item.transaction.back_ordered_qty) == (500, 50)
    assert item.response is not None
    assert item.response.response_code == ResponseCode.BIN_ITEM_NOT_FOUND.code
    assert item.response.response_message == ResponseCode.BIN_ITEM_NOT_FOUND.message

    reencoded = json.loads(encode_inventory(payload))
    assert reencoded["allOrNone"] is False
    assert reencoded["binItems"][0]["response"] == example["binItems"][0]["response"]
    assert reencoded["binItems"][0]["transaction"]["atpQty"] == 500
    assert decode_bulk_transaction(encode_inventory(payload)) == payload


def test_bulk_transaction_defaults_and_omitted_optionals() -> None:
    payload = BulkTransactionPayload(
        all_or_none=True,
        bin_items=[
            BulkBinItem(
                bin_name="wh_101",
                sku_id="var_789",
                transaction=BulkTransaction(type=TransactionType.REMOVE, atp_qty=2),
            )
        ],
    )

    body = json.loads(encode_inventory(payload))

    assert body == {
        "allOrNone": True,
        "binItems": [
            {"binName": "wh_101", "skuId": "var_789", "transaction": {"type": 2, "atpQty": 2}}
        ],
    }
    decoded = decode_bulk_transaction(json.dumps(body).encode())
    assert decoded.bin_items[0].transaction.status == 1
    assert decoded.bin_items[0].transaction.back_ordered_qty == 0


def test_bulk_unknown_transaction_type_is_left_to_the_per_item_response() -> None:
    body = (
        b'{"allOrNone": false,'
        b' "binItems": [{"binName": "b", "skuId": "s", "transaction": {"type": 9}}]}'
    )

    payload = decode_bulk_transaction(body)

    assert payload.bin_items[0].transaction.type not in set(TransactionType)


def test_bulk_missing_required_field_names_its_path() -> None:
    body = b'{"allOrNone": false, "binItems": [{"binName": "b", "transaction": {"type": 1}}]}'

    with pytest.raises(msgspec.ValidationError, match=r"`skuId` - at `\$\.binItems\[0\]`"):
        decode_bulk_transaction(body)


def test_response_codes_are_unique_and_in_the_seed_style() -> None:
    codes = [code.code for code in ResponseCode]

    assert len(set(codes)) == len(codes)
    assert all(code.startswith("INV_BTM_") for code in codes)
    assert ResponseCode.TRANSACTION_CREATED.response() == TransactionResponse(
        response_code="INV_BTM_001", response_message="Transaction created"
    )
    assert ResponseCode.BIN_ITEM_NOT_FOUND.response() == TransactionResponse(
        response_code="INV_BTM_005", response_message="BinItem not found"
    )


def test_transaction_types_match_the_seed() -> None:
    assert {t.name: t.value for t in TransactionType} == {
        "NONE": 0,
        "ADD": 1,
        "REMOVE": 2,
        "TRANSFER": 3,
        "RECONCILE": 4,
    }


PAYLOADS: list[tuple[str, Any, dict[str, Any]]] = [
    (
        "inventory.bin.created",
        InventoryBinPayload(
            event_name="BIN_CREATED",
            bin=InventoryBin(
                bin_name="wh_101",
                description="Main warehouse",
                status=1,
                type="Primary",
                leaf_bin=False,
                properties=[BinProperty(name="Brand", value="Adidas")],
            ),
        ),
        {
            "eventName": "BIN_CREATED",
            "bin": {
                "binName": "wh_101",
                "description": "Main warehouse",
                "status": 1,
                "type": "Primary",
                "leafBin": False,
                "properties": [{"name": "Brand", "value": "Adidas"}],
            },
        },
    ),
    (
        "inventory.binitem.updated",
        InventoryBinItemPayload(
            event_name="BINITEM_UPDATED",
            bin_item=InventoryBinItem(
                bin_name="wh_101",
                bin_item_id=123,
                sku_id="SKU1",
                display_status=DisplayStatus.IN_STOCK,
                atp_qty=12,
                low_stock_threshold=5,
            ),
        ),
        {
            "eventName": "BINITEM_UPDATED",
            "binItem": {
                "binName": "wh_101",
                "binItemId": 123,
                "skuId": "SKU1",
                "displayStatus": "IN STOCK",
                "atpQty": 12,
                "lowStockThreshold": 5,
            },
        },
    ),
    (
        "inventory.transaction.created",
        InventoryTransactionPayload(
            event_name="TRANSACTION_CREATED",
            transaction=InventoryTransaction(
                transaction_id=7884,
                bin_item_id=123,
                transaction_type=TransactionType.TRANSFER,
                from_bin_name="wh_101",
                to_bin_name="wh_102",
                atp_qty=3,
            ),
        ),
        {
            "eventName": "TRANSACTION_CREATED",
            "transaction": {
                "transactionId": 7884,
                "binItemId": 123,
                "transactionType": 3,
                "atpQty": 3,
                "fromBinName": "wh_101",
                "toBinName": "wh_102",
            },
        },
    ),
]


@pytest.mark.parametrize(("routing_key", "payload", "wire"), PAYLOADS, ids=[p[0] for p in PAYLOADS])
def test_internal_payload_wire_form(routing_key: str, payload: Any, wire: dict[str, Any]) -> None:
    body = encode_inventory(payload)

    assert json.loads(body) == wire
    assert decode_inventory_payload(body, routing_key) == payload
    assert payload.event_name == event_name_for(routing_key)


def test_payload_registry_covers_the_seven_seed_events() -> None:
    assert set(INVENTORY_PAYLOAD_EVENTS) == {
        "inventory.bin.created",
        "inventory.bin.updated",
        "inventory.bin.deleted",
        "inventory.binitem.created",
        "inventory.binitem.updated",
        "inventory.transaction.created",
        "inventory.transaction.updated",
    }
    assert payload_type_for("inventory.bin.deleted") is InventoryBinPayload
    with pytest.raises(UnknownMessageError):
        payload_type_for("inventory.bin.painted")


def test_event_transaction_type_is_strict() -> None:
    body = encode(
        {
            "eventName": "TRANSACTION_CREATED",
            "transaction": {"transactionId": 1, "binItemId": 2, "transactionType": 9},
        }
    )

    with pytest.raises(msgspec.ValidationError, match=r"\$\.transaction\.transactionType"):
        decode_inventory_payload(body, "inventory.transaction.created")


def test_payload_accepts_seed_entity_with_unknown_fields() -> None:
    body = encode(
        {
            "eventName": "BINITEM_CREATED",
            "binItem": {
                "binName": "b",
                "binItemId": 21323,
                "skuId": "s",
                "displayStatus": "BACKORDER",
                "backOrderedQty": 20,
                "backOrderedQtyV2": 20.0,
                "createdBy": "111",
            },
        }
    )

    payload = decode_inventory_payload(body, "inventory.binitem.created")

    assert isinstance(payload, InventoryBinItemPayload)
    assert payload.bin_item.back_ordered_qty == 20
