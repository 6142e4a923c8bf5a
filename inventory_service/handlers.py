"""Message handlers: order events → reservations and stock; bulk transactions; the expiry
sweeper. Each loads state, asks the domain what to do, writes effects and outgoing messages on
the consumer's connection (one transaction with the inbox row)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts import cloudevents as ce
from contracts.inventory import BulkTransactionPayload, decode_bulk_transaction
from contracts.order_events import (
    OrderCancelledData,
    OrderConfirmedData,
    OrderEvent,
    OrderPlacedData,
    OrderShippedData,
    ReturnReceivedData,
    decode_order_event,
)
from inventory_service.adapters import catalog, events, stock
from inventory_service.adapters import reservations as store
from inventory_service.domain import reservations as rules
from inventory_service.domain.reservations import Action, Status
from inventory_service.domain.stock import Hold, StockLevel, Wanted, allocate
from inventory_service.domain.transactions import Delta
from inventory_service.operations import low_stock_alerts, run_bulk
from messaging import db
from messaging.errors import PermanentError
from messaging.logs import get_logger
from messaging.message import Delivery, OutgoingMessage
from messaging.outbox import Outbox

log = get_logger(__name__)

INSUFFICIENT_STOCK = "insufficient_stock"
GOOD_CONDITION = "good"
#: AMQP header naming the organization of a bulk-transaction request (the payload has none).
ORGANIZATION_HEADER = "organization_id"


def decode_order(delivery: Delivery) -> OrderEvent[Any]:
    return decode_order_event(delivery.body, delivery.routing_key or None)


def decode_bulk(delivery: Delivery) -> BulkTransactionPayload:
    return decode_bulk_transaction(delivery.body)


# -- reservations ------------------------------------------------------------------------------


async def _reserve(
    conn: db.Connection,
    organization_id: str,
    order_id: str,
    wanted: Sequence[Wanted],
    levels: Sequence[StockLevel],
    *,
    existing: store.Reservation | None,
    commit: bool,
    expires_at: datetime | None,
) -> list[OutgoingMessage]:
    """All or nothing from the locked `levels`; a new hold (`commit` False) or a committed one
    (a confirm that found its hold lapsed)."""
    allocation = allocate(wanted, levels)
    if not allocation.complete:
        if existing is None:
            await store.insert(
                conn, organization_id, order_id, Status.FAILED, reason=INSUFFICIENT_STOCK
            )
        else:
            await store.update(conn, existing.id, Status.FAILED, reason=INSUFFICIENT_STOCK)
        missing = [
            ce.UnavailableItem(
                variant_id=s.variant_id, requested=s.requested, available=s.available
            )
            for s in allocation.shortages
        ]
        return [events.reservation_failed(order_id, INSUFFICIENT_STOCK, missing)]
    status = Status.COMMITTED if commit else Status.HELD
    if existing is None:
        reservation_id, changes = await store.insert_holding(
            conn, organization_id, order_id, status, expires_at, allocation.holds
        )
    else:
        reservation_id = existing.id
        await store.update(conn, reservation_id, status, expires_at=expires_at)
        await store.add_items(conn, reservation_id, allocation.holds)
        changes = await stock.apply(
            conn,
            organization_id,
            [Delta(h.bin_item_id, "reserve", reserved=h.quantity) for h in allocation.holds],
            stock.Refs(order_id=order_id, reservation_id=reservation_id),
        )
    if commit:
        first = events.reservation_committed(str(reservation_id), order_id)
    else:
        assert expires_at is not None
        items = [
            ce.StockItem(variant_id=h.variant_id, warehouse_id=h.bin_name, quantity=h.quantity)
            for h in allocation.holds
        ]
        first = events.reservation_created(str(reservation_id), order_id, items, expires_at)
    return [first, *low_stock_alerts(changes)]


async def release(
    conn: db.Connection, organization_id: str, reservation: store.Reservation, reason: str
) -> list[OutgoingMessage]:
    """Give back what the reservation still holds (`reason` cancelled or expired)."""
    held = await store.held_items(conn, reservation.id)
    expired = reason == ce.ReleaseReason.EXPIRED
    deltas = [
        Delta(item.bin_item_id, "expire" if expired else "release", reserved=-item.remaining)
        for item in held
        if item.remaining > 0
    ]
    await stock.apply(
        conn,
        organization_id,
        deltas,
        stock.Refs(order_id=reservation.order_id, reservation_id=reservation.id),
    )
    await store.deactivate_items(conn, reservation.id)
    await store.update(
        conn, reservation.id, Status.EXPIRED if expired else Status.RELEASED, reason=reason
    )
    return [events.reservation_released(str(reservation.id), reservation.order_id, reason)]


def _status(reservation: store.Reservation | None) -> Status | None:
    return None if reservation is None else reservation.status


def place(
    batch: Batch, organization_id: str, event: OrderEvent[OrderPlacedData]
) -> list[OutgoingMessage]:
    """`order.placed` against the batch's locked stock: decide, record the writes in the batch
    (`Batch.write` sends them) and keep its view of stock and statuses current."""
    data = event.data
    key = (organization_id, data.order_id)
    status = batch.statuses.get(key)
    if rules.on_placed(status) is not Action.RESERVE:
        log.info("order.placed ignored", order_id=data.order_id, status=status)
        return []
    wanted = [Wanted(i.variant_id, i.quantity, i.preferred_warehouse_id) for i in data.items]
    allocation = allocate(wanted, batch.levels_for(organization_id, wanted))
    reservation_id = uuid.uuid4()
    if not allocation.complete:
        batch.new.add(
            reservation_id, organization_id, data.order_id, Status.FAILED, reason=INSUFFICIENT_STOCK
        )
        batch.statuses[key] = Status.FAILED
        missing = [
            ce.UnavailableItem(
                variant_id=s.variant_id, requested=s.requested, available=s.available
            )
            for s in allocation.shortages
        ]
        return [events.reservation_failed(data.order_id, INSUFFICIENT_STOCK, missing)]
    placed_at = event.timestamp or datetime.now(UTC)
    expires_at = placed_at + timedelta(minutes=data.reservation_ttl_minutes)
    batch.new.add(
        reservation_id,
        organization_id,
        data.order_id,
        Status.HELD,
        expires_at=expires_at,
        holds=allocation.holds,
    )
    batch.statuses[key] = Status.HELD
    changes = batch.reserve(allocation.holds)
    items = [
        ce.StockItem(variant_id=h.variant_id, warehouse_id=h.bin_name, quantity=h.quantity)
        for h in allocation.holds
    ]
    created = events.reservation_created(str(reservation_id), data.order_id, items, expires_at)
    return [created, *low_stock_alerts(changes)]


async def on_confirmed(
    conn: db.Connection, organization_id: str, event: OrderEvent[OrderConfirmedData]
) -> list[OutgoingMessage]:
    data = event.data
    existing = await store.for_order(conn, organization_id, data.order_id)
    action = rules.on_confirmed(_status(existing))
    if action is Action.COMMIT:
        assert existing is not None
        await store.update(conn, existing.id, Status.COMMITTED)
        return [events.reservation_committed(str(existing.id), data.order_id)]
    if action is Action.RESERVE_AND_COMMIT:
        wanted = [Wanted(i.variant_id, i.quantity, i.warehouse_id) for i in data.items]
        skus = sorted({w.variant_id for w in wanted})
        levels = await stock.levels_for_skus(conn, organization_id, skus)
        return await _reserve(
            conn,
            organization_id,
            data.order_id,
            wanted,
            levels,
            existing=existing,
            commit=True,
            expires_at=None,
        )
    log.info("order.confirmed ignored", order_id=data.order_id, status=_status(existing))
    return []


async def on_cancelled(
    conn: db.Connection, organization_id: str, event: OrderEvent[OrderCancelledData]
) -> list[OutgoingMessage]:
    data = event.data
    existing = await store.for_order(conn, organization_id, data.order_id)
    action = rules.on_cancelled(_status(existing))
    cancelled = ce.ReleaseReason.CANCELLED.value
    if action is Action.RELEASE:
        assert existing is not None
        return await release(conn, organization_id, existing, cancelled)
    if action is Action.TOMBSTONE:
        # The cancel overtook the placement: remember it, so the late order.placed is ignored.
        await store.insert(conn, organization_id, data.order_id, Status.RELEASED, reason=cancelled)
    elif action is Action.CLOSE:
        assert existing is not None
        await store.update(conn, existing.id, Status.RELEASED, reason=cancelled)
    else:
        log.info("order.cancelled ignored", order_id=data.order_id, status=_status(existing))
    return []


async def on_shipped(
    conn: db.Connection, organization_id: str, event: OrderEvent[OrderShippedData]
) -> list[OutgoingMessage]:
    data = event.data
    if not await store.record_shipment(conn, organization_id, data.shipment_id, data.order_id):
        log.info("shipment deducted already", order_id=data.order_id, shipment=data.shipment_id)
        return []
    existing = await store.for_order(conn, organization_id, data.order_id)
    if existing is None or not rules.can_deduct(existing.status):
        log.warning("order.shipped without a held reservation", order_id=data.order_id)
        return []
    held = await store.held_items(conn, existing.id)
    shipped = [rules.Shipped(i.variant_id, i.warehouse_id, i.quantity) for i in data.shipped_items]
    deductions = rules.plan_deduction(held, shipped)
    if not deductions:
        return []
    await store.add_deducted(conn, [(d.item.item_id, d.quantity) for d in deductions])
    await stock.apply(
        conn,
        organization_id,
        [
            Delta(d.item.bin_item_id, "deduct", on_hand=-d.quantity, reserved=-d.quantity)
            for d in deductions
        ],
        stock.Refs(order_id=data.order_id, reservation_id=existing.id),
    )
    if rules.fully_deducted(held, deductions):
        await store.update(conn, existing.id, Status.DEDUCTED)
    items = [
        ce.StockItem(
            variant_id=d.item.variant_id, warehouse_id=d.item.warehouse_id, quantity=d.quantity
        )
        for d in deductions
    ]
    return [events.stock_deducted(data.order_id, items)]


async def _restock_target(
    conn: db.Connection, organization_id: str, warehouse_id: str, variant_id: str
) -> int | None:
    """The bin item that takes the returned SKU (created in the bin if missing)."""
    level = await stock.level_in_bin(conn, organization_id, warehouse_id, variant_id, lock=True)
    if level is not None:
        return level.bin_item_id
    bin_row = await catalog.get_bin(conn, organization_id, warehouse_id)
    if bin_row is None:
        return None
    return await catalog.create_item(conn, organization_id, bin_row["id"], variant_id)


async def on_return_received(
    conn: db.Connection, organization_id: str, event: OrderEvent[ReturnReceivedData]
) -> list[OutgoingMessage]:
    data = event.data
    fresh = await store.record_return(
        conn, organization_id, data.return_id, data.order_id, data.warehouse_id, data.received_at
    )
    if not fresh:
        log.info("return received already", order_id=data.order_id, return_id=data.return_id)
        return []
    restocked: list[ce.RestockedItem] = []
    deltas: list[Delta] = []
    for item in data.returned_items:
        target = None
        if item.condition == GOOD_CONDITION:
            target = await _restock_target(
                conn, organization_id, data.warehouse_id, item.variant_id
            )
        if target is not None:
            deltas.append(Delta(target, "restock", on_hand=item.quantity))
            restocked.append(
                ce.RestockedItem(
                    variant_id=item.variant_id, quantity=item.quantity, condition=item.condition
                )
            )
        await store.add_return_item(
            conn,
            organization_id,
            data.return_id,
            variant_id=item.variant_id,
            quantity=item.quantity,
            condition=item.condition,
            return_reason=item.return_reason,
            bin_item_id=target,
        )
    await stock.apply(
        conn,
        organization_id,
        deltas,
        stock.Refs(order_id=data.order_id, return_id=data.return_id),
    )
    return [events.stock_restocked(data.return_id, data.order_id, data.warehouse_id, restocked)]


#: Order events other than `order.placed`: they read and write the database directly.
_ON_EVENT: dict[type[Any], Any] = {
    OrderConfirmedData: on_confirmed,
    OrderCancelledData: on_cancelled,
    OrderShippedData: on_shipped,
    ReturnReceivedData: on_return_received,
}


class Batch:
    """The order events of one consumer transaction and what they have decided so far.

    `lock` takes the stock lock of the batch's organizations: shared when every event is an
    `order.placed` (such batches run side by side), exclusively as soon as one is not (then the
    batch runs alone in those organizations; see the lock order in adapters/stock.py). `load`
    locks, in one statement and in id order, every bin item any event of the batch can touch,
    then the reservations of its orders. `order.placed` — the hot path — is decided against
    that locked state kept here; its writes (reservations, items, ledger rows, reserved
    quantities) go out in one statement for the whole batch. Every other event first has them
    written, then works on the database itself, after which the state is loaded again before
    the next placement.
    Outgoing messages of the batch are added to the outbox in one call, in event order."""

    def __init__(self, conn: db.Connection, batch_events: Sequence[OrderEvent[Any]]) -> None:
        self.conn = conn
        self.events = list(batch_events)
        self._members = {id(e) for e in self.events}
        skus: set[tuple[str, str]] = set()
        holders: set[tuple[str, str]] = set()
        orders: set[tuple[str, str]] = set()
        self._organizations: set[str] = set()
        self._only_placements = True
        for event in self.events:
            organization = event.organization_id
            data = event.data
            if not organization or type(data) not in _ALL_EVENTS:
                continue
            self._organizations.add(organization)
            self._only_placements &= isinstance(data, OrderPlacedData)
            if isinstance(data, OrderPlacedData | OrderConfirmedData):
                skus.update((organization, i.variant_id) for i in data.items)
            elif isinstance(data, ReturnReceivedData):
                skus.update((organization, i.variant_id) for i in data.returned_items)
            if not isinstance(data, ReturnReceivedData):  # returns touch no reservation
                orders.add((organization, data.order_id))
                if not isinstance(data, OrderPlacedData):
                    holders.add((organization, data.order_id))
        self._skus = sorted(skus)
        self._holders = sorted(holders)
        self._orders = sorted(orders)
        self.levels: dict[int, StockLevel] = {}
        self._usable: dict[tuple[str, str], list[int]] = {}
        self.statuses: dict[tuple[str, str], Status] = {}
        self.current = False
        self.new = store.NewReservations()
        self.messages: list[OutgoingMessage] = []

    def owns(self, conn: db.Connection, event: OrderEvent[Any]) -> bool:
        return conn is self.conn and id(event) in self._members

    def is_last(self, event: OrderEvent[Any]) -> bool:
        return event is self.events[-1]

    async def lock(self) -> None:
        """The organizations' stock locks, once per transaction, before any row lock."""
        await stock.lock_organizations(self.conn, self._organizations, shared=self._only_placements)

    async def load(self) -> None:
        """Lock (bin items in id order, then reservations) and read the batch's state."""
        assert not self.new, "write the pending reservations first"
        locked = await stock.lock_for_orders(self.conn, self._skus, self._holders)
        statuses = await store.lock_for_orders(self.conn, self._orders) if self._orders else {}
        self.levels = {item.level.bin_item_id: item.level for item in locked}
        self._usable = defaultdict(list)
        for item in locked:
            if item.usable:
                self._usable[(item.organization_id, item.level.sku_id)].append(
                    item.level.bin_item_id
                )
        self.statuses = statuses
        self.current = True

    def levels_for(self, organization_id: str, wanted: Sequence[Wanted]) -> list[StockLevel]:
        skus = dict.fromkeys(w.variant_id for w in wanted)
        return [
            self.levels[i] for sku in skus for i in self._usable.get((organization_id, sku), ())
        ]

    def reserve(self, holds: Sequence[Hold]) -> list[stock.Change]:
        changes = []
        for hold in holds:
            before = self.levels[hold.bin_item_id]
            after = before.with_reserved(before.reserved + hold.quantity)
            self.levels[hold.bin_item_id] = after
            changes.append(stock.Change(after, before.atp))
        return changes

    async def write(self) -> None:
        """Send the pending reservations; the database must agree with what was decided."""
        if not self.new:
            return
        expected = {h.bin_item_id for _, _, _, h in self.new.holds}
        reserved = await store.insert_many(self.conn, self.new)
        if set(reserved) != expected or any(
            self.levels[i].reserved != value for i, value in reserved.items()
        ):
            raise stock.LedgerError(f"bin items {sorted(expected)} changed under their lock")
        self.new = store.NewReservations()


