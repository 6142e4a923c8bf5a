"""What the runtime sends and receives, independent of any payload format.

An `OutgoingMessage` carries the body and the metadata of SPEC §2.4; `Delivery` is what a handler
gets. The AMQP properties and CloudEvents headers are built in exactly one place: `to_amqp`.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

CONTENT_TYPE = "application/json"


def utcnow() -> datetime:
    return datetime.now(UTC)


def isoformat_z(moment: datetime) -> str:
    """ISO-8601 in UTC with a `Z`, as every timestamp on the wire is written."""
    text = moment.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


@dataclass(frozen=True, slots=True, kw_only=True)
class OutgoingMessage:
    exchange: str
    routing_key: str
    body: bytes
    type: str
    app_id: str
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    correlation_id: str | None = None
    subject: str | None = None
    timestamp: datetime = field(default_factory=utcnow)
    reply_to: str | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return f"/{self.app_id}"

    def to_amqp(self) -> aio_pika.Message:
        headers: dict[str, Any] = dict(self.headers)
        headers.update(
            {
                "cloudEvents:specversion": "1.0",
                "cloudEvents:id": self.message_id,
                "cloudEvents:type": self.type,
                "cloudEvents:source": self.source,
                "cloudEvents:time": isoformat_z(self.timestamp),
            }
        )
        if self.subject is not None:
            headers["cloudEvents:subject"] = self.subject
        return aio_pika.Message(
            self.body,
            message_id=self.message_id,
            type=self.type,
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            timestamp=self.timestamp,
            app_id=self.app_id,
            correlation_id=self.correlation_id,
            reply_to=self.reply_to,
            headers=headers,
        )


def _header_text(headers: Mapping[str, Any], key: str) -> str | None:
    value = headers.get(key)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One received message, as a handler sees it."""

    queue: str
    message_id: str
    exchange: str
    routing_key: str
    body: bytes
    type: str | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    app_id: str | None = None
    redelivered: bool = False
    delivery_count: int = 0
    headers: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The message's name: its AMQP `type`, else the routing key."""
        return self.type or self.routing_key

    @classmethod
    def from_amqp(cls, queue: str, message: AbstractIncomingMessage) -> Delivery:
        headers = dict(message.headers or {})
        count = headers.get("x-delivery-count")
        # A message without an id (a foreign producer) is deduplicated by its content instead.
        message_id = message.message_id or "sha256:" + hashlib.sha256(message.body).hexdigest()
        return cls(
            queue=queue,
            message_id=message_id,
            exchange=message.exchange or "",
            routing_key=message.routing_key or "",
            body=message.body,
            type=message.type,
            correlation_id=message.correlation_id,
            reply_to=message.reply_to,
            app_id=message.app_id,
            redelivered=bool(message.redelivered),
            delivery_count=count if isinstance(count, int) else 0,
            headers=headers,
        )

    def log_context(self) -> dict[str, str | None]:
        return {
            "message_id": self.message_id,
            # Rendered as `event` in the JSON line (structlog's own `event` becomes `msg`).
            "message_event": self.name,
            "order_id": self.correlation_id or _header_text(self.headers, "cloudEvents:subject"),
            "queue": self.queue,
        }
