"""Complete checkouts at a fixed rate against the whole system, every service a process.

    .venv/bin/python bench/load.py [--rate 50] [--seconds 60] [--skus 50] [--concurrency 200]

What is measured. The four services run as processes of their own (`commerce serve`), in a
namespace of this run's own, on the local RabbitMQ and PostgreSQL. A driver starts one complete
checkout every 1/rate seconds — POST /carts, POST /carts/{id}/items, POST /carts/{id}/checkout,
POST /orders/{id}/payments, POST /payments/{id}/succeed — without waiting for earlier ones (up to
`--concurrency` in flight). A queue of the benchmark's own records `inventory.reservation.created`
and `order.confirmed` as they are published. Reported:

- checkouts started and completed per second (completed = all five requests answered 2xx), and
  whether the system kept up: the driver's lag behind its schedule, and the backlog left when
  the driving stops (messages waiting in the consumer queues, rows waiting in the outboxes) and
  how long it takes to drain;
- p50/p99 latency from the checkout's HTTP answer to its `inventory.reservation.created`, and to
  its `order.confirmed`;
- each service's peak RSS (VmHWM), its RSS at the start and the end of the driving, and its RSS
  sampled every tenth of the driving time, with the growth over the second half of the driving
  (when warm-up is over, a service that does not leak should stay level there); beside it, the
  Postgres connections its pool held open at each sample (`commerce_db_pool_connections`).

Knobs: the arguments above; ORDER_POOL_SIZE etc. pass through the environment to the services.
The machine is shared: compare figures of one run, not across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from contracts.topology import ECOMM, ORDER_EVENTS
from messaging.namespaces import remove_namespace
from messaging.settings import RuntimeSettings
from messaging.topology import declare

SERVICES = ("order", "inventory", "finance", "notification")
SCHEMAS = {"order": "orders", "inventory": "inventory", "finance": "finance"}
SCHEMAS["notification"] = "notification"
ORG, KEY, ADMIN = "org_bench", "bench-key", "bench-admin"
AUTH = {"Authorization": f"Bearer {KEY}"}


#: Process names (as /proc/PID/stat gives them) of the servers on this machine.
SERVERS = {"beam.smp": "broker", "postgres": "database"}


def servers_cpu() -> dict[str, float]:
    """CPU seconds (user + system) used so far by the local RabbitMQ (its Erlang VM) and
    PostgreSQL (every server process) — 0 for one that runs elsewhere. Counted over processes
    alive now: a Postgres backend that ended since the last call takes its seconds with it,
    so compare calls across which the connections stay open (pools)."""
    tick = os.sysconf("SC_CLK_TCK")
    figures = dict.fromkeys(SERVERS.values(), 0.0)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # ended meanwhile
            continue
        name, fields = text[text.index("(") + 1 : text.rindex(")")], text.rsplit(")", 1)[1]
        if name in SERVERS:
            values = fields.split()
            figures[SERVERS[name]] += (int(values[11]) + int(values[12])) / tick
    return figures


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class System:
    """The four services as processes, in a namespace of their own."""

    settings: RuntimeSettings
    urls: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(
        self, env: dict[str, str], log_dir: Path, services: tuple[str, ...] = SERVICES
    ) -> None:
        for name in services:
            port = free_port()
            self.urls[name] = f"http://127.0.0.1:{port}"
            command = [sys.executable, "-m", "messaging.cli", "serve", name]
            command += ["--host", "127.0.0.1", "--port", str(port)]
            log = (log_dir / f"{name}.log").open("wb")
            self.processes[name] = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    async def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            for name, url in self.urls.items():
                while True:
                    if self.processes[name].poll() is not None:
                        raise SystemExit(f"{name} exited; see its log")
                    try:
                        if (await client.get(f"{url}/ready")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() > deadline:
                        raise SystemExit(f"{name} not ready after {timeout}s")
                    await asyncio.sleep(0.2)

    def rss(self) -> dict[str, tuple[int, int]]:
        """Per service: (current RSS, peak RSS) in kB, from /proc."""
        figures = {}
        for name, process in self.processes.items():
            status = Path(f"/proc/{process.pid}/status").read_text()
            fields = dict(
                line.split(":", 1) for line in status.splitlines() if line.startswith("Vm")
            )
            figures[name] = (int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0]))
        return figures

    def start_sink(self, env: dict[str, str], log_dir: Path) -> None:
        """The project's SMTP sink as its own process, on `env`'s SMTP_PORT."""
        command = [sys.executable, "-m", "notification_service.smtp_sink"]
        command += [str(log_dir / "mail"), env["SMTP_PORT"]]
        log = (log_dir / "smtp.log").open("wb")
        self.processes["smtp sink"] = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT
        )

    def cpu(self) -> dict[str, float]:
        """CPU seconds (user + system) used so far by each service, by this driver, by the
        local broker and database (`servers_cpu`), and by the whole machine (`machine`: every
        process and the kernel, from /proc/stat)."""
        tick = os.sysconf("SC_CLK_TCK")
        figures = {"driver": sum(os.times()[:2]), **servers_cpu()}
        for name, process in self.processes.items():
            fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            figures[name] = (int(fields[11]) + int(fields[12])) / tick
        busy = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        # user nice system idle iowait irq softirq steal: all but idle and iowait
        figures["machine"] = sum(int(v) for i, v in enumerate(busy[:8]) if i not in (3, 4)) / tick
        return figures

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


class Events:
    """When each order's reservation and confirmation were published (receipt time)."""

    def __init__(self, settings: RuntimeSettings) -> None:
        self.settings = settings
        self.reserved: dict[str, float] = {}
        self.confirmed: dict[str, float] = {}
        self._connection: aio_pika.abc.AbstractConnection | None = None

    async def start(self) -> None:
        self._connection = await aio_pika.connect(self.settings.amqp_url)
        channel = await self._connection.channel()
        await declare(channel, self.settings.topology)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        prefix = self.settings.topology_prefix
        await queue.bind(prefix + ECOMM, "inventory.reservation.created")
        await queue.bind(prefix + ORDER_EVENTS, "order.confirmed")
        await queue.consume(self._on_message, no_ack=True)

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        now = time.monotonic()
        body = json.loads(message.body)
        if message.routing_key == "order.confirmed":
            self.confirmed.setdefault(body["data"]["order_id"], now)
        else:
            self.reserved.setdefault(body["data"]["order_id"], now)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()


