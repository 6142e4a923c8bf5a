"""The RabbitMQ topology of SPEC §3 as data: the one description every service declares from.

Nothing here does I/O; `messaging.topology` turns it into declarations.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

ORDER_EVENTS: Final = "order_events"
ECOMM: Final = "ecomm"
BOOKWORM_PREFIX: Final = "BookWorm.Contracts:"

BOOKWORM_INTEGRATION_EVENTS: Final = (
    "UserCheckedOutIntegrationEvent",
    "BasketDeletedCompleteIntegrationEvent",
    "BasketDeletedFailedIntegrationEvent",
    "OrderStatusChangedToCompleteIntegrationEvent",
    "OrderStatusChangedToCancelIntegrationEvent",
)
BOOKWORM_COMMANDS: Final = (
    "PlaceOrderCommand",
    "DeleteBasketCompleteCommand",
    "DeleteBasketFailedCommand",
    "CompleteOrderCommand",
    "CancelOrderCommand",
)

#: Quorum queues count redeliveries; past this many the broker dead-letters the message. The
#: consumer's own retry budget is much smaller, so only a message that keeps killing its consumer
#: (crash, lost connection) ever reaches this limit.
DEFAULT_DELIVERY_LIMIT: Final = 20

#: Messages nobody is bound for are kept this long in `<exchange>.unrouted` (bounded, oldest first).
UNROUTED_MAX_LENGTH: Final = 100_000


class ExchangeType(StrEnum):
    TOPIC = "topic"
    FANOUT = "fanout"
    DIRECT = "direct"


class Service(StrEnum):
    ORDER = "order_service"
    INVENTORY = "inventory_service"
    FINANCE = "finance_service"
    NOTIFICATION = "notification_service"


def bookworm_exchange(message_name: str) -> str:
    """`BookWorm.Contracts:<MessageName>`, the fanout exchange of one saga message."""
    return f"{BOOKWORM_PREFIX}{message_name}"


@dataclass(frozen=True, slots=True)
class Exchange:
    name: str
    type: ExchangeType
    #: Unroutable messages go to this exchange (and its queue) instead of being dropped, so
    #: events that no consumer binds yet (e.g. `cart.created`) are kept and a publish with
    #: `mandatory` only fails for a genuinely broken route.
    alternate: str | None = None

    def arguments(self) -> dict[str, str]:
        return {"alternate-exchange": self.alternate} if self.alternate else {}

    def with_prefix(self, prefix: str) -> Exchange:
        alternate = prefix + self.alternate if self.alternate else None
        return Exchange(prefix + self.name, self.type, alternate)


@dataclass(frozen=True, slots=True)
class Binding:
    exchange: str
    routing_key: str = ""


@dataclass(frozen=True, slots=True)
class Queue:
    """A durable quorum queue. Consumer queues get a delivery limit and a dead-letter route."""

    name: str
    owner: Service | None
    bindings: tuple[Binding, ...] = ()
    delivery_limit: int | None = DEFAULT_DELIVERY_LIMIT
    dead_letter: bool = True
    max_length: int | None = None
    extra_arguments: Mapping[str, int | str] = field(default_factory=dict)

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.name}.dead-letter"

    def arguments(self) -> dict[str, int | str]:
        args: dict[str, int | str] = {"x-queue-type": "quorum"}
        if self.delivery_limit is not None:
            args["x-delivery-limit"] = self.delivery_limit
        if self.dead_letter:
            # Through the default exchange straight to `<name>.dead-letter`; at-least-once so a
            # dead-lettered message cannot vanish between the two queues.
            args["x-dead-letter-exchange"] = ""
            args["x-dead-letter-routing-key"] = self.dead_letter_queue
            args["x-dead-letter-strategy"] = "at-least-once"
            args["x-overflow"] = "reject-publish"
        if self.max_length is not None:
            args["x-max-length"] = self.max_length
            args.setdefault("x-overflow", "drop-head")
        args.update(self.extra_arguments)
        return args

    def with_prefix(self, prefix: str) -> Queue:
        """The same queue in a namespace: its name and its bindings' exchanges prefixed."""
        if not prefix:
            return self
        bindings = tuple(Binding(prefix + b.exchange, b.routing_key) for b in self.bindings)
        return Queue(
            prefix + self.name,
            self.owner,
            bindings,
            self.delivery_limit,
            self.dead_letter,
            self.max_length,
            self.extra_arguments,
        )

    def dead_letter_spec(self) -> Queue:
        """The queue that holds what the broker dead-letters from this one."""
        return Queue(
            name=self.dead_letter_queue, owner=self.owner, delivery_limit=None, dead_letter=False
        )


@dataclass(frozen=True, slots=True)
class Topology:
    exchanges: tuple[Exchange, ...]
    queues: tuple[Queue, ...]

    def exchange(self, name: str) -> Exchange:
        for exchange in self.exchanges:
            if exchange.name == name:
                return exchange
        raise KeyError(f"no exchange {name!r} in the topology")

    def queue(self, name: str) -> Queue:
        for queue in self.queues:
            if queue.name == name:
                return queue
        raise KeyError(f"no queue {name!r} in the topology")

    def queues_of(self, service: Service) -> tuple[Queue, ...]:
        return tuple(q for q in self.queues if q.owner is service)

    def with_prefix(self, prefix: str) -> Topology:
        """The whole topology in a namespace (`COMMERCE_NAMESPACE`): every exchange and queue
        name prefixed, so independent systems or test runs share a broker without meeting."""
        if not prefix:
            return self
        return Topology(
            tuple(e.with_prefix(prefix) for e in self.exchanges),
            tuple(q.with_prefix(prefix) for q in self.queues),
        )

    def all_queues(self) -> Iterator[Queue]:
        """Every queue to declare, dead-letter queues included."""
        for queue in self.queues:
            yield queue
            if queue.dead_letter:
                yield queue.dead_letter_spec()


