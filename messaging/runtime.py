"""The messaging runtime of one service process: pool, broker, outbox relay and consumers.

    runtime = ServiceRuntime(service="inventory_service", schema="inventory", settings=...,
                             migrations=load_migrations("inventory", "inventory_service"))
    runtime.consume(TOPOLOGY.queue("inventory_order_consumer"), decode=..., handle=...)
    async with runtime:
        ...  # serve HTTP, wait for a signal

Starting migrates the schema, opens the pool and begins supervising the broker connection; it
does not wait for RabbitMQ, so a service with a broker outage still starts and writes to its
outbox. Every consumer queue of the service also gets a drain for its broker dead-letter queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any

import asyncpg

from contracts.topology import Queue
from messaging import db, memory
from messaging.broker import Broker
from messaging.consumer import Consumer, Decode, Handle, Prepare, RetryPolicy
from messaging.dead_letters import drain_consumer
from messaging.logs import get_logger
from messaging.outbox import Outbox, OutboxRelay
from messaging.settings import RuntimeSettings
from messaging.tasks import cancel_and_wait, suspended_at

log = get_logger(__name__)

#: How long stopping waits for borrowed Postgres connections before closing them by force.
POOL_CLOSE_TIMEOUT = 10.0


class ServiceRuntime:
    def __init__(
        self,
        *,
        service: str,
        schema: str,
        settings: RuntimeSettings,
        migrations: Sequence[db.Migration] = (),
        declare_topology: bool = True,
        pool_size: int = 10,
        relay_poll_interval: float = 5.0,
    ) -> None:
        self.service = service
        #: `schema` is the service's base name; the namespace (if any) is applied here.
        self.schema = db.check_schema_name(settings.schema(schema))
        self.settings = settings
        self.topology = settings.topology
        self.outbox = Outbox(self.schema)
        self._migrations = migrations
        self._declare_topology = declare_topology
        self._pool_size = pool_size
        self._relay_poll_interval = relay_poll_interval
        self._specs: list[tuple[Queue, dict[str, Any]]] = []
        self.consumers: dict[str, Consumer[Any]] = {}
        self._pool: asyncpg.Pool | None = None
        self._broker: Broker | None = None
        self._relay: OutboxRelay | None = None
        self._periodic: list[tuple[str, float, Callable[[], Awaitable[object]]]] = []
        self.metric_probes: list[Callable[[db.Connection], Awaitable[None]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        trim = memory.heap_trimmer()
        if settings.malloc_trim_interval > 0 and trim is not None:
            self.every("malloc-trim", settings.malloc_trim_interval, memory.trim_job(trim))

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the runtime is not started")
        return self._pool

    @property
    def broker(self) -> Broker:
        if self._broker is None:
            raise RuntimeError("the runtime is not started")
        return self._broker

    @property
    def relay(self) -> OutboxRelay:
        if self._relay is None:
            raise RuntimeError("the runtime is not started")
        return self._relay

    def consume(
        self,
        queue: Queue,
        *,
        decode: Decode[Any],
        handle: Handle[Any],
        prefetch: int = 100,
        batch_size: int = 1,
        workers: int = 1,
        retry: RetryPolicy | None = None,
        prepare: Prepare[Any] | None = None,
    ) -> None:
        """Register a consumer; it starts with the runtime and re-attaches on every reconnect.

        `queue` is the SPEC's queue (e.g. `TOPOLOGY.queue("inventory_order_consumer")`); the
        runtime moves it into its namespace."""
        self._specs.append(
            (
                queue.with_prefix(self.settings.topology_prefix),
                {
                    "decode": decode,
                    "handle": handle,
                    "prefetch": prefetch,
                    "batch_size": batch_size,
                    "workers": workers,
                    "retry": retry,
                    "prepare": prepare,
                },
            )
        )

    def measure(self, probe: Callable[[db.Connection], Awaitable[None]]) -> None:
        """Run `probe` on every `/metrics` scrape, on a pooled connection: a service's own
        gauges read from its tables (e.g. sagas by state)."""
        self.metric_probes.append(probe)

    def every(self, name: str, seconds: float, job: Callable[[], Awaitable[object]]) -> None:
        """Run `job` every `seconds` while the runtime is up (sweepers, timeouts). A failing run
        is logged and the next one happens on schedule; jobs must be safe on several replicas."""
        self._periodic.append((name, seconds, job))

    async def _repeat(
        self, name: str, seconds: float, job: Callable[[], Awaitable[object]]
    ) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception as exc:
                if db.is_connection_error(exc):
                    log.warning("periodic job waits for postgres", job=name, error=repr(exc))
                else:
                    log.exception("periodic job failed", job=name)

    async def start(self) -> None:
        dsn = self.settings.database_url
        await db.prepare_schema(dsn, self.schema, self._migrations)
        self._pool = await db.create_pool(dsn, self.schema, max_size=self._pool_size)
        self._broker = Broker(
            self.settings.amqp_url,
            app_id=self.service,
            topology=self.topology if self._declare_topology else None,
            prefix=self.settings.topology_prefix,
        )
        self._relay = OutboxRelay(
            self._pool,
            self._broker,
            dsn=dsn,
            schema=self.schema,
            poll_interval=self._relay_poll_interval,
        )
        for queue, options in self._specs:
            self.consumers[queue.name] = Consumer(queue, pool=self._pool, **options)
            if queue.dead_letter:
                drain = drain_consumer(queue, self._pool)
                self.consumers[drain.name] = drain
        self._broker.on_connect(self._attach_all)
        self._broker.on_disconnect(self._detach_all)
        self._relay.start()
        self._broker.start()
        self._tasks = [
            asyncio.create_task(self._repeat(*job), name=f"every:{job[0]}")
            for job in self._periodic
        ]
        log.info("runtime started", schema=self.schema, consumers=sorted(self.consumers))

    async def _attach_all(self, connection: Any) -> None:
        for consumer in self.consumers.values():
            await consumer.attach(connection)

    async def _detach_all(self) -> None:
        for consumer in self.consumers.values():
            await consumer.detach()

    async def stop(self) -> None:
        watchdog = asyncio.create_task(self._report_slow_stop(), name="runtime-stop-watchdog")
        try:
            await self._stop()
        finally:
            watchdog.cancel()
        log.info("runtime stopped", schema=self.schema)

    async def _report_slow_stop(self, after: float = 15.0) -> None:
        """A stop that takes long is logged with what the process still waits for."""
        await asyncio.sleep(after)
        waiting = [
            f"{task.get_name()} at {suspended_at(task)}"
            for task in asyncio.all_tasks()
            if task is not asyncio.current_task() and not task.done()
        ]
        log.warning("runtime still stopping", after_seconds=after, waiting=sorted(waiting))

    async def _stop(self) -> None:
        await cancel_and_wait(self._tasks)
        # Side by side: each may wait up to CLOSE_TIMEOUT for a broker that stopped answering.
        await asyncio.gather(*(consumer.stop() for consumer in self.consumers.values()))
        if self._relay is not None:
            await self._relay.stop()
        if self._broker is not None:
            await self._broker.close()
        if self._pool is not None:
            try:
                async with asyncio.timeout(POOL_CLOSE_TIMEOUT):
                    await self._pool.close()  # waits for borrowed connections to come back
            except TimeoutError:
                log.warning("postgres connections still borrowed at stop; terminating them")
                self._pool.terminate()

    async def ready(self) -> dict[str, bool]:
        """What `/ready` reports: can we reach Postgres and RabbitMQ right now."""
        database = False
        try:
            async with asyncio.timeout(2):
                async with db.acquire(self.pool) as conn:
                    database = await conn.fetchval("SELECT true") is True
        except Exception:
            database = False
        return {"database": database, "broker": self.broker.is_connected}

    async def __aenter__(self) -> ServiceRuntime:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
