"""The state machines: which action moves which entity from which states, and where to.

Every state change in the service goes through `Machine.apply`; an action that is not allowed
from the current state raises `IllegalTransition` before anything is written or published.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from order_service.domain.errors import IllegalTransition

S = TypeVar("S", bound=StrEnum)


class CartStatus(StrEnum):
    ACTIVE = "active"
    CHECKED_OUT = "checked_out"
    CONVERTED = "converted"
    ABANDONED = "abandoned"


class OrderStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    PROCESSING = "processing"
    PACKED = "packed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class PaymentStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ShipmentStatus(StrEnum):
    CREATED = "created"
    LABEL_CREATED = "label_created"
    DISPATCHED = "dispatched"
    IN_TRANSIT = "in_transit"
    DELIVERED = "delivered"


class ReturnStatus(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    RECEIVED = "received"
    REFUNDED = "refunded"


class ReservationStatus(StrEnum):
    NONE = "none"
    RESERVED = "reserved"
    COMMITTED = "committed"
    RELEASED = "released"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Move(Generic[S]):
    sources: frozenset[S]
    #: None: the action is allowed but leaves the state as it is.
    target: S | None = None


def move(sources: Iterable[S], target: S | None = None) -> Move[S]:
    return Move(frozenset(sources), target)


@dataclass(frozen=True, slots=True)
class Machine(Generic[S]):
    entity: str
    moves: Mapping[str, Move[S]]

    def allows(self, current: S, action: str) -> bool:
        return current in self.moves[action].sources

    def apply(self, current: S, action: str) -> S:
        """The state after `action`; `IllegalTransition` when `current` does not allow it."""
        step = self.moves[action]
        if current not in step.sources:
            raise IllegalTransition(self.entity, current.value, action)
        return step.target if step.target is not None else current


C, OS = CartStatus, OrderStatus
P, SH, R = PaymentStatus, ShipmentStatus, ReturnStatus

CART: Machine[CartStatus] = Machine(
    "cart",
    {
        # A customer who comes back to an abandoned cart may still fill it and check out.
        "add_item": move([C.ACTIVE, C.ABANDONED], C.ACTIVE),
        "check_out": move([C.ACTIVE, C.ABANDONED], C.CHECKED_OUT),
        "convert": move([C.CHECKED_OUT], C.CONVERTED),
        "abandon": move([C.ACTIVE], C.ABANDONED),
    },
)

#: Before shipment: the states an order can still be cancelled from.
BEFORE_SHIPMENT = (OS.PENDING, OS.CONFIRMED, OS.PROCESSING, OS.PACKED)

ORDER: Machine[OrderStatus] = Machine(
    "order",
    {
        "pay": move([OS.PENDING]),
        "confirm": move([OS.PENDING], OS.CONFIRMED),
        "start_fulfillment": move([OS.CONFIRMED], OS.PROCESSING),
        "pick": move([OS.PROCESSING]),
        "pack": move([OS.PROCESSING], OS.PACKED),
        "create_shipment": move([OS.CONFIRMED, OS.PROCESSING, OS.PACKED]),
        "create_label": move([OS.CONFIRMED, OS.PROCESSING, OS.PACKED]),
        "ship": move([OS.CONFIRMED, OS.PROCESSING, OS.PACKED], OS.SHIPPED),
        "deliver": move([OS.SHIPPED], OS.DELIVERED),
        "cancel": move(BEFORE_SHIPMENT, OS.CANCELLED),
        "request_return": move([OS.DELIVERED]),
    },
)

PAYMENT: Machine[PaymentStatus] = Machine(
    "payment",
    {
        "succeed": move([P.PENDING], P.SUCCEEDED),
        "fail": move([P.PENDING], P.FAILED),
        "cancel": move([P.PENDING], P.CANCELLED),
    },
)

SHIPMENT: Machine[ShipmentStatus] = Machine(
    "shipment",
    {
        "create_label": move([SH.CREATED], SH.LABEL_CREATED),
        "dispatch": move([SH.LABEL_CREATED], SH.DISPATCHED),
        "track": move([SH.DISPATCHED, SH.IN_TRANSIT], SH.IN_TRANSIT),
        "deliver": move([SH.DISPATCHED, SH.IN_TRANSIT], SH.DELIVERED),
    },
)

RETURN: Machine[ReturnStatus] = Machine(
    "return",
    {
        "approve": move([R.REQUESTED], R.APPROVED),
        "receive": move([R.APPROVED], R.RECEIVED),
        "refund": move([R.RECEIVED], R.REFUNDED),
    },
)
