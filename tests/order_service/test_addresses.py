"""Shipping and billing addresses of checkout: validated strictly, kept on the order, shown in
its view, and left out of the order events (their payloads follow the seed examples)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.order_service.conftest import Shop, example, same_shape
from tests.support import auth

SHIP_TO = {
    "name": "Juan Pérez",
    "line1": "Calle de Alcalá 42",
    "line2": "3º izquierda",
    "city": "Madrid",
    "postal_code": "28014",
    "region": "Madrid",
    "country": "ES",
}
BILL_TO = {
    "name": "Pérez & Hijos S.L.",
    "line1": "1 Infinite Loop",
    "city": "Cupertino",
    "postal_code": "95014",
    "region": "CA",
    "country": "US",
}
CHECKOUT = {"email": "customer@example.com", "full_name": "Juan Pérez"}


async def test_checkout_keeps_both_addresses_on_the_order(shop: Shop) -> None:
    order = await shop.order(shipping_address=SHIP_TO, billing_address=BILL_TO)
    assert order["shipping_address"] == SHIP_TO
    assert order["billing_address"] == {**BILL_TO, "line2": None}
    assert await shop.get(f"/orders/{order['order_id']}") == order
    page = await shop.get("/orders?status=pending&limit=200")
    [listed] = [o for o in page["items"] if o["order_id"] == order["order_id"]]
    assert listed["billing_address"]["country"] == "US"


async def test_billing_defaults_to_the_shipping_address(shop: Shop) -> None:
    order = await shop.order(shipping_address=SHIP_TO)
    assert order["billing_address"] == order["shipping_address"] == SHIP_TO


async def test_addresses_are_optional(shop: Shop) -> None:
    order = await shop.order()
    assert order["shipping_address"] is None
    assert order["billing_address"] is None
    billed_only = await shop.order(billing_address=BILL_TO)
    assert billed_only["shipping_address"] is None
    assert billed_only["billing_address"]["city"] == "Cupertino"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"shipping_address": {**SHIP_TO, "country": "XX"}}, "shipping_address.country"),
        ({"shipping_address": {**SHIP_TO, "country": "es"}}, "shipping_address.country"),
        ({"shipping_address": {**SHIP_TO, "country": "ESP"}}, "shipping_address.country"),
        ({"billing_address": {**BILL_TO, "country": 840}}, "billing_address.country"),
        ({"shipping_address": {**SHIP_TO, "line1": "  "}}, "shipping_address.line1"),
        ({"shipping_address": {**SHIP_TO, "line1": "a\nb"}}, "shipping_address.line1"),
        ({"shipping_address": {**SHIP_TO, "line1": "a\u0085b"}}, "shipping_address.line1"),
        ({"billing_address": {**BILL_TO, "name": "a\u2028b"}}, "billing_address.name"),
        ({"shipping_address": {**SHIP_TO, "city": "x" * 121}}, "shipping_address.city"),
        ({"billing_address": {**BILL_TO, "postal_code": "9501#"}}, "billing_address.postal_code"),
        ({"billing_address": {**BILL_TO, "postal_code": "1" * 17}}, "billing_address.postal_code"),
        ({"shipping_address": "Calle de Alcalá 42, Madrid"}, "shipping_address"),
    ],
)
async def test_invalid_addresses_are_400_naming_the_field(
    shop: Shop, body: dict[str, Any], field: str
) -> None:
    problem = await _refused_checkout(shop, {**CHECKOUT, **body})
    assert problem["field"] == field, problem


@pytest.mark.parametrize(
    ("address", "named"),
    [
        ({**SHIP_TO, "street": "Calle de Alcalá"}, "street"),
        ({k: v for k, v in SHIP_TO.items() if k != "postal_code"}, "postal_code"),
    ],
)
async def test_unknown_and_missing_address_fields_are_400(
    shop: Shop, address: dict[str, Any], named: str
) -> None:
    """The problem's `field` is the address (the path msgspec reports); its detail names the
    field inside it."""
    problem = await _refused_checkout(shop, {**CHECKOUT, "shipping_address": address})
    assert problem["field"] == "shipping_address", problem
    assert f"`{named}`" in problem["detail"], problem


async def test_order_events_do_not_carry_the_addresses(shop: Shop) -> None:
    order = await shop.order(shipping_address=SHIP_TO, billing_address=BILL_TO)
    rows = await shop.conn.fetch(
        "SELECT type, convert_from(body, 'UTF8') AS body FROM outbox"
        " WHERE correlation_id = $1 AND type IN ('order.created', 'order.placed')",
        order["order_id"],
    )
    assert sorted(r["type"] for r in rows) == ["order.created", "order.placed"]
    for row in rows:
        data = json.loads(row["body"])["data"]
        assert same_shape(data, example(row["type"])["data"]) == [], row["type"]


async def _refused_checkout(shop: Shop, body: dict[str, Any]) -> dict[str, Any]:
    cart = await shop.cart(("var_1", 1, "5.00"))
    path = f"/carts/{cart['cart_id']}/checkout"
    response = await shop.client.post(path, json=body, headers=auth())
    assert response.status_code == 400, response.text
    problem: dict[str, Any] = response.json()
    assert problem["status"] == 400, problem
    # Nothing was written: the cart can still be checked out.
    assert (await shop.get(f"/carts/{cart['cart_id']}"))["status"] == "active"
    return problem
