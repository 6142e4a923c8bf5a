"""The AsyncAPI 3.0 document of the whole message contract, generated from `contracts/`.

`build()` turns the topology (`contracts.topology`) and the msgspec message types into the
document as data, `render()` into the committed JSON text; both are pure and deterministic.
Regenerate the committed file with::

    python -m contracts.asyncapi            # writes docs/asyncapi.json
    python -m contracts.asyncapi --check    # exits 1 when docs/asyncapi.json is out of date

Channels: one per exchange (address = exchange name), one per routing key of the topic
exchanges (address = routing key) and one per declared queue (address = queue name, dead-letter
and unrouted queues included). Operations: a `send` for every message a service publishes and a
`receive` for every consumer queue. Payload schemas come from `msgspec.json.schema_components`.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec

from contracts.bookworm import BOOKWORM_MESSAGES
from contracts.cloudevents import INVENTORY_EVENT_TYPES, CloudEvent
from contracts.inventory import INVENTORY_PAYLOAD_EVENTS, BulkTransactionPayload
from contracts.order_events import ENVELOPE_VERSION, ORDER_EVENT_TYPES, OrderEvent
from contracts.topology import (
    BOOKWORM_COMMANDS,
    BOOKWORM_INTEGRATION_EVENTS,
    BULK_TRANSACTIONS_QUEUE,
    ECOMM,
    ECOMM_EVENT_NAMES,
    ORDER_EVENT_NAMES,
    ORDER_EVENTS,
    TOPOLOGY,
    Exchange,
    ExchangeType,
    Queue,
    Service,
    Topology,
    bookworm_exchange,
)

JSON = dict[str, Any]

ASYNCAPI_VERSION: Final = "3.0.0"
#: Version of the message contract this document describes; bump it with the contracts.
API_VERSION: Final = "1.0.0"
AMQP_BINDING_VERSION: Final = "0.3.0"
CONTENT_TYPE: Final = "application/json"
#: Where `main()` writes, relative to the repository root.
DEFAULT_OUTPUT: Final = Path("docs") / "asyncapi.json"

SERVER: Final = "rabbitmq"
METADATA_SCHEMA: Final = "AmqpMessageMetadata"
REQUEST_METADATA_SCHEMA: Final = "AmqpRequestMetadata"
ORDER_CORRELATION: Final = "orderId"
REQUEST_CORRELATION: Final = "requestId"
SECURITY_SCHEME: Final = "amqpCredentials"
BULK_REQUEST: Final = "BulkTransactionRequest"
BULK_REPLY: Final = "BulkTransactionReply"
BULK_REPLY_CHANNEL: Final = "reply_inventory_bulktransactions"

_REF_TEMPLATE: Final = "#/components/schemas/{name}"
# Subscripting the generics with a type held in a variable is not a static type.
_ORDER_EVENT: Any = OrderEvent
_CLOUD_EVENT: Any = CloudEvent


@dataclass(frozen=True, slots=True)
class _Message:
    """One kind of message on the wire, with where it goes and who sends it."""

    key: str  # key under components.messages and in every channel's `messages`
    name: str  # the AMQP `type` property
    exchange: str  # "" = the default exchange
    routing_key: str  # "" for fanout exchanges
    payload: Any  # the msgspec type of the body
    publisher: Service | None  # None: published by clients outside this system
    summary: str
    description: str
    correlation: str | None  # key under components.correlationIds
    #: The envelope field that always equals `name` (made a `const` in the payload schema).
    discriminator: str | None = None


# --- the message catalogue ------------------------------------------------------------------


def _fields(struct_type: Any) -> set[str]:
    return {f.name for f in msgspec.structs.fields(struct_type)}


def _same_names(what: str, declared: Iterable[str], typed: Iterable[str]) -> None:
    declared, typed = set(declared), set(typed)
    if declared != typed:
        raise ValueError(f"{what}: topology and types disagree on {sorted(declared ^ typed)}")


def _order_events() -> list[_Message]:
    _same_names(ORDER_EVENTS, ORDER_EVENT_NAMES, ORDER_EVENT_TYPES)
    messages = []
    for name in ORDER_EVENT_NAMES:
        data = ORDER_EVENT_TYPES[name]
        messages.append(
            _Message(
                key=name,
                name=name,
                exchange=ORDER_EVENTS,
                routing_key=name,
                payload=_ORDER_EVENT[data],
                publisher=Service.ORDER,
                summary=f"`{name}`: order event (seed 001 envelope, data `{data.__name__}`).",
                description=(
                    f"Published on `{ORDER_EVENTS}` with routing key `{name}`. Body: the "
                    f"envelope `id, event, version, timestamp, organization_id, data` with "
                    f'`event` = "{name}" and `version` = "{ENVELOPE_VERSION}".'
                ),
                correlation=ORDER_CORRELATION if "order_id" in _fields(data) else None,
                discriminator="event",
            )
        )
    return messages


def _ecomm_events() -> list[_Message]:
    _same_names(ECOMM, ECOMM_EVENT_NAMES, [*INVENTORY_PAYLOAD_EVENTS, *INVENTORY_EVENT_TYPES])
    messages = []
    for name in ECOMM_EVENT_NAMES:
        if name in INVENTORY_PAYLOAD_EVENTS:
            payload_type, event_name = INVENTORY_PAYLOAD_EVENTS[name]
            messages.append(
                _Message(
                    key=name,
                    name=name,
                    exchange=ECOMM,
                    routing_key=name,
                    payload=payload_type,
                    publisher=Service.INVENTORY,
                    summary=f"`{name}`: inventory payload (seed 002, `{payload_type.__name__}`).",
                    description=(
                        f"Published on `{ECOMM}` with routing key `{name}`; the body's "
                        f'`eventName` is "{event_name}".'
                    ),
                    correlation=None,
                )
            )
            continue
        data = INVENTORY_EVENT_TYPES[name]
        has_order = "order_id" in _fields(data)
        subject = "the order id" if has_order else "the SKU"
        messages.append(
            _Message(
                key=name,
                name=name,
                exchange=ECOMM,
                routing_key=name,
                payload=_CLOUD_EVENT[data],
                publisher=Service.INVENTORY,
                summary=f"`{name}`: CloudEvents 1.0 structured JSON, data `{data.__name__}`.",
                description=(
                    f"Published on `{ECOMM}` with routing key `{name}`. Body: a CloudEvent "
                    f'with `type` = "{name}" and `subject` = {subject}.'
                ),
                correlation=ORDER_CORRELATION if has_order else None,
                discriminator="type",
            )
        )
    return messages


def _bookworm_messages() -> list[_Message]:
    declared = (*BOOKWORM_INTEGRATION_EVENTS, *BOOKWORM_COMMANDS)
    _same_names("BookWorm", declared, BOOKWORM_MESSAGES)
    messages = []
    for name in declared:
        message_type = BOOKWORM_MESSAGES[name]
        command = name in BOOKWORM_COMMANDS
        publisher = Service.FINANCE if command else Service.ORDER
        kind = "saga command" if command else "integration event"
        messages.append(
            _Message(
                key=name,
                name=name,
                exchange=bookworm_exchange(name),
                routing_key="",
                payload=message_type,
                publisher=publisher,
                summary=f"`{name}`: BookWorm checkout-saga {kind} (seed 003).",
                description=(
                    f"Published by `{publisher}` on its own fanout exchange "
                    f"`{bookworm_exchange(name)}`. Body: camelCase JSON with `id`, "
                    "`creationDate` and every field of the message (`fullName`/`email` may be "
                    "null)."
                ),
                correlation=ORDER_CORRELATION if "order_id" in _fields(message_type) else None,
            )
        )
    return messages


def _bulk_messages() -> tuple[_Message, _Message]:
    request = _Message(
        key=BULK_REQUEST,
        name=BULK_REQUEST,
        exchange="",
        routing_key=BULK_TRANSACTIONS_QUEUE,
        payload=BulkTransactionPayload,
        publisher=None,
        summary="Bulk stock transactions, sent to the inventory service (request).",
        description=(
            f"Sent by a client through the default exchange straight to "
            f"`{BULK_TRANSACTIONS_QUEUE}`, with the AMQP `reply_to` and `correlation_id` "
            "properties set when an answer is wanted. `allOrNone` applies the items together "
            "or not at all."
        ),
        correlation=REQUEST_CORRELATION,
    )
    reply = _Message(
        key=BULK_REPLY,
        name="BulkTransactionPayload",
        exchange="",
        routing_key="",
        payload=BulkTransactionPayload,
        publisher=Service.INVENTORY,
        summary="The outcome of a bulk request, one `response` per item (reply).",
        description=(
            "Published by `inventory_service` through the default exchange to the request's "
            "`reply_to` queue, with the request's `correlation_id`. Each item carries "
            "`response: {responseCode, responseMessage}` (`INV_BTM_nnn`)."
        ),
        correlation=REQUEST_CORRELATION,
    )
    return request, reply


def _catalogue() -> list[_Message]:
    return [*_order_events(), *_ecomm_events(), *_bookworm_messages(), *_bulk_messages()]


# --- schemas ------------------------------------------------------------------------------


def _number_for_decimal(node: Any) -> Any:
    """msgspec describes Decimal as a string; the project's encoder writes it as a JSON number
    (`decimal_format="number"`), so the document says number. Docstrings are dedented."""
    if isinstance(node, list):
        return [_number_for_decimal(item) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("type") == "string" and node.get("format") == "decimal":
        rest = {k: v for k, v in node.items() if k not in ("type", "format")}
        return {**rest, "type": "number"}
    fixed = {key: _number_for_decimal(value) for key, value in node.items()}
    if isinstance(fixed.get("description"), str):
        fixed["description"] = inspect.cleandoc(fixed["description"])
    return fixed


def _schema_name(ref: JSON) -> str:
    return str(ref["$ref"]).removeprefix("#/components/schemas/")


def _metadata_schema() -> JSON:
    string: JSON = {"type": "string"}
    return {
        "title": METADATA_SCHEMA,
        "description": (
            "The metadata of every message a service publishes (SPEC §2.4). AsyncAPI has no "
            "separate place for AMQP basic properties, so they are listed here beside the "
            "application headers: the `cloudEvents:*` keys are AMQP application headers (the "
            "CloudEvents AMQP binding), every other key is the AMQP basic property of that name."
        ),
        "type": "object",
        "properties": {
            "message_id": {
                **string,
                "description": "The event id (a uuid): the idempotency key consumers "
                "deduplicate on.",
            },
            "type": {**string, "description": "The event or message name."},
            "content_type": {"type": "string", "const": CONTENT_TYPE},
            "delivery_mode": {
                "type": "integer",
                "const": 2,
                "description": "Persistent.",
            },
            "timestamp": {
                "type": "integer",
                "description": "When the message was created (AMQP timestamp, POSIX seconds).",
            },
            "app_id": {**string, "description": "The producing service."},
            "correlation_id": {
                **string,
                "description": "The order id, where the message is about an order; for a bulk "
                "reply, the request's correlation id.",
            },
            "reply_to": {**string, "description": "Set on requests that expect an answer."},
            "cloudEvents:specversion": {"type": "string", "const": "1.0"},
            "cloudEvents:id": {**string, "description": "= `message_id`."},
            "cloudEvents:type": {**string, "description": "= `type`."},
            "cloudEvents:source": {**string, "description": "`/<app_id>`."},
            "cloudEvents:time": {
                "type": "string",
                "format": "date-time",
                "description": "= `timestamp`, ISO-8601 UTC with `Z`.",
            },
            "cloudEvents:subject": {
                **string,
                "description": "The order id where there is one (the SKU for "
                "`inventory.stock.low`).",
            },
        },
        "required": [
            "message_id",
            "type",
            "content_type",
            "delivery_mode",
            "timestamp",
            "app_id",
            "cloudEvents:specversion",
            "cloudEvents:id",
            "cloudEvents:type",
            "cloudEvents:source",
            "cloudEvents:time",
        ],
    }


def _request_metadata_schema() -> JSON:
    return {
        "title": REQUEST_METADATA_SCHEMA,
        "description": "AMQP basic properties a client sets on a bulk-transaction request.",
        "type": "object",
        "properties": {
            "content_type": {"type": "string", "const": CONTENT_TYPE},
            "reply_to": {
                "type": "string",
                "description": "The queue the answer is published to (default exchange); "
                "without it the request is applied and no answer is sent.",
            },
            "correlation_id": {
                "type": "string",
                "description": "Copied onto the answer.",
            },
        },
    }


def _schemas(messages: Sequence[_Message]) -> tuple[JSON, dict[str, str]]:
    """components.schemas, and the schema name of each message's payload."""
    refs, components = msgspec.json.schema_components(
        [m.payload for m in messages], ref_template=_REF_TEMPLATE
    )
    schemas: JSON = _number_for_decimal(components)
    names = {m.key: _schema_name(ref) for m, ref in zip(messages, refs, strict=True)}
    pinned: dict[tuple[str, str], str] = {}
    for message in messages:
        if message.discriminator is None:
            continue
        schema = names[message.key]
        previous = pinned.setdefault((schema, message.discriminator), message.name)
        if previous != message.name:
            raise ValueError(f"{schema} is the payload of both {previous!r} and {message.name!r}")
        prop = schemas[schema]["properties"][message.discriminator]
        schemas[schema]["properties"][message.discriminator] = {**prop, "const": message.name}
    for name, extra in (
        (METADATA_SCHEMA, _metadata_schema()),
        (REQUEST_METADATA_SCHEMA, _request_metadata_schema()),
    ):
        if name in schemas:
            raise ValueError(f"schema name {name!r} is already taken by a contract type")
        schemas[name] = extra
    return schemas, names


