"""Litestar controllers (SPEC §10): each route hands one unit of work to `command` or `read`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import FromPath, JSONBody

from contracts.inventory import BulkTransactionPayload
from inventory_service import commands as c
from inventory_service.adapters import catalog
from inventory_service.schemas import (
    BinIn,
    BinItemIn,
    BinItemPatch,
    BinUpdate,
    CheckIn,
    TransactionIn,
    TransactionPatch,
)
from messaging import db
from messaging.outbox import Outbox
from messaging.web import Org, command, organization, runtime_of

AnyRequest = Request[Any, Any, State]


def _outbox(request: AnyRequest) -> Outbox:
    return runtime_of(request).outbox


async def read(request: AnyRequest, work: Callable[[db.Connection], Awaitable[Any]]) -> Any:
    async with db.acquire(runtime_of(request).pool) as conn:
        return await work(conn)


class BinsController(Controller):
    path = "/bins"
    tags = ["bins"]
    dependencies = {"organization_id": Provide(organization)}

    @post("/", summary="Create a bin", status_code=201)
    async def create(
        self, request: AnyRequest, organization_id: Org, data: JSONBody[BinIn]
    ) -> Response[bytes]:
        work = lambda conn: c.create_bin(conn, organization_id, _outbox(request), data)  # noqa: E731
        return await command(request, organization_id, work, status=201)

    @get("/", summary="List bins")
    async def list_bins(self, request: AnyRequest, organization_id: Org) -> list[dict[str, Any]]:
        rows = await read(request, lambda conn: catalog.list_bins(conn, organization_id))
        return [catalog.bin_view(row) for row in rows]

    @get("/{name:str}", summary="A bin")
    async def get_bin(
        self, request: AnyRequest, organization_id: Org, name: FromPath[str]
    ) -> dict[str, Any]:
        row = await read(request, lambda conn: c.get_bin(conn, organization_id, name))
        return catalog.bin_view(row)

    @put("/{name:str}", summary="Replace a bin's fields")
    async def update(
        self,
        request: AnyRequest,
        organization_id: Org,
        name: FromPath[str],
        data: JSONBody[BinUpdate],
    ) -> Response[bytes]:
        work = lambda conn: c.update_bin(conn, organization_id, _outbox(request), name, data)  # noqa: E731
        return await command(request, organization_id, work)

    @delete("/{name:str}", summary="Delete an empty bin", status_code=200)
    async def remove(
        self, request: AnyRequest, organization_id: Org, name: FromPath[str]
    ) -> Response[bytes]:
        work = lambda conn: c.delete_bin(conn, organization_id, _outbox(request), name)  # noqa: E731
        return await command(request, organization_id, work)

    @post("/{name:str}/items", summary="Add a SKU to a bin", status_code=201)
    async def create_item(
        self,
        request: AnyRequest,
        organization_id: Org,
        name: FromPath[str],
        data: JSONBody[BinItemIn],
    ) -> Response[bytes]:
        work = lambda conn: c.create_item(conn, organization_id, _outbox(request), name, data)  # noqa: E731
        return await command(request, organization_id, work, status=201)

    @get("/{name:str}/items/{sku:str}", summary="A bin item")
    async def get_item(
        self, request: AnyRequest, organization_id: Org, name: FromPath[str], sku: FromPath[str]
    ) -> dict[str, Any]:
        result: dict[str, Any] = await read(
            request, lambda conn: c.get_item(conn, organization_id, name, sku)
        )
        return result

    @patch("/{name:str}/items/{sku:str}", summary="Change a bin item's quantities or thresholds")
    async def patch_item(
        self,
        request: AnyRequest,
        organization_id: Org,
        name: FromPath[str],
        sku: FromPath[str],
        data: JSONBody[BinItemPatch],
    ) -> Response[bytes]:
        outbox = _outbox(request)
        work = lambda conn: c.patch_item(conn, organization_id, outbox, name, sku, data)  # noqa: E731
        return await command(request, organization_id, work)


class TransactionsController(Controller):
    path = "/transactions"
    tags = ["transactions"]
    dependencies = {"organization_id": Provide(organization)}

    @post("/", summary="ADD / REMOVE / TRANSFER / RECONCILE", status_code=201)
    async def create(
        self, request: AnyRequest, organization_id: Org, data: JSONBody[TransactionIn]
    ) -> Response[bytes]:
        work = lambda conn: c.create_transaction(conn, organization_id, _outbox(request), data)  # noqa: E731
        return await command(request, organization_id, work, status=201)

    @patch("/{transaction_id:int}", summary="Change a transaction's status, notes, properties")
    async def patch(
        self,
        request: AnyRequest,
        organization_id: Org,
        transaction_id: FromPath[int],
        data: JSONBody[TransactionPatch],
    ) -> Response[bytes]:
        outbox = _outbox(request)
        work = lambda conn: c.patch_transaction(conn, organization_id, outbox, transaction_id, data)  # noqa: E731
        return await command(request, organization_id, work)

    @post("/bulk", summary="Bulk transactions (allOrNone), as the queue", status_code=200)
    async def bulk(
        self, request: AnyRequest, organization_id: Org, data: JSONBody[BulkTransactionPayload]
    ) -> Response[bytes]:
        work = lambda conn: c.bulk(conn, organization_id, _outbox(request), data)  # noqa: E731
        return await command(request, organization_id, work)


class StockController(Controller):
    tags = ["stock"]
    dependencies = {"organization_id": Provide(organization)}

    @post("/inventory/check", summary="Can these quantities be promised?", status_code=200)
    async def check(
        self, request: AnyRequest, organization_id: Org, data: JSONBody[CheckIn]
    ) -> dict[str, Any]:
        result: dict[str, Any] = await read(
            request, lambda conn: c.check(conn, organization_id, data)
        )
        return result

    @get("/stock/{sku:str}", summary="A SKU's stock in every bin")
    async def stock(
        self, request: AnyRequest, organization_id: Org, sku: FromPath[str]
    ) -> dict[str, Any]:
        result: dict[str, Any] = await read(
            request, lambda conn: c.stock_of(conn, organization_id, sku)
        )
        return result

    @get("/reservations/{order_id:str}", summary="An order's reservation")
    async def reservation(
        self, request: AnyRequest, organization_id: Org, order_id: FromPath[str]
    ) -> dict[str, Any]:
        result: dict[str, Any] = await read(
            request, lambda conn: c.reservation(conn, organization_id, order_id)
        )
        return result


ROUTES = [BinsController, TransactionsController, StockController]
