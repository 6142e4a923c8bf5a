"""HTTP request bodies (msgspec): seed-002 camelCase, validated strictly (SPEC §8)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from contracts.inventory import BinProperty

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Text = Annotated[str, msgspec.Meta(max_length=2000)]
Quantity = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]
Status = Annotated[int, msgspec.Meta(ge=0, le=1)]


class BinIn(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    name: Name
    description: Text | None = None
    status: Status = 1
    channel: Name | None = None
    type: Name | None = None
    leaf_bin: bool = False
    properties: Annotated[list[BinProperty], msgspec.Meta(max_length=100)] = []


class BinUpdate(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True
):
    """PUT: the whole bin; `name` may be repeated but not changed."""

    name: Name | None = None
    description: Text | None = None
    status: Status = 1
    channel: Name | None = None
    type: Name | None = None
    leaf_bin: bool = False
    properties: Annotated[list[BinProperty], msgspec.Meta(max_length=100)] = []


class BinItemIn(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True
):
    sku_id: Name
    status: Status = 1
    atp_qty: Quantity = 0
    back_ordered_qty: Quantity = 0
    pre_ordered_qty: Quantity = 0
    low_stock_threshold: Quantity = 0
    out_of_stock_threshold: Quantity = 0


class BinItemPatch(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True
):
    status: Status | None = None
    atp_qty: Quantity | None = None
    back_ordered_qty: Quantity | None = None
    pre_ordered_qty: Quantity | None = None
    low_stock_threshold: Quantity | None = None
    out_of_stock_threshold: Quantity | None = None


class TransactionIn(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True
):
    sku_id: Name
    type: Annotated[int, msgspec.Meta(ge=1, le=4)]
    bin_name: Name | None = None
    status: Status = 1
    atp_qty: Quantity = 0
    back_ordered_qty: Quantity = 0
    from_bin_name: Name | None = None
    to_bin_name: Name | None = None
    reference_id: Name | None = None
    notes: Text | None = None
    properties: Text | None = None


class TransactionPatch(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True
):
    """Quantities are in the ledger and do not change: correct them with a new transaction."""

    status: Status | None = None
    notes: Text | None = None
    properties: Text | None = None


class CheckItem(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True
):
    sku_id: Name
    atp_qty: Quantity
    bin_name: Name | None = None


class CheckIn(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True
):
    bin_items: Annotated[list[CheckItem], msgspec.Meta(min_length=1, max_length=1000)]
