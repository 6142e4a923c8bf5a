"""asyncpg SQL of the order service. Rows come back as asyncpg Records; callers lock an order
(`FOR UPDATE`) before touching anything that belongs to it, so every change to one order —
HTTP request or consumed message — is serialised on that row, always taken first."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import asyncpg

from messaging import db
from messaging.outbox import OutboxRows
from order_service.domain.rules import Line, human_number

Record = asyncpg.Record
Table = Literal["carts", "orders", "order_items", "payments", "invoices", "shipments", "returns"]
NumberKind = Literal["ORD", "RMA", "INV"]


def _take_number(organization: str, kind: str, *, when: str | None = None) -> str:
    """The counter's next value for the current year, as (year, last): locks its row. `when`
    names a CTE of the same statement: no number is taken unless it has a row."""
    return (
        "INSERT INTO number_counters AS c (organization_id, kind, year, last)"
        f" SELECT {organization}, {kind}, extract(year FROM now() AT TIME ZONE 'UTC')::int, 1"
        + (f" FROM {when}" if when else "")
        + " ON CONFLICT (organization_id, kind, year) DO UPDATE SET last = c.last + 1"
        " RETURNING year, last"
    )


async def next_number(conn: db.Connection, organization_id: str, kind: NumberKind) -> str:
    """The next ORD/RMA/INV number of the organization for the current year. The counter row
    stays locked until the caller's transaction ends: gap-free and collision-free."""
    row = await conn.fetchrow(_take_number("$1", "$2"), organization_id, kind)
    assert row is not None
    return human_number(kind, row["year"], row["last"])


def _number_sql(kind: NumberKind, counter: str) -> str:
    """`rules.human_number` in SQL, over a counter row `counter` (year, last)."""
    return (
        f"'{kind}-' || {counter}.year || '-' || CASE WHEN {counter}.last < 10000"
        f" THEN lpad({counter}.last::text, 4, '0') ELSE {counter}.last::text END"
    )


_NUMBER_COLUMN = {"ORD": "order_number", "INV": "invoice_number"}


def _numbered(
    kind: Literal["ORD", "INV"],
    table: Literal["orders", "invoices"],
    names: Sequence[str],
    messages: OutboxRows,
    *,
    when: str | None = None,
) -> tuple[str, int]:
    """CTE terms of a statement that writes a row under the organization's next `kind` number
    (its fields are `$1…$len(names)`, `organization_id` among them) and its messages with that
    number filled in: `n` (the counter), `r` (the row) and the outbox rows, after which the
    statement's SELECT must notify the relay (`_notified`). Returns the SQL and the first free
    parameter number."""
    org = list(names).index("organization_id") + 1
    values = ", ".join(f"${i}" for i in range(1, len(names) + 1))
    column = _NUMBER_COLUMN[kind]
    outbox_at = len(names) + 1
    take = _take_number(f"${org}", f"'{kind}'", when=when)
    sql = (
        f"n AS ({take}),"
        f" r AS (INSERT INTO {table} ({', '.join(names)}, {column})"
        f" SELECT {values}, {_number_sql(kind, 'n')} FROM n RETURNING *),"
        f" m AS ({messages.insert_sql(outbox_at, fill=f'r.{column}', source='r')})"
    )
    return sql, outbox_at + len(messages.columns)


def _notified(param: int) -> str:
    """The written row, and the relay's NOTIFY (`$param`, the channel) if there is one."""
    return f" SELECT r.* FROM r, LATERAL (SELECT pg_notify(${param}, '')) AS notified"


async def insert_numbered_invoice(
    conn: db.Connection, messages: OutboxRows, **fields: Any
) -> Record:
    """The invoice under the organization's next INV number, and its messages with the number
    filled in: one statement. Gap-free numbers keep the counter row locked until the
    transaction ends, so the caller makes it its last before the commit."""
    numbered, free = _numbered("INV", "invoices", list(fields), messages)
    row = await _one(
        conn,
        f"WITH {numbered}{_notified(free)}",
        *fields.values(),
        *messages.columns,
        messages.channel,
    )
    assert row is not None
    return row


async def cart_to_check_out(
    conn: db.Connection, organization_id: str, cart_id: uuid.UUID
) -> tuple[Record, list[Line]] | None:
    """The cart with its version (`xmin`, which every change of the cart row renews — adding
    an item updates it too) and its lines: one read, no lock."""
    rows = await conn.fetch(
        "SELECT c.*, c.xmin AS version, i.variant_id AS line_variant_id,"
        " i.quantity AS line_quantity, i.unit_price AS line_unit_price"
        " FROM carts c LEFT JOIN cart_items i ON i.cart_id = c.id"
        " WHERE c.id = $1 AND c.organization_id = $2 ORDER BY i.added_at, i.variant_id",
        cart_id,
        organization_id,
    )
    if not rows:
        return None
    lines = [
        Line(r["line_variant_id"], r["line_quantity"], r["line_unit_price"])
        for r in rows
        if r["line_variant_id"] is not None
    ]
    return rows[0], lines


