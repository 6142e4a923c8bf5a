"""Pure rules: state machines, confirmation, refunds, picks, returns, numbers (no I/O)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from order_service.domain import rules
from order_service.domain.errors import IllegalTransition, RuleViolation
from order_service.domain.states import (
    CART,
    ORDER,
    PAYMENT,
    RETURN,
    SHIPMENT,
    CartStatus,
    OrderStatus,
    PaymentStatus,
    ReservationStatus,
    ReturnStatus,
    ShipmentStatus,
)

O = OrderStatus  # noqa: E741


def test_the_happy_path_of_an_order() -> None:
    status = O.PENDING
    for action in ("pay", "confirm", "start_fulfillment", "pick", "pack", "create_shipment",
                   "ship", "deliver", "request_return"):  # fmt: skip
        status = ORDER.apply(status, action)
    assert status is O.DELIVERED


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (O.CANCELLED, "pay"),
        (O.CONFIRMED, "pay"),
        (O.PENDING, "ship"),
        (O.PENDING, "create_shipment"),
        (O.SHIPPED, "cancel"),
        (O.DELIVERED, "cancel"),
        (O.CANCELLED, "cancel"),
        (O.SHIPPED, "request_return"),
        (O.PENDING, "start_fulfillment"),
        (O.CONFIRMED, "pack"),
        (O.CANCELLED, "confirm"),
    ],
)
def test_illegal_order_transitions_raise(status: OrderStatus, action: str) -> None:
    with pytest.raises(IllegalTransition) as raised:
        ORDER.apply(status, action)
    assert raised.value.current == status.value
    assert status.value in str(raised.value)


def test_cancel_is_allowed_until_shipment() -> None:
    for status in (O.PENDING, O.CONFIRMED, O.PROCESSING, O.PACKED):
        assert ORDER.apply(status, "cancel") is O.CANCELLED


def test_other_machines() -> None:
    assert CART.apply(CartStatus.ABANDONED, "add_item") is CartStatus.ACTIVE
    assert CART.apply(CartStatus.CHECKED_OUT, "convert") is CartStatus.CONVERTED
    with pytest.raises(IllegalTransition):
        CART.apply(CartStatus.CHECKED_OUT, "add_item")
    with pytest.raises(IllegalTransition):
        PAYMENT.apply(PaymentStatus.SUCCEEDED, "succeed")
    with pytest.raises(IllegalTransition):
        SHIPMENT.apply(ShipmentStatus.CREATED, "dispatch")
    assert SHIPMENT.apply(ShipmentStatus.IN_TRANSIT, "track") is ShipmentStatus.IN_TRANSIT
    with pytest.raises(IllegalTransition):
        RETURN.apply(ReturnStatus.APPROVED, "refund")


@pytest.mark.parametrize(
    ("status", "paid", "reservation", "expected"),
    [
        (O.PENDING, True, ReservationStatus.RESERVED, True),
        (O.PENDING, True, ReservationStatus.RELEASED, True),  # inventory re-reserves
        (O.PENDING, False, ReservationStatus.RESERVED, False),
        (O.PENDING, True, ReservationStatus.NONE, False),
        (O.PENDING, True, ReservationStatus.FAILED, False),
        (O.CONFIRMED, True, ReservationStatus.RESERVED, False),
        (O.CANCELLED, True, ReservationStatus.RESERVED, False),
    ],
)
def test_confirmation_needs_payment_and_stock(
    status: OrderStatus, paid: bool, reservation: ReservationStatus, expected: bool
) -> None:
    assert rules.ready_to_confirm(status, paid, reservation, "res_1") is expected


def test_refunds_never_exceed_what_was_paid() -> None:
    rules.check_refund(Decimal("100.00"), Decimal("40.00"), Decimal("60.00"))
    with pytest.raises(RuleViolation) as raised:
        rules.check_refund(Decimal("100.00"), Decimal("40.00"), Decimal("60.01"))
    assert raised.value.field == "refund_amount"


def test_picks_and_returns_are_bounded() -> None:
    rules.check_pick(3, 1, 2)
    with pytest.raises(RuleViolation):
        rules.check_pick(3, 2, 2)
    rules.check_return({"a": 1}, {"a": 2}, {"a": 1})
    with pytest.raises(RuleViolation):
        rules.check_return({"a": 2}, {"a": 2}, {"a": 1})
    with pytest.raises(RuleViolation):
        rules.check_return({"b": 1}, {"a": 2}, {})


def test_money_numbers_and_retries() -> None:
    lines = [rules.Line("v", 2, Decimal("25")), rules.Line("w", 1, Decimal("75.5"))]
    assert str(rules.total(lines)) == "125.50"
    assert rules.units(lines) == 3
    assert rules.human_number("ORD", 2025, 1) == "ORD-2025-0001"
    assert rules.human_number("INV", 2025, 12345) == "INV-2025-12345"
    assert [rules.retries_remaining(n, 3) for n in (1, 2, 3, 4)] == [2, 1, 0, 0]