def _schema_ref(name: str) -> JSON:
    return {"$ref": _REF_TEMPLATE.format(name=name)}


# --- messages -----------------------------------------------------------------------------


def _headers(message: _Message) -> JSON:
    if message.publisher is None:
        return _schema_ref(REQUEST_METADATA_SCHEMA)
    pinned: JSON = {
        "type": "object",
        "properties": {
            "type": {"type": "string", "const": message.name},
            "app_id": {"type": "string", "const": str(message.publisher)},
        },
    }
    if message.correlation == ORDER_CORRELATION:
        pinned["required"] = ["correlation_id"]
    return {"type": "object", "allOf": [_schema_ref(METADATA_SCHEMA), pinned]}


def _message_object(message: _Message, payload_schema: str) -> JSON:
    obj: JSON = {
        "name": message.name,
        "title": message.key,
        "summary": message.summary,
        "description": message.description,
        "contentType": CONTENT_TYPE,
        "headers": _headers(message),
        "payload": _schema_ref(payload_schema),
        "bindings": {"amqp": {"messageType": message.name, "bindingVersion": AMQP_BINDING_VERSION}},
    }
    if message.correlation is not None:
        obj["correlationId"] = {"$ref": f"#/components/correlationIds/{message.correlation}"}
    return obj


def _correlation_ids() -> JSON:
    return {
        ORDER_CORRELATION: {
            "description": "The order id, in the AMQP `correlation_id` property (also in the "
            "body: `data.order_id`, `orderId`, or the CloudEvent `subject`).",
            "location": "$message.header#/correlation_id",
        },
        REQUEST_CORRELATION: {
            "description": "The AMQP `correlation_id` of a bulk request, copied onto its reply.",
            "location": "$message.header#/correlation_id",
        },
    }


