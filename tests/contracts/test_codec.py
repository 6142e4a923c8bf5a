"""Money as JSON numbers, strictness of the other fields, and decoder caching."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import msgspec
import pytest

from contracts.codec import UtcDateTime, decode, decoder, encode


class Priced(msgspec.Struct, frozen=True, kw_only=True):
    amount: Decimal
    count: int


class Stamped(msgspec.Struct, frozen=True, kw_only=True):
    at: UtcDateTime


@pytest.mark.parametrize(
    ("raw", "expected_text", "expected_type"),
    [
        ("100", "100", int),
        ("125.5", "125.5", float),
        ("15.0", "15.0", float),
        ("0.10", "0.10", float),
    ],
)
def test_money_keeps_its_json_number_type(
    raw: str, expected_text: str, expected_type: type
) -> None:
    value = decode(f'{{"amount": {raw}, "count": 1}}'.encode(), Priced)

    assert value.amount == Decimal(raw)
    body = encode(value)
    assert body == f'{{"amount":{expected_text},"count":1}}'.encode()
    assert type(json.loads(body)["amount"]) is expected_type


def test_money_is_never_written_as_a_string() -> None:
    assert encode(Priced(amount=Decimal("19.99"), count=2)) == b'{"amount":19.99,"count":2}'


def test_decimal_leniency_does_not_loosen_int_fields() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"Expected `int`, got `str` - at `\$.count`"):
        decode(b'{"amount": 1, "count": "abc"}', Priced)


def test_int_field_rejects_a_float() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"\$.count"):
        decode(b'{"amount": 1, "count": 1.5}', Priced)


def test_utc_timestamps_round_trip_with_z() -> None:
    value = decode(b'{"at": "2025-11-23T15:00:00Z"}', Stamped)

    assert value.at == datetime(2025, 11, 23, 15, 0, tzinfo=UTC)
    assert encode(value) == b'{"at":"2025-11-23T15:00:00Z"}'


def test_naive_timestamp_is_rejected() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"timezone.*\$.at"):
        decode(b'{"at": "2025-11-23T15:00:00"}', Stamped)


def test_decoder_is_built_once_per_type() -> None:
    assert decoder(Priced) is decoder(Priced)
    assert decoder(Stamped) is decoder(Stamped)
    assert decoder(Priced).type is Priced