async def check_out(
    conn: db.Connection,
    cart: Record,
    lines: Sequence[Line],
    cart_status: str,
    messages: OutboxRows,
    **order: Any,
) -> tuple[Record, list[dict[str, Any]]] | None:
    """The cart checked out — if it is still the version `cart_to_check_out` read — and the
    order under the organization's next ORD number, its items and its messages (whose bodies
    get that number in place of `messages`' placeholder): ONE statement. None, writing
    nothing, when the cart changed since it was read.

    Gap-free numbers (SPEC §2.1) keep the counter row locked until the transaction ends, so
    the checkouts of one organization pass it one at a time. Run on its own (autocommit), the
    statement is its transaction: the lock is held while Postgres executes it, never across a
    round trip to this process. Returns the order row and its items as the order's view reads
    them."""
    names = list(order)
    order_id = names.index("id") + 1
    item_ids = [uuid.uuid4() for _ in lines]
    numbered, lines_at = _numbered("ORD", "orders", names, messages, when="cart")
    cart_at = lines_at + 5
    sql = (
        f"WITH cart AS (UPDATE carts SET status = ${cart_at}, order_id = ${order_id},"
        f" last_activity_at = ${cart_at + 1} WHERE id = ${cart_at + 2}"
        f" AND xmin = ${cart_at + 3}::xid RETURNING id),"
        f" {numbered},"
        " i AS (INSERT INTO order_items (id, order_id, line, variant_id, quantity, unit_price)"
        " SELECT t.id, r.id, t.line, t.variant_id, t.quantity, t.unit_price FROM r, unnest("
        f"${lines_at}::uuid[], ${lines_at + 1}::int[], ${lines_at + 2}::text[],"
        f" ${lines_at + 3}::int[], ${lines_at + 4}::numeric[])"
        " AS t(id, line, variant_id, quantity, unit_price))"
        f"{_notified(cart_at + 4)}"
    )
    row = await _one(
        conn,
        sql,
        *order.values(),
        *messages.columns,
        item_ids,
        list(range(1, len(lines) + 1)),
        [line.variant_id for line in lines],
        [line.quantity for line in lines],
        [line.unit_price for line in lines],
        cart_status,
        order["created_at"],
        cart["id"],
        cart["version"],
        messages.channel,
    )
    if row is None:
        return None
    items = [
        {
            "id": item_id,
            "order_id": row["id"],
            "line": number,
            "variant_id": line.variant_id,
            "quantity": line.quantity,
            "unit_price": line.unit_price,
            "warehouse_id": None,
            "quantity_picked": 0,
        }
        for number, (item_id, line) in enumerate(zip(item_ids, lines, strict=True), start=1)
    ]
    return row, items


async def update(conn: db.Connection, table: Table, row_id: uuid.UUID, **fields: Any) -> Record:
    """`UPDATE table SET field = value, ... WHERE id = row_id RETURNING *` (names from code)."""
    names = list(fields)
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=2))
    if table == "orders":
        assignments += ", updated_at = now()"
    row = await conn.fetchrow(
        f"UPDATE {table} SET {assignments} WHERE id = $1 RETURNING *", row_id, *fields.values()
    )
    assert row is not None, f"{table} {row_id} vanished inside its own transaction"
    return row


async def _one(conn: db.Connection, sql: str, *args: Any) -> Record | None:
    row: Record | None = await conn.fetchrow(sql, *args)
    return row


# -- carts -------------------------------------------------------------------------------------


async def insert_cart(
    conn: db.Connection,
    cart_id: uuid.UUID,
    organization_id: str,
    customer_id: str,
    session_id: str | None,
    at: datetime,
) -> Record:
    row = await _one(
        conn,
        "INSERT INTO carts (id, organization_id, customer_id, session_id, created_at,"
        " last_activity_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING *",
        cart_id,
        organization_id,
        customer_id,
        session_id,
        at,
    )
    assert row is not None
    return row


async def get_cart(
    conn: db.Connection, organization_id: str | None, cart_id: uuid.UUID, *, lock: bool = False
) -> Record | None:
    """`organization_id` None: any organization (saga messages carry none; ids are UUIDs)."""
    return await _one(
        conn,
        "SELECT * FROM carts WHERE id = $1 AND ($2::text IS NULL OR organization_id = $2)"
        + (" FOR UPDATE" if lock else ""),
        cart_id,
        organization_id,
    )