# --- channels -----------------------------------------------------------------------------


def _id(text: str) -> str:
    """A component key from a broker name (AsyncAPI keys allow `[A-Za-z0-9_-]`)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def exchange_channel_id(exchange: str) -> str:
    return f"exchange_{_id(exchange)}"


def route_channel_id(exchange: str, routing_key: str) -> str:
    return f"route_{_id(exchange)}_{_id(routing_key)}"


def queue_channel_id(queue: str) -> str:
    return f"queue_{_id(queue)}"


def _put(mapping: JSON, key: str, value: Any) -> None:
    if key in mapping:
        raise ValueError(f"duplicate key {key!r} in the AsyncAPI document")
    mapping[key] = value


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: `*` is exactly one word, `#` zero or more."""

    def match(p: list[str], k: list[str]) -> bool:
        if not p:
            return not k
        if p[0] == "#":
            return any(match(p[1:], k[i:]) for i in range(len(k) + 1))
        return bool(k) and p[0] in ("*", k[0]) and match(p[1:], k[1:])

    return match(pattern.split("."), routing_key.split("."))


def _message_refs(messages: Iterable[_Message]) -> JSON:
    return {m.key: {"$ref": f"#/components/messages/{m.key}"} for m in messages}


def _exchange_binding(exchange: Exchange) -> JSON:
    binding: JSON = {
        "is": "routingKey",
        "exchange": {
            "name": exchange.name,
            "type": str(exchange.type),
            "durable": True,
            "autoDelete": False,
            "vhost": "/",
        },
        "bindingVersion": AMQP_BINDING_VERSION,
    }
    if exchange.arguments():
        binding["x-arguments"] = exchange.arguments()
    return {"amqp": binding}


