"""BookWorm saga messages: the seed examples decode and re-encode to the SPEC 2.2 fields."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from contracts.bookworm import (
    BOOKWORM_MESSAGES,
    CancelOrderCommand,
    PlaceOrderCommand,
    UserCheckedOutIntegrationEvent,
    decode_bookworm,
    encode_bookworm,
    exchange_for,
    new_bookworm,
)
from contracts.codec import UnknownMessageError

from ._shared import example_files, example_stems, json_shape, load_example

# SPEC 2.2, written out independently of the code under test.
SPEC_FIELDS: dict[str, list[str]] = {
    "UserCheckedOutIntegrationEvent": ["orderId", "basketId", "fullName", "email", "totalMoney"],
    "BasketDeletedCompleteIntegrationEvent": ["orderId", "basketId", "totalMoney"],
    "BasketDeletedFailedIntegrationEvent": ["orderId", "basketId", "email", "totalMoney"],
    "OrderStatusChangedToCompleteIntegrationEvent": [
        "orderId",
        "basketId",
        "fullName",
        "email",
        "totalMoney",
    ],
    "OrderStatusChangedToCancelIntegrationEvent": [
        "orderId",
        "basketId",
        "fullName",
        "email",
        "totalMoney",
    ],
    "PlaceOrderCommand": ["basketId", "fullName", "email", "orderId", "totalMoney"],
    "DeleteBasketCompleteCommand": ["orderId", "totalMoney"],
    "DeleteBasketFailedCommand": ["basketId", "email", "orderId", "totalMoney"],
    "CompleteOrderCommand": ["orderId", "fullName", "email", "totalMoney"],
    "CancelOrderCommand": ["orderId", "fullName", "email", "totalMoney"],
}

ORDER_ID = uuid.UUID("01961eb4-668d-7e7e-ae25-0fab379614f7")


@pytest.mark.parametrize("path", example_files("bookworm"))
def test_example_reencodes_to_exactly_the_spec_fields(path: Path) -> None:
    example = load_example(path)
    spec_keys = ["id", "creationDate", *SPEC_FIELDS[path.stem]]

    message = decode_bookworm(path.read_bytes(), path.stem)
    reencoded = json.loads(encode_bookworm(message))

    assert type(message) is BOOKWORM_MESSAGES[path.stem]
    assert list(reencoded) == spec_keys
    assert set(example) - set(spec_keys) == (
        {"basketId"} if path.stem == "CancelOrderCommand" else set()
    )
    for key in set(spec_keys) - set(example):
        assert key == "fullName"
        assert reencoded[key] is None
    common = set(example) & set(reencoded)
    assert {k: reencoded[k] for k in common} == {k: example[k] for k in common}
    assert json_shape({k: reencoded[k] for k in common}) == json_shape(
        {k: example[k] for k in common}
    )


def test_registry_matches_spec_table_and_examples() -> None:
    assert set(BOOKWORM_MESSAGES) == set(SPEC_FIELDS)
    assert set(BOOKWORM_MESSAGES) == example_stems("bookworm")
    for name, cls in BOOKWORM_MESSAGES.items():
        assert cls.__name__ == name


def test_cancel_order_ignores_the_seeds_extra_basket_id() -> None:
    body = json.dumps(
        {
            "id": str(ORDER_ID),
            "creationDate": "2021-01-01T00:00:00Z",
            "orderId": str(ORDER_ID),
            "basketId": str(ORDER_ID),
            "email": "test@test.com",
            "totalMoney": 100,
        }
    ).encode()

    message = decode_bookworm(body, CancelOrderCommand)

    assert message.full_name is None
    assert "basketId" not in json.loads(encode_bookworm(message))


def test_email_is_nullable_but_required() -> None:
    base = {
        "id": str(ORDER_ID),
        "creationDate": "2021-01-01T00:00:00Z",
        "orderId": str(ORDER_ID),
        "totalMoney": 100,
    }

    assert decode_bookworm(json.dumps({**base, "email": None}).encode(), "CompleteOrderCommand")
    with pytest.raises(msgspec.ValidationError, match=r"^Object missing required field `email`$"):
        decode_bookworm(json.dumps(base).encode(), "CompleteOrderCommand")


def test_ids_must_be_uuids() -> None:
    body = json.dumps(
        {
            "id": str(ORDER_ID),
            "creationDate": "2021-01-01T00:00:00Z",
            "orderId": "order_456",
            "totalMoney": 100,
        }
    ).encode()

    with pytest.raises(msgspec.ValidationError, match=r"Invalid UUID - at `\$\.orderId`"):
        decode_bookworm(body, "DeleteBasketCompleteCommand")


def test_exchange_names() -> None:
    assert exchange_for(PlaceOrderCommand) == "BookWorm.Contracts:PlaceOrderCommand"
    assert (
        exchange_for("UserCheckedOutIntegrationEvent")
        == "BookWorm.Contracts:UserCheckedOutIntegrationEvent"
    )
    with pytest.raises(UnknownMessageError):
        exchange_for("ShipBasketCommand")


def test_new_bookworm_fills_id_and_creation_date() -> None:
    before = datetime.now(UTC)

    message = new_bookworm(
        UserCheckedOutIntegrationEvent,
        order_id=ORDER_ID,
        basket_id=uuid.uuid4(),
        full_name="Ada Lovelace",
        email="ada@example.com",
        total_money=Decimal("42.50"),
    )

    assert isinstance(message.id, uuid.UUID)
    assert before <= message.creation_date <= datetime.now(UTC)
    body = json.loads(encode_bookworm(message))
    assert body["totalMoney"] == 42.5
    assert body["creationDate"].endswith("Z")
    assert decode_bookworm(encode_bookworm(message), UserCheckedOutIntegrationEvent) == message


def test_unknown_message_name_is_rejected() -> None:
    with pytest.raises(UnknownMessageError, match="ShipBasketCommand"):
        decode_bookworm(b"{}", "ShipBasketCommand")
