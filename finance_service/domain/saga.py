"""The checkout saga of SPEC §6 as a pure state machine: no await, no SQL, no clock of its own.

Every function takes the saga as it is stored (or None when there is none yet) and returns a
`Decision`: either a `Transition` (the saga to store, the state it came from, the commands to
send) or an `Ignored` with the reason, which the caller logs and acknowledges.

`attempts` counts the PlaceOrderCommands sent in the current run: the first one counts, a timeout
re-sends while `attempts < max_attempts` and otherwise gives up (the BookWorm state machine's
`TimeoutRetryCount < MaxAttempts`), a replay starts a new run at 1.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TypeAlias

from contracts.bookworm import (
    BasketDeletedCompleteIntegrationEvent,
    BasketDeletedFailedIntegrationEvent,
    BookWormMessage,
    CancelOrderCommand,
    CompleteOrderCommand,
    DeleteBasketCompleteCommand,
    DeleteBasketFailedCommand,
    OrderStatusChangedToCancelIntegrationEvent,
    OrderStatusChangedToCompleteIntegrationEvent,
    PlaceOrderCommand,
    UserCheckedOutIntegrationEvent,
    new_bookworm,
)

IntegrationEvent: TypeAlias = (
    UserCheckedOutIntegrationEvent
    | BasketDeletedCompleteIntegrationEvent
    | BasketDeletedFailedIntegrationEvent
    | OrderStatusChangedToCompleteIntegrationEvent
    | OrderStatusChangedToCancelIntegrationEvent
)

TIMEOUT = "timeout"
REPLAY = "replay"


class SagaState(StrEnum):
    PLACED = "Placed"
    COMPLETED = "Completed"
    CANCELLED = "Cancelled"
    FAILED = "Failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class SagaPolicy:
    place_order_timeout: timedelta
    max_attempts: int = 3

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.place_order_timeout <= timedelta(0):
            raise ValueError("place_order_timeout must be positive")


@dataclass(frozen=True, slots=True, kw_only=True)
class Saga:
    order_id: uuid.UUID
    state: SagaState
    attempts: int
    basket_id: uuid.UUID
    full_name: str | None
    email: str | None
    total_money: Decimal
    timeout_at: datetime | None
    #: The version it was read at (0: not stored yet); the store increments it on every write.
    version: int = 0

    @property
    def finished(self) -> bool:
        """No message moves it any more; only a replay can take a Failed saga back."""
        return self.state is not SagaState.PLACED


@dataclass(frozen=True, slots=True, kw_only=True)
class Transition:
    saga: Saga
    from_state: SagaState | None
    commands: tuple[BookWormMessage, ...] = ()

    @property
    def to_state(self) -> SagaState:
        return self.saga.state


@dataclass(frozen=True, slots=True)
class Ignored:
    reason: str


Decision: TypeAlias = Transition | Ignored


class SagaNotFound(LookupError):
    def __init__(self, order_id: uuid.UUID) -> None:
        super().__init__(f"no checkout saga for order {order_id}")
        self.order_id = order_id


class SagaNotReplayable(Exception):
    def __init__(self, saga: Saga) -> None:
        super().__init__(
            f"saga {saga.order_id} is {saga.state.value}; only Failed sagas can be replayed"
        )
        self.saga = saga


# -- messages -------------------------------------------------------------------------------------


def on_event(
    saga: Saga | None, event: IntegrationEvent, *, now: datetime, policy: SagaPolicy
) -> Decision:
    """What one integration event does to the saga of its order."""
    if isinstance(event, UserCheckedOutIntegrationEvent):
        if saga is not None:
            return Ignored(f"checkout already handled; the saga is {saga.state.value}")
        return _start(event, now=now, policy=policy)
    if saga is None:
        return Ignored("no saga for this order")
    if saga.finished:
        return Ignored(f"the saga is already {saga.state.value}")
    match event:
        case BasketDeletedCompleteIntegrationEvent():
            return _basket_deleted(saga, event)
        case BasketDeletedFailedIntegrationEvent():
            return _basket_delete_failed(saga, event)
        case OrderStatusChangedToCompleteIntegrationEvent():
            return _order_finished(saga, event, SagaState.COMPLETED)
        case OrderStatusChangedToCancelIntegrationEvent():
            return _order_finished(saga, event, SagaState.CANCELLED)
    raise TypeError(f"not a saga event: {type(event).__name__}")  # pragma: no cover


def _start(
    event: UserCheckedOutIntegrationEvent, *, now: datetime, policy: SagaPolicy
) -> Transition:
    saga = Saga(
        order_id=event.order_id,
        state=SagaState.PLACED,
        attempts=1,
        basket_id=event.basket_id,
        full_name=event.full_name,
        email=event.email,
        total_money=event.total_money,
        timeout_at=now + policy.place_order_timeout,
    )
    return Transition(saga=saga, from_state=None, commands=(place_order(saga),))


def _basket_deleted(saga: Saga, event: BasketDeletedCompleteIntegrationEvent) -> Transition:
    after = replace(saga, total_money=event.total_money, timeout_at=None)
    command = new_bookworm(
        DeleteBasketCompleteCommand, order_id=saga.order_id, total_money=event.total_money
    )
    return Transition(saga=after, from_state=saga.state, commands=(command,))


def _basket_delete_failed(saga: Saga, event: BasketDeletedFailedIntegrationEvent) -> Transition:
    after = replace(
        saga,
        state=SagaState.FAILED,
        basket_id=event.basket_id,
        email=event.email or saga.email,
        total_money=event.total_money,
        timeout_at=None,
    )
    command = new_bookworm(
        DeleteBasketFailedCommand,
        basket_id=after.basket_id,
        email=after.email,
        order_id=after.order_id,
        total_money=after.total_money,
    )
    return Transition(saga=after, from_state=saga.state, commands=(command,))


def _order_finished(
    saga: Saga,
    event: OrderStatusChangedToCompleteIntegrationEvent
    | OrderStatusChangedToCancelIntegrationEvent,
    state: SagaState,
) -> Transition:
    after = replace(
        saga,
        state=state,
        basket_id=event.basket_id,
        full_name=event.full_name or saga.full_name,
        email=event.email or saga.email,
        total_money=event.total_money,
        timeout_at=None,
    )
    command_type = CompleteOrderCommand if state is SagaState.COMPLETED else CancelOrderCommand
    return Transition(saga=after, from_state=saga.state, commands=_notify(after, command_type))


def _notify(
    saga: Saga, command_type: type[CompleteOrderCommand] | type[CancelOrderCommand]
) -> tuple[BookWormMessage, ...]:
    """Complete/Cancel commands only go out with someone to tell (they exist for the mail)."""
    if not (saga.email and saga.email.strip() and saga.full_name and saga.full_name.strip()):
        return ()
    return (
        new_bookworm(
            command_type,
            order_id=saga.order_id,
            full_name=saga.full_name,
            email=saga.email,
            total_money=saga.total_money,
        ),
    )


def place_order(saga: Saga) -> PlaceOrderCommand:
    return new_bookworm(
        PlaceOrderCommand,
        basket_id=saga.basket_id,
        full_name=saga.full_name,
        email=saga.email,
        order_id=saga.order_id,
        total_money=saga.total_money,
    )


# -- timeouts and replay --------------------------------------------------------------------------


def on_timeout(saga: Saga, *, now: datetime, policy: SagaPolicy) -> Decision:
    """The durable timeout of a Placed saga fired: send PlaceOrderCommand again, or give up."""
    if saga.state is not SagaState.PLACED or saga.timeout_at is None:
        return Ignored(f"no timeout is due; the saga is {saga.state.value}")
    if saga.timeout_at > now:
        return Ignored("the timeout is not due yet")
    if saga.attempts < policy.max_attempts:
        after = replace(
            saga, attempts=saga.attempts + 1, timeout_at=now + policy.place_order_timeout
        )
        return Transition(saga=after, from_state=saga.state, commands=(place_order(after),))
    after = replace(saga, state=SagaState.FAILED, timeout_at=None)
    return Transition(
        saga=after, from_state=saga.state, commands=_notify(after, CancelOrderCommand)
    )


def replay(
    saga: Saga | None, *, order_id: uuid.UUID, now: datetime, policy: SagaPolicy
) -> Transition:
    """A Failed saga back to Placed: a new run of attempts, a new timeout, PlaceOrderCommand."""
    if saga is None:
        raise SagaNotFound(order_id)
    if saga.state is not SagaState.FAILED:
        raise SagaNotReplayable(saga)
    after = replace(
        saga,
        state=SagaState.PLACED,
        attempts=1,
        timeout_at=now + policy.place_order_timeout,
    )
    return Transition(saga=after, from_state=saga.state, commands=(place_order(after),))