def _queue_binding(queue: Queue) -> JSON:
    binding: JSON = {
        "is": "queue",
        "queue": {
            "name": queue.name,
            "durable": True,
            "exclusive": False,
            "autoDelete": False,
            "vhost": "/",
        },
        "x-arguments": queue.arguments(),
        "bindingVersion": AMQP_BINDING_VERSION,
    }
    if queue.bindings:
        binding["x-bindings"] = [
            {"exchange": b.exchange, "routingKey": b.routing_key} for b in queue.bindings
        ]
    return {"amqp": binding}


def _exchange_messages(
    topology: Topology, exchange: Exchange, messages: Sequence[_Message]
) -> list[_Message]:
    """What flows through an exchange; an alternate exchange gets whatever its owner could not
    route, so potentially any of the owner's messages."""
    sources = {exchange.name} | {e.name for e in topology.exchanges if e.alternate == exchange.name}
    return [m for m in messages if m.exchange in sources]


def _queue_messages(
    topology: Topology, queue: Queue, messages: Sequence[_Message]
) -> list[_Message]:
    if queue.name == BULK_TRANSACTIONS_QUEUE:
        return [m for m in messages if m.key == BULK_REQUEST]
    found: list[_Message] = []
    for binding in queue.bindings:
        exchange = topology.exchange(binding.exchange)
        for message in _exchange_messages(topology, exchange, messages):
            routed = exchange.type is not ExchangeType.TOPIC or topic_matches(
                binding.routing_key, message.routing_key
            )
            if routed and message not in found:
                found.append(message)
    return found


