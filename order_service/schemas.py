"""HTTP request bodies (SPEC §10), validated strictly by msgspec (SPEC §8): wrong types, unknown
fields, unknown enum values, zero or negative quantities and absurd sizes are 400s naming the
field."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from order_service.countries import CountryCode

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2000, pattern=r"^https?://\S+$")]
Email = Annotated[
    str, msgspec.Meta(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
Quantity = Annotated[int, msgspec.Meta(gt=0, le=100_000)]
Last4 = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{4}$")]
#: One line of a postal address: printable (no C0 or C1 control characters and no Unicode line
#: or paragraph separators, so no line breaks a PDF or a label printer would act on), not blank.
AddressLine = Annotated[
    str,
    msgspec.Meta(
        min_length=1, max_length=120, pattern=r"^(?=.*\S)[^\x00-\x1f\x7f-\x9f\u2028\u2029]+$"
    ),
]
PostalCode = Annotated[
    str, msgspec.Meta(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9][A-Za-z0-9 -]*$")
]
Condition = Literal["good", "damaged", "defective", "opened", "used"]

MAX_MONEY = Decimal("100000000")


def check_amount(name: str, value: Decimal | None, *, positive: bool = False) -> None:
    """msgspec has no bounds for Decimal: money is finite, 0 <= x <= 1e8, at most 2 decimals."""
    if value is None:
        return
    finite = value.is_finite()  # NaN and infinities do not even compare
    low_ok = finite and (value > 0 if positive else value >= 0)
    if not (low_ok and value <= MAX_MONEY):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"field `{name}`: must be a number {bound} and <= {MAX_MONEY}")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        raise ValueError(f"field `{name}`: at most 2 decimal places")


class Body(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class CartIn(Body, frozen=True, kw_only=True):
    customer_id: Id
    session_id: Id | None = None


class CartItemIn(Body, frozen=True, kw_only=True):
    variant_id: Id
    quantity: Quantity
    unit_price: Decimal

    def __post_init__(self) -> None:
        check_amount("unit_price", self.unit_price)


class AddressIn(Body, frozen=True, kw_only=True):
    name: AddressLine
    line1: AddressLine
    line2: AddressLine | None = None
    city: AddressLine
    postal_code: PostalCode
    region: AddressLine | None = None
    country: CountryCode


class CheckoutIn(Body, frozen=True, kw_only=True):
    email: Email
    full_name: Text
    currency: Currency = "USD"
    local_id: Id | None = None
    preferred_warehouse_id: Id | None = None
    reservation_ttl_minutes: Annotated[int, msgspec.Meta(gt=0, le=10_080)] = 15
    shipping_address: AddressIn | None = None
    #: Absent: the shipping address.
    billing_address: AddressIn | None = None


class PaymentIn(Body, frozen=True, kw_only=True):
    payment_method: Id
    card_last4: Last4 | None = None


class PaymentSucceededIn(Body, frozen=True, kw_only=True):
    gateway_payment_id: Id | None = None


class PaymentFailedIn(Body, frozen=True, kw_only=True):
    error_code: Id
    error_message: Text


class FulfillmentStartIn(Body, frozen=True, kw_only=True):
    warehouse_id: Id
    assigned_to: Id


class PickIn(Body, frozen=True, kw_only=True):
    order_item_id: uuid.UUID
    quantity_picked: Quantity
    picked_by: Id


class PackIn(Body, frozen=True, kw_only=True):
    package_count: Annotated[int, msgspec.Meta(gt=0, le=1000)]
    total_weight: Decimal
    packed_by: Id

    def __post_init__(self) -> None:
        weight = self.total_weight
        if not (weight.is_finite() and Decimal(0) < weight <= Decimal(100_000)):
            raise ValueError("field `total_weight`: must be a number > 0 and <= 100000")


class ShipmentIn(Body, frozen=True, kw_only=True):
    carrier: Id
    service: Id
    shipping_cost: Decimal

    def __post_init__(self) -> None:
        check_amount("shipping_cost", self.shipping_cost)


class LabelIn(Body, frozen=True, kw_only=True):
    tracking_number: Id | None = None
    label_url: Url | None = None
    carrier_cost: Decimal

    def __post_init__(self) -> None:
        check_amount("carrier_cost", self.carrier_cost)


class DispatchIn(Body, frozen=True, kw_only=True):
    warehouse_id: Id | None = None


class TrackingIn(Body, frozen=True, kw_only=True):
    current_location: Text
    status_description: Text


class DeliverIn(Body, frozen=True, kw_only=True):
    recipient: Text
    signature: Text | None = None
    delivery_photo_url: Url | None = None
    signature_required: bool = False


class CancelIn(Body, frozen=True, kw_only=True):
    reason: Id
    cancelled_by: Id


class ReturnItemIn(Body, frozen=True, kw_only=True):
    order_item_id: uuid.UUID
    quantity: Quantity


class ReturnIn(Body, frozen=True, kw_only=True):
    reason: Id
    items: Annotated[list[ReturnItemIn], msgspec.Meta(min_length=1, max_length=200)]


class ApproveIn(Body, frozen=True, kw_only=True):
    approved_by: Id
    refund_amount: Decimal

    def __post_init__(self) -> None:
        check_amount("refund_amount", self.refund_amount)


class ReturnedItemIn(Body, frozen=True, kw_only=True):
    variant_id: Id
    quantity: Quantity
    condition: Condition
    return_reason: Id


class ReceiveIn(Body, frozen=True, kw_only=True):
    warehouse_id: Id
    returned_items: Annotated[list[ReturnedItemIn], msgspec.Meta(min_length=1, max_length=200)]


class RefundIn(Body, frozen=True, kw_only=True):
    refund_method: Id


class SendInvoiceIn(Body, frozen=True, kw_only=True):
    recipient_email: Email
