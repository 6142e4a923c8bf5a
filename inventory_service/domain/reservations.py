"""The reservation of one order: what each order event does to it, whatever the order."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass


class Status(enum.StrEnum):
    HELD = "held"
    COMMITTED = "committed"
    RELEASED = "released"  # cancelled (also the tombstone of a cancel that came first)
    EXPIRED = "expired"
    DEDUCTED = "deducted"
    FAILED = "failed"


class Action(enum.Enum):
    RESERVE = "reserve"
    COMMIT = "commit"
    RESERVE_AND_COMMIT = "reserve_and_commit"
    RELEASE = "release"
    TOMBSTONE = "tombstone"
    CLOSE = "close"
    IGNORE = "ignore"


#: Statuses in which the reservation holds stock.
HOLDING = frozenset({Status.HELD, Status.COMMITTED})


def on_placed(status: Status | None) -> Action:
    """Reserve only for an order seen for the first time: a cancel that came first left a
    tombstone, and a redelivered or late `order.placed` must not reserve twice."""
    return Action.RESERVE if status is None else Action.IGNORE


def on_confirmed(status: Status | None) -> Action:
    if status is Status.HELD:
        return Action.COMMIT
    if status in (None, Status.EXPIRED, Status.FAILED):
        # The hold lapsed (or never happened): reserve again if stock allows.
        return Action.RESERVE_AND_COMMIT
    return Action.IGNORE  # committed or deducted already, or cancelled


def on_cancelled(status: Status | None) -> Action:
    if status in HOLDING:
        return Action.RELEASE
    if status is None:
        return Action.TOMBSTONE
    if status in (Status.EXPIRED, Status.FAILED):
        return Action.CLOSE
    return Action.IGNORE  # released already, or shipped


def can_deduct(status: Status | None) -> bool:
    return status in HOLDING


@dataclass(frozen=True, slots=True)
class HeldItem:
    item_id: int
    bin_item_id: int
    variant_id: str
    warehouse_id: str
    remaining: int  # reserved and not yet deducted


@dataclass(frozen=True, slots=True)
class Shipped:
    variant_id: str
    warehouse_id: str
    quantity: int


@dataclass(frozen=True, slots=True)
class Deduction:
    item: HeldItem
    quantity: int


def plan_deduction(held: Sequence[HeldItem], shipped: Sequence[Shipped]) -> list[Deduction]:
    """Deduct what shipped from what the reservation still holds: the named warehouse first,
    then any other hold of the variant; never more than is held, so nothing is deducted twice."""
    remaining = {item.item_id: item.remaining for item in held}
    planned: dict[int, int] = {}
    for line in shipped:
        wanted = line.quantity
        ordered = sorted(
            (i for i in held if i.variant_id == line.variant_id),
            key=lambda i: (i.warehouse_id != line.warehouse_id, i.item_id),
        )
        for item in ordered:
            take = min(wanted, remaining[item.item_id])
            if take <= 0:
                continue
            remaining[item.item_id] -= take
            planned[item.item_id] = planned.get(item.item_id, 0) + take
            wanted -= take
            if wanted == 0:
                break
    by_id = {item.item_id: item for item in held}
    return [Deduction(by_id[item_id], quantity) for item_id, quantity in planned.items()]


def fully_deducted(held: Sequence[HeldItem], deductions: Sequence[Deduction]) -> bool:
    taken: dict[int, int] = {}
    for d in deductions:
        taken[d.item.item_id] = taken.get(d.item.item_id, 0) + d.quantity
    return all(item.remaining == taken.get(item.item_id, 0) for item in held)