def _consumer_note(queue: Queue) -> str:
    if queue.owner is None:
        return "Not consumed by a service."
    return f"Consumed by `{queue.owner}` (competing consumers)."


def _channels(topology: Topology, messages: Sequence[_Message]) -> tuple[JSON, dict[str, str]]:
    """The channels, and the channel each message is published to (by message key)."""
    channels: JSON = {}
    published_on: dict[str, str] = {}
    for exchange in topology.exchanges:
        on_exchange = _exchange_messages(topology, exchange, messages)
        channel_id = exchange_channel_id(exchange.name)
        alternate = (
            f" Unroutable messages go to `{exchange.alternate}`." if exchange.alternate else ""
        )
        _put(
            channels,
            channel_id,
            {
                "address": exchange.name,
                "title": exchange.name,
                "description": f"The durable {exchange.type} exchange `{exchange.name}`."
                + alternate,
                "messages": _message_refs(on_exchange),
                "bindings": _exchange_binding(exchange),
            },
        )
        for message in on_exchange:
            if message.exchange != exchange.name:
                continue
            if exchange.type is not ExchangeType.TOPIC:
                published_on[message.key] = channel_id
                continue
            route_id = route_channel_id(exchange.name, message.routing_key)
            _put(
                channels,
                route_id,
                {
                    "address": message.routing_key,
                    "title": f"{exchange.name} {message.routing_key}",
                    "description": f"Routing key `{message.routing_key}` on the {exchange.type} "
                    f"exchange `{exchange.name}`.",
                    "messages": _message_refs([message]),
                    "bindings": _exchange_binding(exchange),
                },
            )
            published_on[message.key] = route_id
    for queue in topology.queues:
        on_queue = _queue_messages(topology, queue, messages)
        bound = ", ".join(
            f"`{b.exchange}`" + (f" `{b.routing_key}`" if b.routing_key else "")
            for b in queue.bindings
        )
        source = f"Bound to {bound}." if bound else "Fed through the default exchange."
        _put(
            channels,
            queue_channel_id(queue.name),
            {
                "address": queue.name,
                "title": queue.name,
                "description": f"Durable quorum queue `{queue.name}`. {source} "
                + _consumer_note(queue),
                "messages": _message_refs(on_queue),
                "bindings": _queue_binding(queue),
            },
        )
        if queue.dead_letter:
            dead = queue.dead_letter_spec()
            _put(
                channels,
                queue_channel_id(dead.name),
                {
                    "address": dead.name,
                    "title": dead.name,
                    "description": f"What the broker dead-letters from `{queue.name}` (past its "
                    "delivery limit) or the consumer rejects as poison; listed and replayed "
                    "through the owning service's `/dead-letters` API.",
                    "messages": _message_refs(on_queue),
                    "bindings": _queue_binding(dead),
                },
            )
    bulk_reply = [m for m in messages if m.key == BULK_REPLY]
    _put(
        channels,
        BULK_REPLY_CHANNEL,
        {
            "address": None,
            "title": "bulk transaction reply",
            "description": "The requester's `reply_to` queue, reached through the default "
            "exchange; its name is taken from each request.",
            "messages": _message_refs(bulk_reply),
        },
    )
    return channels, published_on