async def cart_items(conn: db.Connection, cart_id: uuid.UUID) -> list[Record]:
    rows: list[Record] = await conn.fetch(
        "SELECT * FROM cart_items WHERE cart_id = $1 ORDER BY added_at, variant_id", cart_id
    )
    return rows


async def add_cart_item(
    conn: db.Connection,
    cart_id: uuid.UUID,
    variant_id: str,
    quantity: int,
    unit_price: Decimal,
    at: datetime,
) -> None:
    """Adding a variant again adds to its quantity; the latest price applies."""
    await conn.execute(
        "INSERT INTO cart_items AS i (cart_id, variant_id, quantity, unit_price, added_at)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (cart_id, variant_id)"
        " DO UPDATE SET quantity = i.quantity + EXCLUDED.quantity,"
        " unit_price = EXCLUDED.unit_price",
        cart_id,
        variant_id,
        quantity,
        unit_price,
        at,
    )


async def claim_idle_carts(conn: db.Connection, idle_seconds: float, limit: int) -> list[Record]:
    """Mark idle carts abandoned and return them; `SKIP LOCKED` lets replicas sweep together
    and the status change makes each cart come back exactly once."""
    rows: list[Record] = await conn.fetch(
        "WITH idle AS ("
        "  SELECT c.id FROM carts c"
        "  WHERE c.status = 'active' AND c.abandoned_at IS NULL"
        "    AND c.last_activity_at < now() - make_interval(secs => $1)"
        "    AND EXISTS (SELECT 1 FROM cart_items i WHERE i.cart_id = c.id)"
        "  ORDER BY c.last_activity_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
        " UPDATE carts c SET status = 'abandoned', abandoned_at = now()"
        " FROM idle WHERE c.id = idle.id RETURNING c.*",
        idle_seconds,
        limit,
    )
    return rows


async def items_of_carts(
    conn: db.Connection, cart_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Line]]:
    found: dict[uuid.UUID, list[Line]] = {cart_id: [] for cart_id in cart_ids}
    for row in await conn.fetch(
        "SELECT cart_id, variant_id, quantity, unit_price FROM cart_items"
        " WHERE cart_id = ANY($1::uuid[])",
        list(cart_ids),
    ):
        found[row["cart_id"]].append(Line(row["variant_id"], row["quantity"], row["unit_price"]))
    return found


# -- orders ------------------------------------------------------------------------------------


async def get_order(
    conn: db.Connection, organization_id: str | None, order_id: uuid.UUID, *, lock: bool = False
) -> Record | None:
    """`organization_id` None: any organization (for messages, which carry only the id)."""
    return await _one(
        conn,
        "SELECT * FROM orders WHERE id = $1 AND ($2::text IS NULL OR organization_id = $2)"
        + (" FOR UPDATE" if lock else ""),
        order_id,
        organization_id,
    )


async def lock_orders(conn: db.Connection, order_ids: list[uuid.UUID]) -> None:
    """Lock these orders in the order given (callers sort them)."""
    if order_ids:
        await conn.execute(
            "SELECT id FROM orders WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE", order_ids
        )


async def order_items(conn: db.Connection, order_id: uuid.UUID) -> list[Record]:
    rows: list[Record] = await conn.fetch(
        "SELECT * FROM order_items WHERE order_id = $1 ORDER BY line", order_id
    )
    return rows


async def set_item_warehouses(
    conn: db.Connection, order_id: uuid.UUID, warehouses: dict[str, str]
) -> None:
    await conn.execute(
        "UPDATE order_items i SET warehouse_id = w.warehouse_id"
        " FROM unnest($2::text[], $3::text[]) AS w(variant_id, warehouse_id)"
        " WHERE i.order_id = $1 AND i.variant_id = w.variant_id",
        order_id,
        list(warehouses),
        list(warehouses.values()),
    )


