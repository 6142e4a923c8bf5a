"""Settings from the environment and how a delivery is named and decoded (no I/O)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contracts.bookworm import UserCheckedOutIntegrationEvent, encode_bookworm
from finance_service.config import Settings
from finance_service.handlers import decode_integration_event
from messaging.message import Delivery
from tests.finance_service.conftest import checkout_event


def test_settings_defaults_and_overrides() -> None:
    defaults = Settings.from_env({})
    assert defaults.policy.place_order_timeout == timedelta(seconds=300)
    assert (defaults.policy.max_attempts, defaults.port, defaults.runtime.namespace) == (
        3,
        8002,
        "",
    )
    tuned = Settings.from_env({"SAGA_PLACE_ORDER_TIMEOUT_SECONDS": "1.5", "SAGA_MAX_ATTEMPTS": "5"})
    assert tuned.policy.place_order_timeout == timedelta(seconds=1.5)
    assert tuned.policy.max_attempts == 5


@pytest.mark.parametrize(
    "environ",
    [
        {"SAGA_MAX_ATTEMPTS": "0"},
        {"SAGA_PLACE_ORDER_TIMEOUT_SECONDS": "0"},
        {"SAGA_TIMEOUT_POLL_SECONDS": "-1"},
    ],
)
def test_nonsense_settings_fail_at_start_up(environ: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="must be"):
        Settings.from_env(environ)


def delivery(body: bytes, *, type_: str | None, exchange: str) -> Delivery:
    return Delivery(
        queue="finance-order-state-machine",
        message_id="m-1",
        exchange=exchange,
        routing_key="",
        body=body,
        type=type_,
    )


def test_a_delivery_is_named_by_its_type_or_else_by_its_exchange() -> None:
    event = checkout_event()
    body = encode_bookworm(event)
    exchange = "ns.BookWorm.Contracts:UserCheckedOutIntegrationEvent"
    by_type = decode_integration_event(
        delivery(body, type_="UserCheckedOutIntegrationEvent", exchange="")
    )
    by_exchange = decode_integration_event(delivery(body, type_=None, exchange=exchange))
    assert by_type == by_exchange == event
    assert isinstance(by_type, UserCheckedOutIntegrationEvent)


def test_anything_but_the_five_integration_events_cannot_be_decoded() -> None:
    body = encode_bookworm(checkout_event())
    with pytest.raises(ValueError, match="not an integration event"):
        decode_integration_event(delivery(body, type_="PlaceOrderCommand", exchange=""))
    with pytest.raises(ValueError, match="not an integration event"):
        decode_integration_event(delivery(body, type_=None, exchange="order_events"))