# --- operations ---------------------------------------------------------------------------


def _channel_message_refs(channel_id: str, keys: Iterable[str]) -> list[JSON]:
    return [{"$ref": f"#/channels/{channel_id}/messages/{key}"} for key in keys]


def _operations(
    topology: Topology, messages: Sequence[_Message], channels: JSON, published_on: dict[str, str]
) -> JSON:
    operations: JSON = {}
    for message in messages:
        if message.publisher is None or message.key not in published_on:
            continue
        channel_id = published_on[message.key]
        target = f"`{message.exchange}`" + (
            f" with routing key `{message.routing_key}`" if message.routing_key else ""
        )
        _put(
            operations,
            f"{message.publisher}_send_{_id(message.key)}",
            {
                "action": "send",
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "messages": _channel_message_refs(channel_id, [message.key]),
                "title": f"{message.publisher} publishes {message.name}",
                "summary": f"`{message.publisher}` publishes `{message.name}` to {target}.",
                "description": "Written to the service's outbox in the transaction of the "
                "state change, then published with publisher confirms.",
                "bindings": {
                    "amqp": {
                        "deliveryMode": 2,
                        "mandatory": True,
                        "timestamp": True,
                        "bindingVersion": AMQP_BINDING_VERSION,
                    }
                },
                "tags": [{"name": str(message.publisher)}],
            },
        )
    for queue in topology.queues:
        if queue.owner is None:
            continue
        channel_id = queue_channel_id(queue.name)
        keys = list(channels[channel_id]["messages"])
        operation: JSON = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": _channel_message_refs(channel_id, keys),
            "title": f"{queue.owner} consumes {queue.name}",
            "summary": f"`{queue.owner}` consumes `{queue.name}`.",
            "description": "At-least-once: acknowledged after the handler's transaction "
            "committed; duplicates are dropped by `message_id`. A message that keeps failing "
            f"is dead-lettered to `{queue.dead_letter_queue}`.",
            "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING_VERSION}},
            "tags": [{"name": str(queue.owner)}],
        }
        if queue.name == BULK_TRANSACTIONS_QUEUE:
            operation["reply"] = {
                "address": {
                    "location": "$message.header#/reply_to",
                    "description": "The request's AMQP `reply_to` property (a queue name, "
                    "reached through the default exchange).",
                },
                "channel": {"$ref": f"#/channels/{BULK_REPLY_CHANNEL}"},
                "messages": _channel_message_refs(BULK_REPLY_CHANNEL, [BULK_REPLY]),
            }
        _put(operations, f"{queue.owner}_receive_{_id(queue.name)}", operation)
    return operations