def encode_cursor(created_at: datetime, order_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{order_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Raises ValueError for a cursor this service did not hand out."""
    text = base64.urlsafe_b64decode(cursor.encode()).decode()
    created_at, _, order_id = text.partition("|")
    moment = datetime.fromisoformat(created_at)
    if moment.tzinfo is None:
        raise ValueError("cursor without a time zone")
    return moment, uuid.UUID(order_id)


async def page_orders(
    conn: db.Connection,
    organization_id: str,
    status: str | None,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
) -> list[Record]:
    """Newest first; keyset pagination on (created_at, id)."""
    created_at, order_id = after if after is not None else (None, None)
    rows: list[Record] = await conn.fetch(
        "SELECT * FROM orders WHERE organization_id = $1"
        " AND ($2::text IS NULL OR status = $2)"
        " AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))"
        " ORDER BY created_at DESC, id DESC LIMIT $5",
        organization_id,
        status,
        created_at,
        order_id,
        limit,
    )
    return rows


async def items_of_orders(
    conn: db.Connection, order_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Record]]:
    found: dict[uuid.UUID, list[Record]] = {order_id: [] for order_id in order_ids}
    for row in await conn.fetch(
        "SELECT * FROM order_items WHERE order_id = ANY($1::uuid[]) ORDER BY line",
        list(order_ids),
    ):
        found[row["order_id"]].append(row)
    return found


# -- payments ----------------------------------------------------------------------------------


async def insert_payment(conn: db.Connection, **fields: Any) -> Record:
    names = list(fields)
    placeholders = ", ".join(f"${i}" for i in range(1, len(names) + 1))
    row = await _one(
        conn,
        f"INSERT INTO payments ({', '.join(names)}) VALUES ({placeholders}) RETURNING *",
        *fields.values(),
    )
    assert row is not None
    return row


async def live_payment(conn: db.Connection, order_id: uuid.UUID) -> Record | None:
    return await _one(
        conn,
        "SELECT * FROM payments WHERE order_id = $1 AND status IN ('pending', 'succeeded')",
        order_id,
    )


async def pending_payments(conn: db.Connection, order_id: uuid.UUID) -> list[Record]:
    rows: list[Record] = await conn.fetch(
        "SELECT * FROM payments WHERE order_id = $1 AND status = 'pending' FOR UPDATE", order_id
    )
    return rows


async def get_child(
    conn: db.Connection,
    table: Literal["payments", "invoices", "shipments", "returns"],
    organization_id: str,
    row_id: uuid.UUID,
    *,
    lock: bool = False,
) -> Record | None:
    return await _one(
        conn,
        f"SELECT * FROM {table} WHERE id = $1 AND organization_id = $2"
        + (" FOR UPDATE" if lock else ""),
        row_id,
        organization_id,
    )


async def owning_order(
    conn: db.Connection,
    table: Literal["payments", "invoices", "shipments", "returns"],
    organization_id: str,
    row_id: uuid.UUID,
) -> uuid.UUID | None:
    order_id: uuid.UUID | None = await conn.fetchval(
        f"SELECT order_id FROM {table} WHERE id = $1 AND organization_id = $2",
        row_id,
        organization_id,
    )
    return order_id


# -- invoices, shipments, returns ---------------------------------------------------------------


async def insert_row(
    conn: db.Connection,
    table: Literal["invoices", "shipments", "returns"],
    **fields: Any,
) -> Record:
    names = list(fields)
    placeholders = ", ".join(f"${i}" for i in range(1, len(names) + 1))
    row = await _one(
        conn,
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({placeholders}) RETURNING *",
        *fields.values(),
    )
    assert row is not None
    return row


async def invoices_of(conn: db.Connection, order_id: uuid.UUID) -> list[Record]:
    rows: list[Record] = await conn.fetch(
        "SELECT * FROM invoices WHERE order_id = $1 ORDER BY issued_at, invoice_number", order_id
    )
    return rows


async def shipment_of(conn: db.Connection, order_id: uuid.UUID) -> Record | None:
    return await _one(conn, "SELECT * FROM shipments WHERE order_id = $1", order_id)


async def insert_return_items(
    conn: db.Connection, return_id: uuid.UUID, items: Sequence[tuple[uuid.UUID, str, int]]
) -> list[Record]:
    rows: list[Record] = await conn.fetch(
        "INSERT INTO return_items (return_id, order_item_id, variant_id, quantity)"
        " SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::int[]) RETURNING *",
        return_id,
        [item[0] for item in items],
        [item[1] for item in items],
        [item[2] for item in items],
    )
    return rows


async def return_items(conn: db.Connection, return_id: uuid.UUID) -> list[Record]:
    rows: list[Record] = await conn.fetch(
        "SELECT * FROM return_items WHERE return_id = $1 ORDER BY variant_id", return_id
    )
    return rows


async def returned_quantities(conn: db.Connection, order_id: uuid.UUID) -> dict[str, int]:
    """Per order item, the quantity already in a return of this order."""
    return {
        str(row["order_item_id"]): int(row["quantity"])
        for row in await conn.fetch(
            "SELECT i.order_item_id, sum(i.quantity) AS quantity FROM return_items i"
            " JOIN returns r ON r.id = i.return_id WHERE r.order_id = $1"
            " GROUP BY i.order_item_id",
            order_id,
        )
    }


async def approved_unrefunded(conn: db.Connection, order_id: uuid.UUID) -> Decimal:
    """Refunds promised by approved returns not refunded yet (they count against the budget)."""
    value: Decimal = await conn.fetchval(
        "SELECT coalesce(sum(refund_amount), 0) FROM returns"
        " WHERE order_id = $1 AND status IN ('approved', 'received')",
        order_id,
    )
    return value
