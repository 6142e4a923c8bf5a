"""The composition root: the runtime, its consumers and jobs, the SMTP sink and the app."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from litestar import Litestar

from contracts.bookworm import (
    BookWormMessage,
    CancelOrderCommand,
    CompleteOrderCommand,
    PlaceOrderCommand,
    UserCheckedOutIntegrationEvent,
    decode_bookworm,
)
from contracts.order_events import decode_order_event
from contracts.topology import TOPOLOGY, Service
from messaging.db import Migration, load_migrations
from messaging.logs import get_logger
from messaging.message import Delivery
from messaging.runtime import ServiceRuntime
from messaging.service import create_app
from notification_service import handlers, jobs
from notification_service.adapters.smtp import SmtpMailer
from notification_service.analytics import wiring as analytics
from notification_service.config import Settings, SmtpSettings
from notification_service.entrypoints.http import NotificationsController
from notification_service.smtp_sink import SmtpSink

log = get_logger(__name__)

SERVICE = Service.NOTIFICATION.value
SCHEMA = "notification"

#: Queues of the service's own (SPEC §3: `<queue>.<purpose>`), declared with the rest of the
#: topology in `contracts/topology.py`. `return.approved` names the return, not its order:
#: `.returns` learns which order a return belongs to from `return.requested`. `.contacts` takes
#: the customer's address from the checkout, before the saga's first command.
RETURNS_QUEUE = TOPOLOGY.queue("notification_order_consumer.returns")
CONTACTS_QUEUE = TOPOLOGY.queue("notification_order_consumer.contacts")
OWN_QUEUES = (RETURNS_QUEUE, CONTACTS_QUEUE)


def migrations() -> list[Migration]:
    return [*load_migrations("notification", "notification_service"), *analytics.migrations()]


def _order_event(delivery: Delivery) -> Any:
    return decode_order_event(delivery.body, delivery.routing_key)


def _bookworm(message: type[BookWormMessage]) -> Any:
    def decode(delivery: Delivery) -> BookWormMessage:
        return decode_bookworm(delivery.body, message)

    return decode


def build(settings: Settings) -> Litestar:
    runtime = ServiceRuntime(
        service=SERVICE, schema=SCHEMA, settings=settings.runtime, migrations=migrations()
    )
    runtime.consume(
        TOPOLOGY.queue("notification_order_consumer"),
        decode=_order_event,
        handle=handlers.on_order_event,
        # One worker, several events per transaction: the commit is amortised and no two
        # batches lock the same orders in different orders.
        prefetch=200,
        batch_size=50,
    )
    runtime.consume(RETURNS_QUEUE, decode=_order_event, handle=handlers.on_return_requested)
    runtime.consume(
        CONTACTS_QUEUE,
        decode=_bookworm(UserCheckedOutIntegrationEvent),
        handle=handlers.on_checkout,
    )
    for queue, command in (
        ("notification-place-order", PlaceOrderCommand),
        ("notification-complete-order", CompleteOrderCommand),
        ("notification-cancel-order", CancelOrderCommand),
    ):
        runtime.consume(
            TOPOLOGY.queue(queue), decode=_bookworm(command), handle=handlers.on_saga_command
        )
    analytics_routes = analytics.install(runtime)

    mailer = SmtpMailer(settings.smtp)
    policy = settings.mail
    runtime.every(
        "mail-sender",
        policy.send_interval,
        lambda: jobs.send_due_mail(runtime.pool, mailer, policy),
    )
    runtime.every(
        "mail-resolver", policy.resolve_interval, lambda: jobs.resolve_waiting_mail(runtime.pool)
    )
    app = create_app(
        runtime=runtime,
        api_keys=settings.api_keys,
        title=SERVICE,
        description="Mail for order events and saga commands; the analytics read model.",
        route_handlers=[NotificationsController, *analytics_routes],
    )
    if settings.smtp.embedded:
        sink = SmtpSink(settings.smtp.sink_dir, host=settings.smtp.host, port=settings.smtp.port)
        app.on_startup.insert(0, partial(_start_sink, sink, settings.smtp))
        app.on_shutdown.append(partial(_stop_sink, sink))
    return app


async def _stop_sink(sink: SmtpSink) -> None:
    await asyncio.to_thread(sink.stop)


async def _start_sink(sink: SmtpSink, smtp: SmtpSettings) -> None:
    try:
        await asyncio.to_thread(sink.start)
    except OSError as exc:
        log.warning(
            "SMTP port taken; sending to whatever listens there",
            host=smtp.host,
            port=smtp.port,
            error=repr(exc),
        )
        return
    log.info("embedded SMTP sink started", port=smtp.port, directory=str(sink.directory.resolve()))