# --- the document -------------------------------------------------------------------------

_DESCRIPTION: Final = """\
The messages four services (order, inventory, finance, notification) exchange over RabbitMQ.

* `order_events` (topic): the 29 order events of seed 001, routing key = event name, published \
by `order_service`.
* `ecomm` (topic): inventory events, published by `inventory_service`: seed 002's payload \
models and CloudEvents 1.0 structured JSON for reservations and stock.
* `BookWorm.Contracts:<MessageName>` (fanout, one per message): the checkout saga of seed 003; \
integration events from `order_service`, commands from `finance_service`.
* `inventory.bulktransactions`: bulk stock transactions, request/reply through the default \
exchange.

Every message is persistent JSON with the metadata of `AmqpMessageMetadata` (`message_id` is \
the idempotency key). Consumer queues are durable quorum queues with a delivery limit and a \
`<queue>.dead-letter` queue. This document is generated from `contracts/` by \
`python -m contracts.asyncapi`; do not edit it by hand."""


def build(topology: Topology = TOPOLOGY) -> JSON:
    """The AsyncAPI document as data."""
    messages = _catalogue()
    schemas, payloads = _schemas(messages)
    channels, published_on = _channels(topology, messages)
    component_messages: JSON = {}
    for message in messages:
        _put(component_messages, message.key, _message_object(message, payloads[message.key]))
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "commerce",
            "version": API_VERSION,
            "description": _DESCRIPTION,
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            SERVER: {
                "host": "localhost:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "pathname": "/",
                "title": "RabbitMQ",
                "description": "RabbitMQ 3.10+ (quorum queues), vhost `/`. Services connect "
                "with `AMQP_URL` (default `amqp://guest:guest@localhost:5672/`).",
                "security": [{"$ref": f"#/components/securitySchemes/{SECURITY_SCHEME}"}],
            }
        },
        "channels": channels,
        "operations": _operations(topology, messages, channels, published_on),
        "components": {
            "schemas": schemas,
            "messages": component_messages,
            "correlationIds": _correlation_ids(),
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "userPassword",
                    "description": "AMQP PLAIN user and password, from `AMQP_URL`.",
                }
            },
        },
    }


def render(topology: Topology = TOPOLOGY) -> str:
    """The committed text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(build(topology), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m contracts.asyncapi",
        description="Generate the AsyncAPI document of contracts/.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if the file differs from a fresh generation",
    )
    parser.add_argument(
        "path",
        nargs="?",
        type=Path,
        default=repo_root() / DEFAULT_OUTPUT,
        help=f"output file (default: {DEFAULT_OUTPUT})",
    )
    args = parser.parse_args(argv)
    path: Path = args.path
    text = render()
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            print(
                f"{path} is out of date: regenerate it with `python -m contracts.asyncapi`",
                file=sys.stderr,
            )
            return 1
        print(f"{path} is up to date")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