#: The 29 routing keys of `order_events` (SPEC §4, seed 001).
ORDER_EVENT_NAMES: Final = (
    "order.created", "order.placed", "order.confirmed", "order.cancelled", "order.processing",
    "order.shipped", "order.delivered",
    "payment.pending", "payment.succeeded", "payment.failed", "payment.refunded",
    "shipment.created", "shipment.label_created", "shipment.dispatched", "shipment.in_transit",
    "shipment.delivered",
    "return.requested", "return.approved", "return.received", "return.refunded",
    "cart.created", "cart.item_added", "cart.abandoned", "cart.converted",
    "fulfillment.started", "fulfillment.item_picked", "fulfillment.packed",
    "invoice.created", "invoice.sent",
)  # fmt: skip

#: Routing keys on `ecomm`: seed 002's seven internal events and the seven this spec adds.
ECOMM_EVENT_NAMES: Final = (
    "inventory.bin.created", "inventory.bin.updated", "inventory.bin.deleted",
    "inventory.binitem.created", "inventory.binitem.updated",
    "inventory.transaction.created", "inventory.transaction.updated",
    "inventory.reservation.created", "inventory.reservation.failed",
    "inventory.reservation.committed", "inventory.reservation.released",
    "inventory.stock.deducted", "inventory.stock.restocked", "inventory.stock.low",
)  # fmt: skip

BULK_TRANSACTIONS_QUEUE: Final = "inventory.bulktransactions"


def _unrouted(exchange: str) -> str:
    return f"{exchange}.unrouted"


def _unrouted_keep(exchange: str) -> Queue:
    name = _unrouted(exchange)
    return Queue(
        name,
        None,
        (Binding(name),),
        delivery_limit=None,
        dead_letter=False,
        max_length=UNROUTED_MAX_LENGTH,
    )


def _on(exchange: str, *keys: str) -> tuple[Binding, ...]:
    return tuple(Binding(exchange, key) for key in keys)


def _from_bookworm(*messages: str) -> tuple[Binding, ...]:
    return tuple(Binding(bookworm_exchange(name)) for name in messages)


def _build() -> Topology:
    exchanges = [
        Exchange(ORDER_EVENTS, ExchangeType.TOPIC, alternate=_unrouted(ORDER_EVENTS)),
        Exchange(ECOMM, ExchangeType.TOPIC, alternate=_unrouted(ECOMM)),
        Exchange(_unrouted(ORDER_EVENTS), ExchangeType.FANOUT),
        Exchange(_unrouted(ECOMM), ExchangeType.FANOUT),
    ]
    exchanges += [
        Exchange(bookworm_exchange(name), ExchangeType.FANOUT)
        for name in BOOKWORM_INTEGRATION_EVENTS + BOOKWORM_COMMANDS
    ]
    order, inventory = Service.ORDER, Service.INVENTORY
    finance, notification = Service.FINANCE, Service.NOTIFICATION
    queues = [
        Queue("inventory_order_consumer", inventory, _on(
            ORDER_EVENTS, "order.placed", "order.confirmed", "order.cancelled", "order.shipped",
            "return.received")),
        Queue("notification_order_consumer", notification, _on(
            ORDER_EVENTS, "order.created", "order.confirmed", "order.shipped", "order.delivered",
            "return.approved")),
        Queue("analytics_order_consumer", notification, _on(
            ORDER_EVENTS, "order.created", "order.confirmed", "cart.abandoned", "cart.converted")),
        Queue("order_inventory_consumer", order, _on(ECOMM, "inventory.reservation.*")),
        Queue(BULK_TRANSACTIONS_QUEUE, inventory),
        Queue("finance-order-state-machine", finance,
              _from_bookworm(*BOOKWORM_INTEGRATION_EVENTS)),
        Queue("basket-place-order", order, _from_bookworm("PlaceOrderCommand")),
        Queue("basket-checkout-complete", order, _from_bookworm("DeleteBasketCompleteCommand")),
        Queue("basket-checkout-failed", order, _from_bookworm("DeleteBasketFailedCommand")),
        Queue("notification-place-order", notification, _from_bookworm("PlaceOrderCommand")),
        Queue("notification-complete-order", notification,
              _from_bookworm("CompleteOrderCommand")),
        Queue("notification-cancel-order", notification, _from_bookworm("CancelOrderCommand")),
        # Queues a service keeps of its own beyond the SPEC's table (§3: `<queue>.<purpose>`).
        # `return.approved` names the return, not its order: which order it is comes with
        # `return.requested`.
        Queue("notification_order_consumer.returns", notification,
              _on(ORDER_EVENTS, "return.requested")),
        # The customer's contact from the checkout, so mail for order events need not wait
        # for the saga's first command.
        Queue("notification_order_consumer.contacts", notification,
              _from_bookworm("UserCheckedOutIntegrationEvent")),
        # Not consumer queues: the bounded keep of messages no queue is bound for.
        _unrouted_keep(ORDER_EVENTS),
        _unrouted_keep(ECOMM),
    ]  # fmt: skip
    return Topology(exchanges=tuple(exchanges), queues=tuple(queues))


TOPOLOGY: Final = _build()