@dataclass
class Outcome:
    checked_out_at: dict[str, float] = field(default_factory=dict)
    completed: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    lag: list[float] = field(default_factory=list)


class Http:
    """A lean HTTP/1.1 keep-alive client for the driver: httpx costs more CPU per request than
    the service answering it, and on a 2-core machine the driver would measure itself."""

    def __init__(self, url: str, connections: int) -> None:
        parts = url.split("://", 1)[1]
        self.host, port = parts.split(":")
        self.port = int(port)
        self._idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self._opened = 0
        self._limit = connections

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        """(reader, writer, reused)."""
        if self._idle.empty() and self._opened < self._limit:
            self._opened += 1
            reader, writer = await asyncio.open_connection(self.host, self.port)
            return reader, writer, False
        reader, writer = await self._idle.get()
        return reader, writer, True

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        payload = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        while True:
            reader, writer, reused = await self._connection()
            try:
                writer.write(head.encode() + payload)
                status_line = await reader.readline()
                if not status_line and reused:
                    # The server had closed this idle connection (uvicorn's keep-alive timeout)
                    # and answered nothing: it did not take the request. Send it on a new one.
                    writer.close()
                    self._opened -= 1
                    continue
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                answer = await reader.readexactly(length)
            except BaseException:
                writer.close()
                self._opened -= 1
                raise
            self._idle.put_nowait((reader, writer))
            return int(status_line.split()[1]), json.loads(answer) if answer else None

    async def close(self) -> None:
        while not self._idle.empty():
            _, writer = self._idle.get_nowait()
            writer.close()


