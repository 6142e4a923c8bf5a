"""Stock levels, display status, low-stock crossings and the all-or-nothing allocation rule."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from contracts.inventory import DisplayStatus


@dataclass(frozen=True, slots=True)
class StockLevel:
    """One bin item as the rules see it."""

    bin_item_id: int
    bin_name: str
    sku_id: str
    on_hand: int
    reserved: int
    back_ordered: int = 0
    pre_ordered: int = 0
    low_stock_threshold: int = 0
    out_of_stock_threshold: int = 0

    @property
    def atp(self) -> int:
        return self.on_hand - self.reserved

    def with_reserved(self, reserved: int) -> StockLevel:
        return StockLevel(
            self.bin_item_id,
            self.bin_name,
            self.sku_id,
            self.on_hand,
            reserved,
            self.back_ordered,
            self.pre_ordered,
            self.low_stock_threshold,
            self.out_of_stock_threshold,
        )

    @property
    def display_status(self) -> str:
        return display_status(
            self.atp, self.back_ordered, self.low_stock_threshold, self.out_of_stock_threshold
        )


def display_status(atp: int, back_ordered: int, low: int, out_of_stock: int) -> str:
    if atp <= out_of_stock:
        return DisplayStatus.BACKORDER if back_ordered > 0 else DisplayStatus.OUT_OF_STOCK
    if atp <= low:
        return DisplayStatus.LOW_STOCK
    return DisplayStatus.IN_STOCK


def crossed_low_stock(atp_before: int, atp_after: int, threshold: int) -> bool:
    """ATP went from above the low-stock threshold to at or below it (a threshold of 0 is off)."""
    return threshold > 0 and atp_before > threshold >= atp_after


@dataclass(frozen=True, slots=True)
class Wanted:
    variant_id: str
    quantity: int
    preferred_bin: str | None


@dataclass(frozen=True, slots=True)
class Hold:
    bin_item_id: int
    variant_id: str
    bin_name: str
    quantity: int


@dataclass(frozen=True, slots=True)
class Shortage:
    variant_id: str
    requested: int
    available: int


@dataclass(frozen=True, slots=True)
class Allocation:
    holds: tuple[Hold, ...]
    shortages: tuple[Shortage, ...]

    @property
    def complete(self) -> bool:
        return not self.shortages


def merge_wanted(items: Iterable[Wanted]) -> list[Wanted]:
    """One line per variant (the first preferred bin named wins), in first-seen order."""
    merged: dict[str, Wanted] = {}
    for item in items:
        seen = merged.get(item.variant_id)
        if seen is None:
            merged[item.variant_id] = item
        else:
            merged[item.variant_id] = Wanted(
                item.variant_id,
                seen.quantity + item.quantity,
                seen.preferred_bin or item.preferred_bin,
            )
    return list(merged.values())


def allocate(wanted: Sequence[Wanted], levels: Sequence[StockLevel]) -> Allocation:
    """All or nothing: each variant from one bin with enough ATP, the preferred bin first, then
    the others with the most ATP. `available` of a shortage is the best single bin's ATP."""
    atp = {level.bin_item_id: level.atp for level in levels}
    holds: list[Hold] = []
    shortages: list[Shortage] = []
    for item in merge_wanted(wanted):
        candidates = sorted(
            (level for level in levels if level.sku_id == item.variant_id),
            key=lambda level: (
                level.bin_name != item.preferred_bin,
                -atp[level.bin_item_id],
                level.bin_item_id,
            ),
        )
        chosen = next((c for c in candidates if atp[c.bin_item_id] >= item.quantity), None)
        if chosen is None:
            best = max((atp[c.bin_item_id] for c in candidates), default=0)
            shortages.append(Shortage(item.variant_id, item.quantity, max(best, 0)))
            continue
        atp[chosen.bin_item_id] -= item.quantity
        holds.append(Hold(chosen.bin_item_id, item.variant_id, chosen.bin_name, item.quantity))
    if shortages:
        return Allocation((), tuple(shortages))
    return Allocation(tuple(holds), ())
