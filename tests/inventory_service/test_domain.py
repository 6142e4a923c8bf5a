"""Unit tests of the pure inventory rules (no I/O)."""

from __future__ import annotations

import pytest

from contracts.inventory import ResponseCode, TransactionType
from inventory_service.domain import reservations as r
from inventory_service.domain.stock import (
    StockLevel,
    Wanted,
    allocate,
    crossed_low_stock,
    display_status,
)
from inventory_service.domain.transactions import Delta, TransactionRejected, plan


def level(item_id: int, bin_name: str, sku: str, on_hand: int, reserved: int = 0) -> StockLevel:
    return StockLevel(item_id, bin_name, sku, on_hand, reserved)


def test_allocation_prefers_the_named_bin_then_the_one_with_most_atp() -> None:
    levels = [level(1, "a", "x", 5), level(2, "b", "x", 9), level(3, "c", "x", 20)]
    assert allocate([Wanted("x", 4, "a")], levels).holds[0].bin_name == "a"
    assert allocate([Wanted("x", 6, "a")], levels).holds[0].bin_name == "c"
    assert allocate([Wanted("x", 6, None)], levels).holds[0].bin_name == "c"


def test_allocation_is_all_or_nothing_and_reports_the_best_single_bin() -> None:
    levels = [level(1, "a", "x", 5, reserved=4), level(2, "b", "x", 3), level(3, "a", "y", 9)]
    result = allocate([Wanted("y", 1, "a"), Wanted("x", 4, "a")], levels)
    assert not result.complete
    assert result.holds == ()
    assert [(s.variant_id, s.requested, s.available) for s in result.shortages] == [("x", 4, 3)]


def test_allocation_merges_lines_of_one_variant_and_counts_what_it_took() -> None:
    levels = [level(1, "a", "x", 3)]
    assert not allocate([Wanted("x", 2, "a"), Wanted("x", 2, "a")], levels).complete
    assert allocate([Wanted("x", 1, "a"), Wanted("x", 2, "a")], levels).holds[0].quantity == 3
    assert allocate([Wanted("z", 1, None)], levels).shortages[0].available == 0


def test_display_status_follows_the_thresholds() -> None:
    assert display_status(0, 20, 5, 3) == "BACKORDER"  # the seed's example
    assert display_status(3, 0, 5, 3) == "OUT OF STOCK"
    assert display_status(5, 0, 5, 3) == "LOW STOCK"
    assert display_status(6, 0, 5, 3) == "IN STOCK"


def test_low_stock_is_crossed_only_going_down_through_the_threshold() -> None:
    assert crossed_low_stock(6, 5, 5)
    assert not crossed_low_stock(5, 4, 5)
    assert not crossed_low_stock(4, 6, 5)
    assert not crossed_low_stock(10, 0, 0)


def test_transactions_become_ledger_deltas() -> None:
    a, b = level(1, "a", "x", 10, reserved=2), level(2, "b", "x", 0)
    assert plan(TransactionType.ADD, 5, 1, a) == [Delta(1, "add", on_hand=5, back_ordered=1)]
    assert plan(TransactionType.REMOVE, 8, 0, a) == [Delta(1, "remove", on_hand=-8)]
    assert plan(TransactionType.TRANSFER, 3, 0, a, b) == [
        Delta(1, "transfer_out", on_hand=-3),
        Delta(2, "transfer_in", on_hand=3),
    ]
    # RECONCILE sets ATP to the count: 8 on hand with 2 reserved → ATP 4 means 6 on hand.
    assert plan(TransactionType.RECONCILE, 4, 0, a) == [Delta(1, "reconcile", on_hand=-4)]


@pytest.mark.parametrize(
    ("kind", "atp", "code"),
    [
        (TransactionType.REMOVE, 9, ResponseCode.INSUFFICIENT_ATP),
        (TransactionType.TRANSFER, 9, ResponseCode.INSUFFICIENT_ATP),
        (TransactionType.ADD, 0, ResponseCode.INVALID_QUANTITY),
        (TransactionType.ADD, -1, ResponseCode.INVALID_QUANTITY),
    ],
)
def test_transactions_that_would_break_the_stock_are_refused(
    kind: TransactionType, atp: int, code: ResponseCode
) -> None:
    with pytest.raises(TransactionRejected) as refused:
        plan(kind, atp, 0, level(1, "a", "x", 10, reserved=2), level(2, "b", "x", 0))
    assert refused.value.code is code


def test_order_events_in_any_order_leave_one_outcome() -> None:
    assert r.on_placed(None) is r.Action.RESERVE
    assert r.on_placed(r.Status.RELEASED) is r.Action.IGNORE  # the tombstone of an early cancel
    assert r.on_placed(r.Status.HELD) is r.Action.IGNORE
    assert r.on_cancelled(None) is r.Action.TOMBSTONE
    assert r.on_cancelled(r.Status.COMMITTED) is r.Action.RELEASE
    assert r.on_cancelled(r.Status.DEDUCTED) is r.Action.IGNORE
    assert r.on_confirmed(r.Status.HELD) is r.Action.COMMIT
    assert r.on_confirmed(r.Status.EXPIRED) is r.Action.RESERVE_AND_COMMIT
    assert r.on_confirmed(r.Status.RELEASED) is r.Action.IGNORE
    assert r.on_confirmed(r.Status.COMMITTED) is r.Action.IGNORE


def test_deduction_never_takes_more_than_the_reservation_holds() -> None:
    held = [r.HeldItem(1, 10, "x", "a", 2), r.HeldItem(2, 11, "x", "b", 1)]
    plan_ = r.plan_deduction(held, [r.Shipped("x", "b", 5)])
    assert [(d.item.item_id, d.quantity) for d in plan_] == [(2, 1), (1, 2)]
    assert r.fully_deducted(held, plan_)
    drained = [r.HeldItem(1, 10, "x", "a", 0)]
    assert r.plan_deduction(drained, [r.Shipped("x", "a", 1)]) == []
