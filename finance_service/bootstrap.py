"""The one place that builds the finance service: runtime, saga consumer, timeouts, HTTP app."""

from __future__ import annotations

from litestar import Litestar

from contracts.topology import TOPOLOGY
from finance_service.config import Settings
from finance_service.entrypoints.http import ROUTES
from finance_service.handlers import SERVICE, SagaEventHandler, TimeoutJob, decode_integration_event
from finance_service.main import SCHEMA, migrations
from messaging import service
from messaging.runtime import ServiceRuntime


def build_runtime(settings: Settings) -> ServiceRuntime:
    runtime = ServiceRuntime(
        service=SERVICE,
        schema=SCHEMA,
        settings=settings.runtime,
        migrations=migrations(),
        pool_size=max(10, settings.workers + 4),
    )
    runtime.consume(
        TOPOLOGY.queue("finance-order-state-machine"),
        decode=decode_integration_event,
        handle=SagaEventHandler(runtime.outbox, settings.policy),
        workers=settings.workers,
    )

    async def fire_timeouts() -> None:
        await TimeoutJob(runtime.pool, runtime.outbox, settings.policy)()

    runtime.every("finance-saga-timeouts", settings.timeout_poll_seconds, fire_timeouts)
    return runtime


def build(settings: Settings) -> Litestar:
    app = service.create_app(
        runtime=build_runtime(settings),
        api_keys=settings.api_keys,
        title="finance_service",
        description="The checkout saga (SPEC §6): state, transitions, replay of failed checkouts.",
        route_handlers=ROUTES,
    )
    app.state["finance_settings"] = settings
    return app