_ALL_EVENTS = frozenset({OrderPlacedData, *_ON_EVENT})
_BATCH: ContextVar[Batch | None] = ContextVar("inventory_order_batch", default=None)


class OrderEventHandler:
    """`inventory_order_consumer`: the order events of one consumer transaction.

    `prepare` (the consumer's hook, once per transaction) locks what the batch touches; the
    handler is then called per event, in order, and the last one writes what is still pending
    and adds the batch's outgoing messages to the outbox — all before the commit and acks."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    async def prepare(self, conn: db.Connection, batch_events: list[OrderEvent[Any]]) -> None:
        batch = Batch(conn, batch_events)
        await batch.lock()
        await batch.load()
        _BATCH.set(batch)

    async def __call__(
        self, conn: db.Connection, delivery: Delivery, event: OrderEvent[Any]
    ) -> None:
        batch = _BATCH.get()
        if batch is None or not batch.owns(conn, event):  # not prepared: a batch of one
            await self.prepare(conn, [event])
            batch = _BATCH.get()
            assert batch is not None
        await self._handle(batch, delivery, event)
        if batch.is_last(event):
            _BATCH.set(None)
            await batch.write()
            await self._outbox.add(conn, *batch.messages)

    async def _handle(self, batch: Batch, delivery: Delivery, event: OrderEvent[Any]) -> None:
        data = event.data
        if type(data) not in _ALL_EVENTS:
            log.info("order event not for inventory", event_name=event.event)
            return
        if not event.organization_id:
            raise PermanentError(f"{event.event} {delivery.message_id} has no organization_id")
        if isinstance(data, OrderPlacedData):
            if not batch.current:
                await batch.load()
            batch.messages += place(batch, event.organization_id, event)
            return
        await batch.write()
        batch.current = False
        batch.messages += await _ON_EVENT[type(data)](batch.conn, event.organization_id, event)


class BulkTransactionHandler:
    """`inventory.bulktransactions`: run the request, answer its `reply_to` (via the outbox)."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    async def __call__(
        self, conn: db.Connection, delivery: Delivery, payload: BulkTransactionPayload
    ) -> None:
        organization = delivery.headers.get(ORGANIZATION_HEADER)
        if isinstance(organization, bytes):
            organization = organization.decode()
        if not isinstance(organization, str) or not organization:
            raise PermanentError(f"bulk request needs the {ORGANIZATION_HEADER!r} header")
        answer = await run_bulk(conn, organization, self._outbox, payload)
        if delivery.reply_to:
            reply = events.bulk_reply(
                answer, reply_to=delivery.reply_to, correlation_id=delivery.correlation_id
            )
            await self._outbox.add(conn, reply)
        else:
            log.info("bulk request without reply_to: answer not sent")


class ExpirySweeper:
    """Releases holds past their expiry (reason `expired`). Safe with several replicas and with
    the consumer: it takes each organization's stock lock exclusively, then re-checks and locks
    the due rows with SKIP LOCKED, so a hold is released once."""

    def __init__(self, pool: db.Pool, outbox: Outbox, *, batch: int = 200) -> None:
        self._pool = pool
        self._outbox = outbox
        self._batch = batch

    async def __call__(self) -> int:
        async with db.acquire(self._pool) as conn:
            due = await store.due(conn, self._batch)
        by_organization: dict[str, list[uuid.UUID]] = defaultdict(list)
        for reservation_id, organization_id in due:
            by_organization[organization_id].append(reservation_id)
        released = 0
        for organization_id, ids in by_organization.items():
            async with db.acquire(self._pool) as conn, conn.transaction():
                await stock.lock_organization(conn, organization_id)
                messages: list[OutgoingMessage] = []
                for reservation in await store.lock_due(conn, ids):
                    messages += await release(
                        conn, organization_id, reservation, ce.ReleaseReason.EXPIRED.value
                    )
                    released += 1
                await self._outbox.add(conn, *messages)
        if released:
            log.info("expired holds released", count=released)
        return released
