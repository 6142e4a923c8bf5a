"""Pure rules: money, numbers, when an order is confirmed, refunds, picks and returns."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from order_service.domain.errors import RuleViolation
from order_service.domain.states import OrderStatus, ReservationStatus

CENT = Decimal("0.01")
GRAM = Decimal("0.001")


def money(amount: Decimal) -> Decimal:
    """Two decimal places, so amounts always travel as JSON numbers like 125.50."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def weight(kilograms: Decimal) -> Decimal:
    """Grams precision, so weights always travel as JSON numbers with a fraction (2.500)."""
    return kilograms.quantize(GRAM, rounding=ROUND_HALF_UP)


def human_number(kind: str, year: int, sequence: int) -> str:
    """`ORD-2025-0001`: per organization, per year (the counter lives in the database)."""
    return f"{kind}-{year}-{sequence:04d}"


@dataclass(frozen=True, slots=True)
class Line:
    variant_id: str
    quantity: int
    unit_price: Decimal


def total(lines: Iterable[Line]) -> Decimal:
    return money(sum((line.unit_price * line.quantity for line in lines), Decimal(0)))


def units(lines: Iterable[Line]) -> int:
    return sum(line.quantity for line in lines)


def ready_to_confirm(
    status: OrderStatus, paid: bool, reservation: ReservationStatus, reservation_id: str | None
) -> bool:
    """Payment and stock meet: confirm once both happened, whichever came first. A hold that
    expired still counts: inventory re-reserves on `order.confirmed` (SPEC §4)."""
    held = reservation in (ReservationStatus.RESERVED, ReservationStatus.RELEASED)
    return status is OrderStatus.PENDING and paid and held and reservation_id is not None


def retries_remaining(failed_attempts: int, max_attempts: int) -> int:
    return max(max_attempts - failed_attempts, 0)


def refundable(paid: Decimal, refunded: Decimal) -> Decimal:
    return money(paid - refunded)


def check_refund(paid: Decimal, refunded: Decimal, amount: Decimal) -> None:
    """Refunds never exceed what was paid."""
    left = refundable(paid, refunded)
    if amount > left:
        raise RuleViolation(
            f"refund of {amount} exceeds what is left to refund ({left})", field="refund_amount"
        )


def check_received(received: Mapping[str, int], authorized: Mapping[str, int]) -> None:
    """What arrives back is what the RMA authorized: its variants, at most its quantities (no
    restock of goods the customer never returned)."""
    for variant_id, quantity in received.items():
        allowed = authorized.get(variant_id, 0)
        if quantity > allowed:
            raise RuleViolation(
                f"the return authorizes {allowed} of {variant_id}, not {quantity}",
                field="returned_items",
            )


def check_pick(ordered: int, picked: int, picking: int) -> None:
    if picked + picking > ordered:
        raise RuleViolation(
            f"cannot pick {picking}: {picked} of {ordered} already picked", field="quantity_picked"
        )


def check_return(
    requested: Mapping[str, int], ordered: Mapping[str, int], already_returned: Mapping[str, int]
) -> None:
    """Each order item is returned at most as many times as it was ordered, over all returns."""
    for item_id, quantity in requested.items():
        if item_id not in ordered:
            raise RuleViolation(f"order item {item_id} is not part of this order", field="items")
        left = ordered[item_id] - already_returned.get(item_id, 0)
        if quantity > left:
            raise RuleViolation(
                f"cannot return {quantity} of order item {item_id}: {left} left to return",
                field="items",
            )
