"""The HTTP edge (SPEC §8, §10): keys, organizations, validation, idempotency, numbering,
listing, invoices as PDF."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import re
import uuid
import zlib
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from order_service import commands
from order_service import schemas as s
from order_service.adapters import repository
from order_service.domain import rules
from order_service.domain.states import CartStatus
from tests.order_service.conftest import Inventory, Shop
from tests.support import ORG, OTHER_ORG_KEY, auth, eventually, unique

CHECKOUT = {"email": "a@example.com", "full_name": "A B"}


async def test_requests_without_a_valid_key_are_401(client: AsyncTestClient[Any]) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
        response = await client.post("/carts", json={"customer_id": "c"}, headers=headers)
        assert response.status_code == 401, response.text
        assert response.json()["status"] == 401
    assert (await client.get("/orders", headers={})).status_code == 401


async def test_another_organizations_resources_are_404(shop: Shop, inventory: Inventory) -> None:
    order = await shop.order()
    await inventory.reserved(order)
    payment = await shop.pay(order)
    [invoice] = (
        await shop.client.get(f"/orders/{order['order_id']}/invoices", headers=auth())
    ).json()
    other = auth(OTHER_ORG_KEY)
    client = shop.client
    for path in (
        f"/orders/{order['order_id']}",
        f"/carts/{order['cart_id']}",
        f"/orders/{order['order_id']}/invoices",
        f"/invoices/{invoice['invoice_id']}.pdf",
    ):
        response = await client.get(path, headers=other)
        assert response.status_code == 404, (path, response.text)
    response = await client.post(
        f"/orders/{order['order_id']}/cancel",
        json={"reason": "x", "cancelled_by": "y"},
        headers=other,
    )
    assert response.status_code == 404
    response = await client.post(
        f"/payments/{payment['payment_id']}/succeed", json={}, headers=other
    )
    assert response.status_code == 404
    listed = (await client.get("/orders?limit=200", headers=other)).json()
    assert order["order_id"] not in {o["order_id"] for o in listed["items"]}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/carts", {}, "customer_id"),
        ("/carts", {"customer_id": 5}, "customer_id"),
        ("/carts", {"customer_id": "c", "colour": "red"}, "colour"),
        ("ITEMS", {"variant_id": "v", "quantity": 0, "unit_price": 1}, "quantity"),
        ("ITEMS", {"variant_id": "v", "quantity": -2, "unit_price": 1}, "quantity"),
        ("ITEMS", {"variant_id": "v", "quantity": 1, "unit_price": -1}, "unit_price"),
        ("ITEMS", {"variant_id": "v", "quantity": 1, "unit_price": "NaN"}, "unit_price"),
        ("ITEMS", {"variant_id": "v", "quantity": 10**9, "unit_price": 1}, "quantity"),
        ("ITEMS", {"variant_id": "v" * 5000, "quantity": 1, "unit_price": 1}, "variant_id"),
        ("CHECKOUT", {"email": "not-an-email", "full_name": "A"}, "email"),
        ("CHECKOUT", {**CHECKOUT, "currency": "dollars"}, "currency"),
        ("CHECKOUT", {**CHECKOUT, "reservation_ttl_minutes": 0}, "reservation_ttl_minutes"),
    ],
)
async def test_invalid_bodies_are_400_naming_the_field(
    shop: Shop, path: str, body: dict[str, Any], field: str
) -> None:
    cart = await shop.cart(("var_1", 1, "5.00"))
    path = {
        "ITEMS": f"/carts/{cart['cart_id']}/items",
        "CHECKOUT": f"/carts/{cart['cart_id']}/checkout",
    }.get(path, path)
    response = await shop.client.post(path, json=body, headers=auth())
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["status"] == 400, problem
    assert problem["field"] == field, problem


async def test_unknown_enum_values_and_bad_cursors_are_400(shop: Shop) -> None:
    response = await shop.client.get("/orders?status=lost", headers=auth())
    assert response.status_code == 400
    response = await shop.client.get(f"/orders?cursor={unique('x')}", headers=auth())
    assert response.status_code == 400
    assert response.json()["field"] == "cursor"
    item = {"variant_id": "var_1", "quantity": 1, "condition": "shiny", "return_reason": "x"}
    body = {"warehouse_id": "wh_1", "returned_items": [item]}
    response = await shop.client.post(f"/returns/{uuid.uuid4()}/receive", json=body, headers=auth())
    assert response.status_code == 400, response.text  # checked before the return is looked up
    assert response.json()["field"] == "returned_items[0].condition"


async def test_numbers_sent_as_strings_are_400(shop: Shop) -> None:
    cart = await shop.cart()
    for item in (
        {"variant_id": "var_1", "quantity": "2", "unit_price": 1.5},
        {"variant_id": "var_1", "quantity": 2.0, "unit_price": 1.5},
        {"variant_id": "var_1", "quantity": True, "unit_price": 1.5},
    ):
        response = await shop.client.post(
            f"/carts/{cart['cart_id']}/items", json=item, headers=auth()
        )
        assert response.status_code == 400, item
        assert response.json()["field"] == "quantity"
    item = {"variant_id": "var_1", "quantity": 2, "unit_price": "1.50"}
    response = await shop.client.post(f"/carts/{cart['cart_id']}/items", json=item, headers=auth())
    assert (response.status_code, response.json()["field"]) == (400, "unit_price"), response.text
    assert (await shop.get(f"/carts/{cart['cart_id']}"))["items"] == []


async def test_idempotency_key_replays_the_first_answer(shop: Shop) -> None:
    key = {"Idempotency-Key": unique("idem-")}
    body = {"customer_id": "cust_idem"}
    first = await shop.post("/carts", body, 201, **key)
    again = await shop.client.post("/carts", json=body, headers={**auth(), **key})
    assert again.status_code == 201
    assert again.json() == first
    assert again.headers.get("idempotent-replayed") == "true"
    other = await shop.client.post("/carts", json={"customer_id": "x"}, headers={**auth(), **key})
    assert other.status_code == 409
    assert other.json()["field"] == "Idempotency-Key"
    # One cart, one cart.created: the replay changed nothing.
    count = await shop.conn.fetchval(
        "SELECT count(*) FROM outbox WHERE type = 'cart.created' AND position($1 in"
        " convert_from(body, 'UTF8')) > 0",
        first["cart_id"],
    )
    assert count == 1


async def test_idempotent_checkout_creates_one_order(shop: Shop) -> None:
    cart = await shop.cart(("var_1", 2, "5.00"))
    key = {"Idempotency-Key": unique("idem-")}
    path = f"/carts/{cart['cart_id']}/checkout"
    first = await shop.post(path, CHECKOUT, 201, **key)
    second = await shop.post(path, CHECKOUT, 201, **key)
    assert second == first
    plain = await shop.client.post(path, json=CHECKOUT, headers=auth())
    assert plain.status_code == 409  # the cart is checked out already


async def test_concurrent_checkouts_get_distinct_gap_free_numbers(shop: Shop) -> None:
    carts = [await shop.cart(("var_c", 1, "1.00")) for _ in range(12)]
    responses = await asyncio.gather(
        *(
            shop.client.post(f"/carts/{c['cart_id']}/checkout", json=CHECKOUT, headers=auth())
            for c in carts
        )
    )
    assert [r.status_code for r in responses] == [201] * len(carts)
    numbers = [r.json()["order_number"] for r in responses]
    sequences = sorted(int(n.rsplit("-", 1)[1]) for n in numbers)
    assert all(re.fullmatch(r"ORD-\d{4}-\d{4,}", n) for n in numbers)
    assert sequences == list(range(sequences[0], sequences[0] + len(carts)))
    # Gap-free over the whole organization, whatever ran before.
    allocated = await shop.conn.fetch(
        "SELECT order_number FROM orders WHERE organization_id = 'org_test'"
    )
    all_numbers = sorted(int(r["order_number"].rsplit("-", 1)[1]) for r in allocated)
    assert all_numbers == list(range(1, len(all_numbers) + 1))


async def test_checkout_events_carry_the_number_the_order_got(shop: Shop) -> None:
    """`order.created` is encoded before the number is taken; the statement that takes it puts
    it in the body (placeholder filled in), and only there."""
    order = await shop.order()
    rows = await shop.conn.fetch(
        "SELECT type, body FROM outbox WHERE correlation_id = $1 ORDER BY id", order["order_id"]
    )
    bodies = {r["type"]: json.loads(r["body"]) for r in rows}
    assert set(bodies) == {"order.created", "order.placed", "UserCheckedOutIntegrationEvent"}
    assert bodies["order.created"]["data"]["order_number"] == order["order_number"]
    assert re.fullmatch(r"ORD-\d{4}-\d{4,}", order["order_number"])
    assert all(b"ORD-" not in r["body"] for r in rows if r["type"] != "order.created")


async def test_checkout_writes_nothing_for_a_cart_changed_since_it_was_read(shop: Shop) -> None:
    """Checkout reads the cart without a lock and writes only if the cart is still the version
    it read; a cart changed in between (an item added) is read again, never checked out as it
    was."""
    ctx = shop.client.app.state.order_context
    cart = await shop.cart(("var_1", 1, "5.00"))
    cart_id = uuid.UUID(cart["cart_id"])
    found = await repository.cart_to_check_out(shop.conn, ORG, cart_id)
    assert found is not None
    stale, lines = found
    await shop.post(
        f"/carts/{cart_id}/items", {"variant_id": "var_2", "quantity": 1, "unit_price": 7}, 201
    )
    counters = "SELECT coalesce(sum(last), 0) FROM number_counters WHERE kind = 'ORD'"
    before = await shop.conn.fetchval(counters)
    data = s.CheckoutIn(email="a@example.com", full_name="A B")
    written = await commands._check_out(
        shop.conn, ctx, ORG, stale, lines, CartStatus.CHECKED_OUT, data
    )
    assert written is None
    assert await shop.conn.fetchval(counters) == before  # no number taken: none lost
    assert await shop.conn.fetchval("SELECT count(*) FROM orders WHERE cart_id = $1", cart_id) == 0
    checked_out = await shop.conn.fetchval(
        "SELECT count(*) FROM outbox WHERE type = 'UserCheckedOutIntegrationEvent'"
        " AND position($1::bytea IN body) > 0",
        str(cart_id).encode(),
    )
    assert checked_out == 0
    assert (await shop.get(f"/carts/{cart_id}"))["status"] == "active"

    order = await shop.post(f"/carts/{cart_id}/checkout", CHECKOUT, 201)
    assert [i["variant_id"] for i in order["items"]] == ["var_1", "var_2"]
    assert order["total_amount"] == 12


async def test_numbers_written_in_sql_read_as_the_domain_writes_them(shop: Shop) -> None:
    """Checkout takes its number inside the INSERT (repository._number_sql): the same text as
    rules.human_number, past four digits too."""
    for year, sequence in ((2025, 1), (2025, 42), (2026, 9999), (2026, 10000), (2027, 123456)):
        written = await shop.conn.fetchval(
            f"SELECT {repository._number_sql('ORD', 'n')} FROM (SELECT $1::int AS year,"
            " $2::int AS last) AS n",
            year,
            sequence,
        )
        assert written == rules.human_number("ORD", year, sequence)


async def test_checkout_answers_the_items_as_stored(shop: Shop) -> None:
    order = await shop.order(("var_a", 2, "3.10"), ("var_b", 1, "0.99"), ("var_c", 3, "1.00"))
    assert await shop.get(f"/orders/{order['order_id']}") == order
    assert [(i["variant_id"], i["quantity"]) for i in order["items"]] == [
        ("var_a", 2),
        ("var_b", 1),
        ("var_c", 3),
    ]
    assert order["total_amount"] == 10.19


async def test_orders_page_by_status_with_a_cursor(shop: Shop) -> None:
    mine = {(await shop.order())["order_id"] for _ in range(3)}
    seen: list[str] = []
    cursor = None
    while True:
        query = "/orders?status=pending&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = await shop.get(query)
        assert len(page["items"]) <= 2
        assert {o["status"] for o in page["items"]} <= {"pending"}
        seen += [o["order_id"] for o in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert mine <= set(seen)
    assert len(seen) == len(set(seen))


async def test_concurrent_payments_get_gap_free_invoice_numbers_carried_by_their_events(
    shop: Shop, inventory: Inventory
) -> None:
    """The INV number is taken by the last statement of the payment's transaction, which also
    writes `invoice.created` with the number filled in, after `payment.succeeded` and before
    `order.confirmed` (stock was reserved first here)."""
    orders = [await shop.order() for _ in range(6)]
    for order in orders:
        await inventory.reserved(order)
        # Recorded: paying confirms the order in the same transaction.
        read = functools.partial(shop.get, f"/orders/{order['order_id']}")
        await eventually(read, lambda o: o["reservation_status"] == "reserved")
    await asyncio.gather(*(shop.pay(order) for order in orders))

    numbers = []
    for order in orders:
        [invoice] = (
            await shop.client.get(f"/orders/{order['order_id']}/invoices", headers=auth())
        ).json()
        rows = await shop.conn.fetch(
            "SELECT type, body FROM outbox WHERE correlation_id = $1 AND type IN"
            " ('payment.succeeded', 'invoice.created', 'order.confirmed') ORDER BY id",
            order["order_id"],
        )
        assert [r["type"] for r in rows] == [
            "payment.succeeded",
            "invoice.created",
            "order.confirmed",
        ]
        created = json.loads(rows[1]["body"])["data"]
        assert created["invoice_number"] == invoice["invoice_number"]
        assert created["invoice_id"] == invoice["invoice_id"]
        numbers.append(int(invoice["invoice_number"].rsplit("-", 1)[1]))
    assert sorted(numbers) == list(range(min(numbers), min(numbers) + len(orders)))
    allocated = await shop.conn.fetch(
        "SELECT invoice_number FROM invoices WHERE organization_id = $1", ORG
    )
    every = sorted(int(r["invoice_number"].rsplit("-", 1)[1]) for r in allocated)
    assert every == list(range(1, len(every) + 1))


async def test_invoice_pdf_is_a_real_pdf_with_lines_and_totals(
    shop: Shop, inventory: Inventory
) -> None:
    order = await shop.order()
    await inventory.reserved(order)
    await shop.pay(order)
    [invoice] = (
        await shop.client.get(f"/orders/{order['order_id']}/invoices", headers=auth())
    ).json()
    assert re.fullmatch(r"INV-\d{4}-\d{4,}", invoice["invoice_number"])
    assert invoice["pdf_url"] == f"http://orders.test/invoices/{invoice['invoice_id']}.pdf"
    response = await shop.client.get(f"/invoices/{invoice['invoice_id']}.pdf", headers=auth())
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    assert b"%%EOF" in response.content[-64:]
    text = _pdf_text(response.content)
    for expected in (invoice["invoice_number"], order["order_number"], "var_789", "125.50", "Juan"):
        assert expected in text, expected


async def test_invoice_pdf_prints_the_billing_and_shipping_addresses(
    shop: Shop, inventory: Inventory
) -> None:
    ship_to = {
        "name": "Ada Lovelace",
        "line1": "12 St James's Square",
        "city": "London",
        "postal_code": "SW1Y 4JH",
        "country": "GB",
    }
    bill_to = {
        "name": "Analytical Engines Ltd",
        "line1": "1 Babbage Row",
        "line2": "Floor 2",
        "city": "Cambridge",
        "postal_code": "CB2 1TN",
        "region": "Cambs",
        "country": "GB",
    }
    order = await shop.order(shipping_address=ship_to, billing_address=bill_to)
    await inventory.reserved(order)
    await shop.pay(order)
    [invoice] = (
        await shop.client.get(f"/orders/{order['order_id']}/invoices", headers=auth())
    ).json()
    response = await shop.client.get(f"/invoices/{invoice['invoice_id']}.pdf", headers=auth())
    assert response.status_code == 200
    text = _pdf_text(response.content)
    for expected in (
        "Bill to",
        "Analytical Engines Ltd",
        "Floor 2",
        "CB2 1TN Cambridge",
        "Cambs",
        "Ship to",
        "Ada Lovelace",
        "SW1Y 4JH London",
    ):
        assert expected in text, expected


def _pdf_text(pdf: bytes) -> str:
    """The page streams' text (reportlab writes them ASCII85- and Flate-encoded)."""
    chunks = []
    for stream in re.findall(rb"stream\r?\n(.*?)endstream", pdf, re.S):
        data = stream.strip()
        if data.endswith(b"~>"):
            data = base64.a85decode(data.removesuffix(b"~>"))
        with contextlib.suppress(zlib.error):
            data = zlib.decompress(data)
        chunks.append(data.decode("latin-1"))
    return "".join(chunks)


async def test_health_ready_and_openapi(client: AsyncTestClient[Any]) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["database"] is True
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/carts/{cart_id}/checkout" in schema["paths"]
