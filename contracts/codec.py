"""Shared JSON codec for every contract: one encoder, one cached decoder per type."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Annotated, Any, TypeVar

import msgspec

T = TypeVar("T")

# Timestamps must carry a zone: a naive one is ambiguous across services, so it fails decoding.
UtcDateTime = Annotated[datetime, msgspec.Meta(tz=True)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]

# decimal_format="number": money travels as a JSON number, and a Decimal keeps the exact digits
# it was decoded from, so 100 stays an int and 15.0 stays a float on re-encode.
ENCODER = msgspec.json.Encoder(decimal_format="number")


class UnknownMessageError(ValueError):
    """The event or message name is not part of any registered contract."""


def encode(obj: Any) -> bytes:
    return ENCODER.encode(obj)


@functools.cache
def _cached_decoder(type_: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(type_)


def decoder(type_: type[T]) -> msgspec.json.Decoder[T]:
    """The decoder for ``type_``, built on first use and shared afterwards."""
    # Generic aliases such as OrderEvent[X] are hashable at run time; mypy cannot know that.
    cache_key: Any = type_
    return _cached_decoder(cache_key)


def decode(body: bytes, type_: type[T]) -> T:
    return decoder(type_).decode(body)