async def checkout(http: Http, sku: str, bin_name: str, outcome: Outcome) -> None:
    async def post(path: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
        code, answer = await http.post(path, body)
        if code != status:
            raise RuntimeError(f"{path.split('/')[1]} {code}")
        result: dict[str, Any] = answer
        return result

    try:
        cart = await post("/carts", {"customer_id": f"cust_{uuid.uuid4().hex[:8]}"}, 201)
        cart_path = f"/carts/{cart['cart_id']}"
        item = {"variant_id": sku, "quantity": 1, "unit_price": 19.99}
        await post(f"{cart_path}/items", item, 201)
        checkout_body = {
            "email": "bench@example.com",
            "full_name": "Bench Mark",
            "preferred_warehouse_id": bin_name,
        }
        order = await post(f"{cart_path}/checkout", checkout_body, 201)
        outcome.checked_out_at[order["order_id"]] = time.monotonic()
        payment = await post(
            f"/orders/{order['order_id']}/payments", {"payment_method": "card"}, 201
        )
        await post(f"/payments/{payment['payment_id']}/succeed", {})
        outcome.completed += 1
    except (OSError, asyncio.IncompleteReadError, RuntimeError) as exc:
        outcome.failed += 1
        key = str(exc) if isinstance(exc, RuntimeError) else type(exc).__name__
        outcome.errors[key] = outcome.errors.get(key, 0) + 1


async def stock_up(url: str, skus: list[str], bin_name: str) -> None:
    async with httpx.AsyncClient(headers=AUTH, timeout=30) as http:
        response = await http.post(f"{url}/bins", json={"name": bin_name})
        response.raise_for_status()
        for sku in skus:
            body = {"skuId": sku, "atpQty": 1_000_000}
            response = await http.post(f"{url}/bins/{bin_name}/items", json=body)
            response.raise_for_status()


async def drive(
    system: System, rate: float, seconds: float, skus: list[str], bin_name: str, concurrency: int
) -> tuple[Outcome, float]:
    outcome = Outcome()
    in_flight = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()
    http = Http(system.urls["order"], connections=min(concurrency, 50))
    try:
        start = time.monotonic()
        total = int(rate * seconds)
        for n in range(total):
            due = start + n / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            outcome.lag.append(max(0.0, -delay))
            await in_flight.acquire()

            async def one(sku: str = skus[n % len(skus)]) -> None:
                try:
                    await checkout(http, sku, bin_name, outcome)
                finally:
                    in_flight.release()

            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        started_for = time.monotonic() - start
        await asyncio.gather(*tasks)
    finally:
        await http.close()
    return outcome, started_for


async def backlog(settings: RuntimeSettings) -> tuple[int, int]:
    """(messages waiting in the namespace's consumer queues, rows waiting in its outboxes)."""
    connection = await aio_pika.connect(settings.amqp_url)
    waiting = 0
    try:
        channel = await connection.channel()
        for queue in settings.topology.queues:
            if queue.owner is None:  # `<exchange>.unrouted`: kept, nobody consumes it
                continue
            declared = await channel.declare_queue(queue.name, passive=True)
            waiting += declared.declaration_result.message_count or 0
    finally:
        await connection.close()
    conn = await asyncpg.connect(settings.database_url)
    rows = 0
    try:
        for schema in SCHEMAS.values():
            rows += await conn.fetchval(
                f"SELECT count(*) FROM {settings.schema(schema)}.outbox"
                " WHERE sent_at IS NULL AND failed_at IS NULL"
            )
    finally:
        await conn.close()
    return waiting, rows


@dataclass(frozen=True)
class Sample:
    """One service at one moment: its RSS (kB) and the connections its pool holds open."""

    rss: int
    pool: int | None


async def sample_services(system: System, every: float, into: list[dict[str, Sample]]) -> None:
    """Append each service's RSS and pool size now and every `every` seconds after, until
    cancelled. The pool size comes from the service's `/metrics`: a pool that grows under load
    holds more connections, and with each one its own statement cache."""
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            rss = system.rss()
            into.append(
                {
                    name: Sample(rss[name][0], await pool_size(client, system.urls[name]))
                    for name in SERVICES
                }
            )
            await asyncio.sleep(every)


async def pool_size(client: httpx.AsyncClient, url: str) -> int | None:
    try:
        text = (await client.get(f"{url}/metrics")).text
    except httpx.HTTPError:
        return None
    for family in text_string_to_metric_families(text):
        if family.name == "commerce_db_pool_connections":
            for sample in family.samples:
                if sample.labels.get("state") == "open":
                    return int(sample.value)
    return None


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50, help="checkouts started per second")
    parser.add_argument("--seconds", type=float, default=60, help="how long to drive")
    parser.add_argument("--skus", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=200, help="checkouts in flight, max")
    args = parser.parse_args()

    base = RuntimeSettings.from_env()
    settings = RuntimeSettings(
        amqp_url=base.amqp_url, database_url=base.database_url, namespace=f"b{uuid.uuid4().hex[:8]}"
    )
    log_dir = Path("var/bench") / settings.namespace
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "COMMERCE_NAMESPACE": settings.namespace,
        "COMMERCE_API_KEYS": f"{ORG}={KEY}",
        "COMMERCE_ADMIN_KEY": ADMIN,
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
        # The SMTP server is not part of the system: unless one is given, the project's sink
        # runs as a process of its own (as a real server would), not inside the notification
        # service, whose figures would otherwise include the server's work.
        "SMTP_HOST": os.environ.get("SMTP_HOST", "127.0.0.1"),
        "SMTP_PORT": os.environ.get("SMTP_PORT", str(free_port())),
    }
    system = System(settings)
    events = Events(settings)
    try:
        if "SMTP_HOST" not in os.environ:
            system.start_sink(env, log_dir)
        system.start(env, log_dir)
        await system.wait_ready()
        await events.start()
        bin_name = "wh_bench"
        skus = [f"sku_{i}" for i in range(args.skus)]
        await stock_up(system.urls["inventory"], skus, bin_name)
        rss_before, cpu_before, measured_from = system.rss(), system.cpu(), time.monotonic()
        print(
            f"driving {args.rate:g} checkouts/s for {args.seconds:g} s "
            f"(namespace {settings.namespace}, logs in {log_dir})",
            flush=True,
        )
        samples: list[dict[str, Sample]] = []
        sampler = asyncio.create_task(sample_services(system, args.seconds / 10, samples))
        try:
            outcome, started_for = await drive(
                system, args.rate, args.seconds, skus, bin_name, args.concurrency
            )
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler  # a sampler that failed says so here
        driven_for = started_for
        left = await backlog(settings)
        drain_start = time.monotonic()
        while True:
            waiting = await backlog(settings)
            pending = [o for o in outcome.checked_out_at if o not in events.confirmed]
            if (waiting == (0, 0) and not pending) or time.monotonic() - drain_start > 120:
                break
            await asyncio.sleep(0.5)
        drained_in = time.monotonic() - drain_start
        rss_after, cpu_after = system.rss(), system.cpu()
        measured_for = time.monotonic() - measured_from
    finally:
        await events.close()
        system.stop()
        await remove_namespace(settings)

    to_reserved = [
        events.reserved[o] - t for o, t in outcome.checked_out_at.items() if o in events.reserved
    ]
    to_confirmed = [
        events.confirmed[o] - t for o, t in outcome.checked_out_at.items() if o in events.confirmed
    ]
    started = len(outcome.lag)
    print(
        f"checkouts started:   {started} in {started_for:.1f} s = {started / started_for:.1f}/s "
        f"(target {args.rate:g}/s; driver lag p99 {percentile(outcome.lag, 0.99) * 1000:.0f} ms)"
    )
    print(
        f"checkouts completed: {outcome.completed} ({outcome.failed} failed"
        + (f": {outcome.errors}" if outcome.errors else "")
        + ")"
        f" = {outcome.completed / driven_for:.1f}/s over the driving time"
    )
    print(
        f"backlog when driving stopped: {left[0]} queued messages, {left[1]} outbox rows; "
        f"drained in {drained_in:.1f} s"
    )
    for label, values in (("reserved", to_reserved), ("confirmed", to_confirmed)):
        print(
            f"checkout answer → {label:<9} p50 {percentile(values, 0.5) * 1000:6.0f} ms   "
            f"p99 {percentile(values, 0.99) * 1000:6.0f} ms   "
            f"({len(values)} of {len(outcome.checked_out_at)}; mean "
            f"{statistics.fmean(values) * 1000 if values else float('nan'):.0f} ms)"
        )
    used = {name: cpu_after[name] - cpu_before[name] for name in cpu_after}
    done = max(outcome.completed, 1)
    ours = [name for name in (*SERVICES, "smtp sink", "driver", *SERVERS.values()) if name in used]
    rest = used["machine"] - sum(used[name] for name in ours)
    print(
        "CPU per completed checkout, from the start of driving to the end of draining: "
        + ", ".join(f"{name} {used[name] / done * 1000:.1f} ms" for name in ours)
        + f", kernel and the rest {rest / done * 1000:.1f} ms;"
        f" machine {used['machine'] / done * 1000:.1f} ms"
        f" ({used['machine'] / measured_for / (os.cpu_count() or 1):.0%}"
        " of its cores)"
    )
    for name in SERVICES:
        (start_rss, _), (end_rss, peak) = rss_before[name], rss_after[name]
        series = [sample[name].rss for sample in samples]
        half = series[len(series) // 2 :]
        pools = " ".join("?" if s[name].pool is None else str(s[name].pool) for s in samples)
        print(
            f"{name:<13} RSS {start_rss / 1024:6.1f} MB at start, {end_rss / 1024:6.1f} MB at "
            f"end, peak {peak / 1024:6.1f} MB; every {args.seconds / 10:g} s: "
            + " ".join(f"{kb / 1024:.0f}" for kb in series)
            + f" MB ({(half[-1] - half[0]) / 1024:+.1f} MB over the second half);"
            f" pool connections {pools}"
        )


if __name__ == "__main__":
    asyncio.run(main())
