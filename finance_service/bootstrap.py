"""The one place that builds the finance service: runtime, saga consumer, timeouts, HTTP app."""

from __future__ import annotations

from litestar import Litestar
from prometheus_client import Gauge

from contracts.topology import TOPOLOGY
from finance_service.config import Settings
from finance_service.domain.saga import SagaState
from finance_service.entrypoints.http import ROUTES
from finance_service.handlers import SERVICE, SagaEventHandler, TimeoutJob, decode_integration_event
from finance_service.main import SCHEMA, migrations
from messaging import db, service
from messaging.runtime import ServiceRuntime

#: Sagas by state, read from the saga table at every scrape (the figure replicas share).
SAGAS = Gauge("commerce_sagas", "Checkout sagas by state.", ["state"])


async def count_sagas(conn: db.Connection) -> None:
    rows = await conn.fetch("SELECT state, count(*) AS n FROM sagas GROUP BY state")
    counts: dict[str, int] = {row["state"]: row["n"] for row in rows}
    for state in SagaState:
        SAGAS.labels(state.value).set(counts.get(state.value, 0))


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
    runtime.measure(count_sagas)
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
