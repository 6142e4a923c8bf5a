"""Litestar controllers (SPEC §10): each route hands one use case to `run` (state changes: one
transaction, Idempotency-Key, problem details) or `read`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from contracts.codec import encode
from messaging import db
from messaging.web import Conflict, NotFound, Org, command, organization, runtime_of
from order_service import commands as c
from order_service import schemas as s
from order_service.adapters.pdf import render_invoice
from order_service.commands import Context
from order_service.domain.errors import IllegalTransition, RuleViolation
from order_service.domain.states import OrderStatus

AnyRequest = Request[Any, Any, State]
Work = Callable[[db.Connection], Awaitable[Any]]
JSON = "application/json"


def ctx_of(request: AnyRequest) -> Context:
    ctx: Context = request.app.state.order_context
    return ctx


def guarded(work: Work) -> Work:
    """Domain refusals become 409 problem details; the transaction rolls back, nothing is sent."""

    async def run(conn: db.Connection) -> Any:
        try:
            return await work(conn)
        except IllegalTransition as exc:
            raise Conflict(str(exc)) from exc
        except RuleViolation as exc:
            raise Conflict(str(exc), field=exc.field) from exc

    return run


async def run(
    request: AnyRequest, org: str, work: Work, status: int = 200, *, atomic: bool = False
) -> Response[bytes]:
    return await command(request, org, guarded(work), status=status, atomic=atomic)


async def read(request: AnyRequest, work: Work) -> Response[bytes]:
    async with db.acquire(runtime_of(request).pool) as conn:
        return Response(encode(await work(conn)), media_type=JSON)


class CartsController(Controller):
    path = "/carts"
    tags = ["carts"]
    dependencies = {"org": Provide(organization)}

    @post("/", summary="Create a cart", status_code=201)
    async def create(
        self, request: AnyRequest, org: Org, data: JSONBody[s.CartIn]
    ) -> Response[bytes]:
        ctx = ctx_of(request)
        return await run(request, org, lambda conn: c.create_cart(conn, ctx, org, data), 201)

    @post("/{cart_id:uuid}/items", summary="Add an item", status_code=201)
    async def add_item(
        self,
        request: AnyRequest,
        org: Org,
        cart_id: FromPath[uuid.UUID],
        data: JSONBody[s.CartItemIn],
    ) -> Response[bytes]:
        ctx = ctx_of(request)
        work = lambda conn: c.add_cart_item(conn, ctx, org, cart_id, data)  # noqa: E731
        return await run(request, org, work, 201)

    @get("/{cart_id:uuid}", summary="A cart")
    async def get_cart(
        self, request: AnyRequest, org: Org, cart_id: FromPath[uuid.UUID]
    ) -> Response[bytes]:
        return await read(request, lambda conn: c.get_cart(conn, org, cart_id))

    @post("/{cart_id:uuid}/checkout", summary="Check out: the order", status_code=201)
    async def checkout(
        self,
        request: AnyRequest,
        org: Org,
        cart_id: FromPath[uuid.UUID],
        data: JSONBody[s.CheckoutIn],
    ) -> Response[bytes]:
        ctx = ctx_of(request)
        work = lambda conn: c.checkout(conn, ctx, org, cart_id, data)  # noqa: E731
        return await run(request, org, work, 201, atomic=True)


class OrdersController(Controller):
    path = "/orders"
    tags = ["orders"]
    dependencies = {"org": Provide(organization)}

    @get("/", summary="A page of orders, newest first")
    async def list_orders(
        self,
        request: AnyRequest,
        org: Org,
        status: FromQuery[OrderStatus | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, QueryParameter(max_length=500)] = None,
    ) -> Response[bytes]:
        return await read(request, lambda conn: c.list_orders(conn, org, status, limit, cursor))

    @get("/{order_id:uuid}", summary="An order")
    async def get_order(
        self, request: AnyRequest, org: Org, order_id: FromPath[uuid.UUID]
    ) -> Response[bytes]:
        return await read(request, lambda conn: c.get_order(conn, org, order_id))

    @post("/{order_id:uuid}/payments", summary="Start a payment", status_code=201)
    async def pay(
        self,
        request: AnyRequest,
        org: Org,
        order_id: FromPath[uuid.UUID],
        data: JSONBody[s.PaymentIn],
    ) -> Response[bytes]:
        ctx = ctx_of(request)
        work = lambda conn: c.create_payment(conn, ctx, org, order_id, data)  # noqa: E731
        return await run(request, org, work, 201)

    @post("/{order_id:uuid}/cancel", summary="Cancel before shipment", status_code=200)
    async def cancel(
        self,
        request: AnyRequest,
        org: Org,
        order_id: FromPath[uuid.UUID],
        data: JSONBody[s.CancelIn],
    ) -> Response[bytes]:
        ctx = ctx_of(request)
        return await run(request, org, lambda conn: c.cancel_order(conn, ctx, org, order_id, data))

    @post("/{order_id:uuid}/fulfillment/start", summary="Start picking", status_code=200)
    async def start_fulfillment(
        self,
        request: AnyRequest,
        org: Org,
        order_id: FromPath[uuid.UUID],
        data: JSONBody[s.FulfillmentStartIn],
    ) -> Response[bytes]:
        ctx = ctx_of(request)
        work = lambda conn: c.start_fulfillment(conn, ctx, org, order_id, data)  # noqa: E731
        return await run(request, org, work)

    @post("/{order_id:uuid}/fulfillment/picks", summary="Record a pick", status_code=200)
    async def pick(
        self, request: AnyRequest, org: Org, order_id: FromPath[uuid.UUID], data: JSONBody[s.PickIn]
    ) -> Response[bytes]:
        ctx = ctx_of(request)
        return await run(request, org, lambda conn: c.pick(conn, ctx, org, order_id, data))

    @post("/{order_id:uuid}/fulfillment/pack", summary="Pack the order", status_code=200)
    async def pack(
        self, request: AnyRequest, org: Org, order_id: FromPath[uuid.UUID], data: JSONBody[s.PackIn]
    ) -> Response[bytes]:
        ctx = ctx_of(request)
        return await run(request, org, lambda conn: c.pack(conn, ctx, org, order_id, data))

    @post("/{order_id:uuid}/shipments", summary="Create the shipment", status_code=201)
    async def ship(
        self,
        request: AnyRequest,
        org: Org,
        order_id: FromPath[uuid.UUID],
        data: JSONBody[s.ShipmentIn],
    ) -> Response[bytes]:
        ctx = ctx_of(request)
        work = lambda conn: c.create_shipment(conn, ctx, org, order_id, data)  # noqa: E731
        return await run(request, org, work, 201)

    @post("/{order_id:uuid}/returns", summary="Request a return (after delivery)", status_code=201)
    async def request_return(
        self,
        request: AnyRequest,
        org: Org,
        order_id: FromPath[uuid.UUID],
        data: JSONBody[s.ReturnIn],
    ) -> Response[bytes]:
        ctx = ctx_of(request)
        work = lambda conn: c.request_return(conn, ctx, org, order_id, data)  # noqa: E731
        return await run(request, org, work, 201)

    @get("/{order_id:uuid}/invoices", summary="The order's invoices")
    async def invoices(
        self, request: AnyRequest, org: Org, order_id: FromPath[uuid.UUID]
    ) -> Response[bytes]:
        ctx = ctx_of(request)
        return await read(request, lambda conn: c.list_invoices(conn, ctx, org, order_id))


class PaymentsController(Controller):
    path = "/payments"
    tags = ["payments"]
    dependencies = {"org": Provide(organization)}

    @post("/{payment_id:uuid}/succeed", summary="Gateway: payment succeeded", status_code=200)
    async def succeed(
        self,
        request: AnyRequest,
        org: Org,
        payment_id: FromPath[uuid.UUID],
        data: JSONBody[s.PaymentSucceededIn],
    ) -> Response[bytes]:
        ctx = ctx_of(request)
        work = lambda conn: c.succeed_payment(conn, ctx, org, payment_id, data)  # noqa: E731
        return await run(request, org, work)

    @post("/{payment_id:uuid}/fail", summary="Gateway: payment failed", status_code=200)
    async def fail(
        self,
        request: AnyRequest,
        org: Org,
        payment_id: FromPath[uuid.UUID],
        data: JSONBody[s.PaymentFailedIn],
    ) -> Response[bytes]:
        ctx = ctx_of(request)
        work = lambda conn: c.fail_payment(conn, ctx, org, payment_id, data)  # noqa: E731
        return await run(request, org, work)


class ShipmentsController(Controller):
    path = "/shipments"
    tags = ["shipments"]
    dependencies = {"org": Provide(organization)}

    @post("/{shipment_id:uuid}/label", summary="Buy the label", status_code=200)
    async def label(
        self,
        request: AnyRequest,
        org: Org,
        shipment_id: FromPath[uuid.UUID],
        data: JSONBody[s.LabelIn],
    ) -> Response[bytes]:
        ctx = ctx_of(request)
        work = lambda conn: c.create_label(conn, ctx, org, shipment_id, data)  # noqa: E731
        return await run(request, org, work)

    @post("/{shipment_id:uuid}/dispatch", summary="Hand over to the carrier", status_code=200)
    async def dispatch(
        self,
        request: AnyRequest,
        org: Org,
        shipment_id: FromPath[uuid.UUID],
        data: JSONBody[s.DispatchIn],
    ) -> Response[bytes]:
        ctx = ctx_of(request)
        return await run(request, org, lambda conn: c.dispatch(conn, ctx, org, shipment_id, data))

    @post("/{shipment_id:uuid}/tracking", summary="A tracking update", status_code=200)
    async def tracking(
        self,
        request: AnyRequest,
        org: Org,
        shipment_id: FromPath[uuid.UUID],
        data: JSONBody[s.TrackingIn],
    ) -> Response[bytes]:
        ctx = ctx_of(request)
        return await run(request, org, lambda conn: c.track(conn, ctx, org, shipment_id, data))

    @post("/{shipment_id:uuid}/deliver", summary="Delivered", status_code=200)
    async def deliver(
        self,
        request: AnyRequest,
        org: Org,
        shipment_id: FromPath[uuid.UUID],
        data: JSONBody[s.DeliverIn],
    ) -> Response[bytes]:
        ctx = ctx_of(request)
        return await run(request, org, lambda conn: c.deliver(conn, ctx, org, shipment_id, data))


class ReturnsController(Controller):
    path = "/returns"
    tags = ["returns"]
    dependencies = {"org": Provide(organization)}

    @get("/{return_id:uuid}", summary="A return")
    async def get_return(
        self, request: AnyRequest, org: Org, return_id: FromPath[uuid.UUID]
    ) -> Response[bytes]:
        return await read(request, lambda conn: c.get_return(conn, org, return_id))

    @post("/{return_id:uuid}/approve", summary="Approve, with the refund amount", status_code=200)
    async def approve(
        self,
        request: AnyRequest,
        org: Org,
        return_id: FromPath[uuid.UUID],
        data: JSONBody[s.ApproveIn],
    ) -> Response[bytes]:
        ctx = ctx_of(request)
        work = lambda conn: c.approve_return(conn, ctx, org, return_id, data)  # noqa: E731
        return await run(request, org, work)

    @post("/{return_id:uuid}/receive", summary="Goods are back", status_code=200)
    async def receive(
        self,
        request: AnyRequest,
        org: Org,
        return_id: FromPath[uuid.UUID],
        data: JSONBody[s.ReceiveIn],
    ) -> Response[bytes]:
        ctx = ctx_of(request)
        work = lambda conn: c.receive_return(conn, ctx, org, return_id, data)  # noqa: E731
        return await run(request, org, work)

    @post("/{return_id:uuid}/refund", summary="Refund the approved amount", status_code=200)
    async def refund(
        self,
        request: AnyRequest,
        org: Org,
        return_id: FromPath[uuid.UUID],
        data: JSONBody[s.RefundIn],
    ) -> Response[bytes]:
        ctx = ctx_of(request)
        work = lambda conn: c.refund_return(conn, ctx, org, return_id, data)  # noqa: E731
        return await run(request, org, work)


class InvoicesController(Controller):
    path = "/invoices"
    tags = ["invoices"]
    dependencies = {"org": Provide(organization)}

    @get("/{ref:str}", summary="An invoice; `<invoice_id>.pdf` is its PDF")
    async def get_invoice(
        self, request: AnyRequest, org: Org, ref: FromPath[str]
    ) -> Response[bytes]:
        invoice_id, as_pdf = _invoice_ref(ref)
        if not as_pdf:
            ctx = ctx_of(request)
            return await read(request, lambda conn: c.get_invoice(conn, ctx, org, invoice_id))
        async with db.acquire(runtime_of(request).pool) as conn:
            found = await c.invoice_document(conn, org, invoice_id)
        # reportlab is CPU work: off the event loop, so other requests are not held up.
        pdf = await asyncio.to_thread(
            render_invoice, found.invoice, found.order, found.items, seller=org
        )
        disposition = f'inline; filename="{found.invoice["invoice_number"]}.pdf"'
        return Response(
            pdf, media_type="application/pdf", headers={"Content-Disposition": disposition}
        )

    @post("/{invoice_id:uuid}/send", summary="Send to the customer", status_code=200)
    async def send(
        self,
        request: AnyRequest,
        org: Org,
        invoice_id: FromPath[uuid.UUID],
        data: JSONBody[s.SendInvoiceIn],
    ) -> Response[bytes]:
        ctx = ctx_of(request)
        work = lambda conn: c.send_invoice(conn, ctx, org, invoice_id, data)  # noqa: E731
        return await run(request, org, work)


def _invoice_ref(ref: str) -> tuple[uuid.UUID, bool]:
    as_pdf = ref.endswith(".pdf")
    try:
        return uuid.UUID(ref.removesuffix(".pdf")), as_pdf
    except ValueError:
        raise NotFound(f"invoice {ref} not found") from None


ROUTES = [
    CartsController,
    OrdersController,
    PaymentsController,
    ShipmentsController,
    ReturnsController,
    InvoicesController,
]
