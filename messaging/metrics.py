"""Prometheus metrics of the runtime (one process is one service, so the default registry).

Metric objects are process-wide definitions, not connections: creating them at import is the
prometheus_client idiom, and every label set is added lazily.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

MESSAGES = Counter(
    "commerce_messages_total",
    "Messages taken off a queue, by outcome (handled, duplicate, dead_lettered).",
    ["queue", "outcome"],
)
RETRIES = Counter(
    "commerce_message_retries_total", "Handler attempts that failed and were retried.", ["queue"]
)
BATCH_SECONDS = Histogram(
    "commerce_consumer_transaction_seconds",
    "Time of one consumer transaction (a batch of one or more messages).",
    ["queue"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
PUBLISHED = Counter(
    "commerce_outbox_published_total", "Outbox rows confirmed by the broker.", ["schema"]
)
PUBLISH_FAILURES = Counter(
    "commerce_outbox_publish_failures_total",
    "Outbox rows the broker refused (nack, unroutable), per attempt.",
    ["schema"],
)
OUTBOX_BACKLOG = Gauge(
    "commerce_outbox_backlog", "Outbox rows waiting to be published.", ["schema"]
)
OUTBOX_AGE = Gauge(
    "commerce_outbox_oldest_age_seconds",
    "Age of the oldest outbox row waiting to be published.",
    ["schema"],
)
BROKER_CONNECTED = Gauge(
    "commerce_broker_connected", "1 while the AMQP connection is up.", ["service"]
)
DEAD_LETTERS = Gauge("commerce_dead_letters_waiting", "Dead letters not replayed yet.", ["schema"])
DB_POOL = Gauge(
    "commerce_db_pool_connections",
    "Postgres connections of the service's pool: open, and of those idle.",
    ["schema", "state"],
)


def render() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
