"""The saga's rules without I/O: every transition, what it sends, what it ignores."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from contracts.bookworm import (
    BasketDeletedCompleteIntegrationEvent,
    BasketDeletedFailedIntegrationEvent,
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
from finance_service.domain.saga import (
    Ignored,
    Saga,
    SagaNotFound,
    SagaNotReplayable,
    SagaPolicy,
    SagaState,
    Transition,
    on_event,
    on_timeout,
    replay,
)

NOW = datetime(2025, 11, 23, 15, 0, tzinfo=UTC)
POLICY = SagaPolicy(place_order_timeout=timedelta(seconds=30), max_attempts=3)
ORDER, BASKET = uuid.uuid4(), uuid.uuid4()


def checkout(**fields: object) -> UserCheckedOutIntegrationEvent:
    values: dict[str, object] = {
        "order_id": ORDER,
        "basket_id": BASKET,
        "full_name": "Ada",
        "email": "ada@example.com",
        "total_money": Decimal("10.5"),
        **fields,
    }
    return new_bookworm(UserCheckedOutIntegrationEvent, **values)


def placed(**changes: object) -> Saga:
    decision = on_event(None, checkout(), now=NOW, policy=POLICY)
    assert isinstance(decision, Transition)
    return replace(decision.saga, version=1, **changes)  # type: ignore[arg-type]


def transition(decision: object) -> Transition:
    assert isinstance(decision, Transition), decision
    return decision


def test_checkout_starts_a_placed_saga_with_place_order_and_a_timeout() -> None:
    t = transition(on_event(None, checkout(), now=NOW, policy=POLICY))
    assert (t.from_state, t.to_state) == (None, SagaState.PLACED)
    assert t.saga.attempts == 1
    assert t.saga.timeout_at == NOW + timedelta(seconds=30)
    [command] = t.commands
    assert isinstance(command, PlaceOrderCommand)
    assert (command.order_id, command.basket_id, command.email) == (
        ORDER,
        BASKET,
        "ada@example.com",
    )
    assert command.total_money == Decimal("10.5")


@pytest.mark.parametrize("state", list(SagaState))
def test_checkout_again_is_ignored_in_any_state(state: SagaState) -> None:
    decision = on_event(placed(state=state), checkout(), now=NOW, policy=POLICY)
    assert isinstance(decision, Ignored)


def test_basket_deleted_sends_delete_basket_complete_and_cancels_the_timeout() -> None:
    event = new_bookworm(
        BasketDeletedCompleteIntegrationEvent,
        order_id=ORDER,
        basket_id=BASKET,
        total_money=Decimal("10.5"),
    )
    t = transition(on_event(placed(), event, now=NOW, policy=POLICY))
    assert (t.from_state, t.to_state, t.saga.timeout_at) == (
        SagaState.PLACED,
        SagaState.PLACED,
        None,
    )
    assert [type(c) for c in t.commands] == [DeleteBasketCompleteCommand]


def test_basket_delete_failed_sends_delete_basket_failed_and_fails() -> None:
    event = new_bookworm(
        BasketDeletedFailedIntegrationEvent,
        order_id=ORDER,
        basket_id=BASKET,
        email="ada@example.com",
        total_money=Decimal("10.5"),
    )
    t = transition(on_event(placed(), event, now=NOW, policy=POLICY))
    assert (t.to_state, t.saga.timeout_at) == (SagaState.FAILED, None)
    [command] = t.commands
    assert isinstance(command, DeleteBasketFailedCommand)
    assert command.email == "ada@example.com"


@pytest.mark.parametrize(
    ("event_type", "state", "command_type"),
    [
        (OrderStatusChangedToCompleteIntegrationEvent, SagaState.COMPLETED, CompleteOrderCommand),
        (OrderStatusChangedToCancelIntegrationEvent, SagaState.CANCELLED, CancelOrderCommand),
    ],
)
@pytest.mark.parametrize(
    ("full_name", "email", "told"),
    [("Ada", "ada@example.com", True), (None, "ada@example.com", False), ("Ada", None, False)],
)
def test_order_status_finishes_the_saga_and_tells_only_a_known_customer(
    event_type: type[OrderStatusChangedToCompleteIntegrationEvent]
    | type[OrderStatusChangedToCancelIntegrationEvent],
    state: SagaState,
    command_type: type[object],
    full_name: str | None,
    email: str | None,
    told: bool,
) -> None:
    event = new_bookworm(
        event_type,
        order_id=ORDER,
        basket_id=BASKET,
        full_name=full_name,
        email=email,
        total_money=Decimal("10.5"),
    )
    saga = placed(full_name=None, email=None)
    t = transition(on_event(saga, event, now=NOW, policy=POLICY))
    assert (t.to_state, t.saga.timeout_at) == (state, None)
    assert [type(c) for c in t.commands] == ([command_type] if told else [])


@pytest.mark.parametrize("state", [SagaState.COMPLETED, SagaState.CANCELLED, SagaState.FAILED])
def test_messages_for_a_finished_saga_are_ignored(state: SagaState) -> None:
    event = new_bookworm(
        OrderStatusChangedToCancelIntegrationEvent,
        order_id=ORDER,
        basket_id=BASKET,
        full_name="Ada",
        email="ada@example.com",
        total_money=Decimal(1),
    )
    assert isinstance(on_event(placed(state=state), event, now=NOW, policy=POLICY), Ignored)
    assert isinstance(on_event(None, event, now=NOW, policy=POLICY), Ignored)


def test_timeouts_resend_place_order_until_max_attempts_then_cancel_and_fail() -> None:
    saga = placed()
    sent: list[type[object]] = []
    while saga.state is SagaState.PLACED:
        now = saga.timeout_at
        assert now is not None
        t = transition(on_timeout(saga, now=now, policy=POLICY))
        sent += [type(c) for c in t.commands]
        saga = replace(t.saga, version=saga.version + 1)
    assert sent == [PlaceOrderCommand, PlaceOrderCommand, CancelOrderCommand]
    assert (saga.state, saga.attempts, saga.timeout_at) == (SagaState.FAILED, 3, None)


def test_a_timeout_not_due_or_of_a_finished_saga_does_nothing() -> None:
    assert isinstance(on_timeout(placed(), now=NOW, policy=POLICY), Ignored)
    finished = placed(state=SagaState.COMPLETED, timeout_at=None)
    assert isinstance(on_timeout(finished, now=NOW, policy=POLICY), Ignored)


def test_replay_takes_a_failed_saga_back_to_placed_with_a_new_run() -> None:
    failed = placed(state=SagaState.FAILED, attempts=3, timeout_at=None)
    t = replay(failed, order_id=ORDER, now=NOW, policy=POLICY)
    assert (t.from_state, t.to_state, t.saga.attempts) == (SagaState.FAILED, SagaState.PLACED, 1)
    assert t.saga.timeout_at == NOW + POLICY.place_order_timeout
    assert [type(c) for c in t.commands] == [PlaceOrderCommand]


@pytest.mark.parametrize("state", [SagaState.PLACED, SagaState.COMPLETED, SagaState.CANCELLED])
def test_replay_refuses_a_saga_that_did_not_fail(state: SagaState) -> None:
    with pytest.raises(SagaNotReplayable, match="only Failed sagas can be replayed"):
        replay(placed(state=state), order_id=ORDER, now=NOW, policy=POLICY)
    with pytest.raises(SagaNotFound):
        replay(None, order_id=ORDER, now=NOW, policy=POLICY)
