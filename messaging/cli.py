"""`commerce`: run the system or one service, migrate, declare the topology, handle dead letters.

Services plug in by convention: package `<name>_service` with a `main` module that provides
`migrations() -> list[Migration]` and `create_app(environ=None) -> Litestar`, and optionally a
`cli` module with `register(subparsers)` for commands of its own (e.g. `commerce saga …`).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from contracts.topology import TOPOLOGY
from messaging import db
from messaging.broker import Broker
from messaging.dead_letters import list_dead_letters, replay_dead_letters
from messaging.logs import configure_logging, redact
from messaging.namespaces import find_namespaces, remove_namespace
from messaging.outbox import Outbox, OutboxRelay
from messaging.settings import RuntimeSettings


@dataclass(frozen=True, slots=True)
class ServiceEntry:
    name: str
    package: str
    schema: str
    port: int

    @property
    def present(self) -> bool:
        return importlib.util.find_spec(self.package) is not None

    def main(self) -> Any:
        return importlib.import_module(f"{self.package}.main")


SERVICES = {
    entry.name: entry
    for entry in (
        ServiceEntry("order", "order_service", "orders", 8000),
        ServiceEntry("inventory", "inventory_service", "inventory", 8001),
        ServiceEntry("finance", "finance_service", "finance", 8002),
        ServiceEntry("notification", "notification_service", "notification", 8003),
    )
}


def _present(names: Sequence[str] | None = None) -> list[ServiceEntry]:
    chosen = [SERVICES[n] for n in names] if names else list(SERVICES.values())
    return [entry for entry in chosen if entry.present]


def _port(entry: ServiceEntry) -> int:
    return int(os.environ.get(f"{entry.name.upper()}_PORT", entry.port))


# -- commands ----------------------------------------------------------------------------------


async def _migrate(settings: RuntimeSettings, entries: Sequence[ServiceEntry]) -> None:
    for entry in entries:
        applied = await db.prepare_schema(
            settings.database_url, settings.schema(entry.schema), entry.main().migrations()
        )
        print(f"{settings.schema(entry.schema)}: {len(applied)} migration(s) applied")


async def _declare(settings: RuntimeSettings) -> None:
    broker = Broker(settings.amqp_url, app_id="commerce-cli", topology=settings.topology)
    broker.start()
    try:
        if not await broker.wait_connected(30):
            raise SystemExit(f"RabbitMQ not reachable at {redact(settings.amqp_url)}")
    finally:
        await broker.close()
    queues = sum(1 for _ in settings.topology.all_queues())
    exchanges = len(settings.topology.exchanges)
    print(f"topology declared: {exchanges} exchanges, {queues} queues")


def _show_topology() -> None:
    for exchange in TOPOLOGY.exchanges:
        alternate = f" (unroutable → {exchange.alternate})" if exchange.alternate else ""
        print(f"exchange {exchange.name} [{exchange.type}]{alternate}")
    for queue in TOPOLOGY.queues:
        owner = queue.owner.value if queue.owner else "-"
        print(f"queue {queue.name} [{owner}]")
        for binding in queue.bindings:
            print(f"    ← {binding.exchange} {binding.routing_key or '(fanout)'}")


async def _dead_letters(settings: RuntimeSettings, args: argparse.Namespace) -> None:
    entry = SERVICES[args.service]
    conn = await db.connect(settings.database_url, settings.schema(entry.schema))
    try:
        if args.action == "list":
            letters = await list_dead_letters(
                conn, queue=args.queue, include_replayed=args.all, limit=args.limit
            )
            for d in letters:
                state = f"replayed {d.replayed_at:%Y-%m-%d %H:%M}" if d.replayed_at else "waiting"
                print(
                    f"{d.id:>6}  {d.failed_at:%Y-%m-%d %H:%M:%S}  {d.queue}  {d.routing_key}"
                    f"  {d.message_id}  [{state}]\n        {d.reason}"
                )
            print(f"{len(letters)} dead letter(s)")
            return
        replayed = await replay_dead_letters(
            conn,
            Outbox(settings.schema(entry.schema)),
            app_id=entry.package,
            ids=args.id or None,
            queue=args.queue,
        )
    finally:
        await conn.close()
    print(f"{len(replayed)} dead letter(s) queued for replay: {replayed}")
    await flush_outbox(settings, entry)


async def flush_outbox(settings: RuntimeSettings, entry: ServiceEntry) -> None:
    """Publish what is waiting in a schema's outbox now, for commands run without the service."""
    schema = settings.schema(entry.schema)
    pool = await db.create_pool(settings.database_url, schema, min_size=1, max_size=2)
    broker = Broker(
        settings.amqp_url, app_id=entry.package, topology=None, prefix=settings.topology_prefix
    )
    broker.start()
    try:
        if not await broker.wait_connected(30):
            print("RabbitMQ not reachable: the service's relay will publish when it runs")
            return
        # A relay of its own, which publishes if no running service's relay leads; either
        # way, what is due goes out while it waits (up to about 30 s).
        relay = OutboxRelay(pool, broker, dsn=settings.database_url, schema=schema)
        relay.start()
        try:
            for _ in range(300):  # the database is polled: no event says "all sent"
                if not await relay.due():
                    break
                await asyncio.sleep(0.1)
        finally:
            await relay.stop()
        waiting, _ = await relay.backlog()
        print("published" if waiting == 0 else f"{waiting} message(s) still waiting")
    finally:
        await broker.close()
        await pool.close()


async def _serve(name: str, host: str, port: int | None) -> None:
    from messaging.service import serve

    entry = SERVICES[name]
    if not entry.present:
        raise SystemExit(f"service {name!r} is not part of this build yet")
    await serve(entry.main().create_app(), host=host, port=port or _port(entry))


def _run_system(settings: RuntimeSettings, names: Sequence[str], host: str) -> int:
    """The whole system on one machine: every service in a process of its own."""
    entries = _present(names)
    asyncio.run(_declare(settings))
    if not entries:
        print("no services in this build yet: the topology is declared, nothing else to run")
        return 0
    asyncio.run(_migrate(settings, entries))
    children: list[tuple[ServiceEntry, subprocess.Popen[bytes]]] = []
    for entry in entries:
        command = [sys.executable, "-m", "messaging.cli", "serve", entry.name, "--host", host]
        children.append((entry, subprocess.Popen(command)))
    print("\nrunning (Ctrl-C stops everything):")
    for entry, child in children:
        print(
            f"  {entry.package:<22} http://localhost:{_port(entry)}  "
            f"docs http://localhost:{_port(entry)}/schema  pid {child.pid}"
        )
    print("  RabbitMQ management   http://localhost:15672 (guest/guest)\n")
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    try:
        while not stopping:
            for entry, child in children:
                if child.poll() is not None:
                    print(f"{entry.package} exited with {child.returncode}; stopping the system")
                    exit_code, stopping = 1, True
            time.sleep(0.5)
    finally:
        for _, child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for _, child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
    return exit_code


async def _namespaces(settings: RuntimeSettings, args: argparse.Namespace) -> int:
    schemas = [entry.schema for entry in SERVICES.values()]
    found = await find_namespaces(settings, schemas)
    if args.action == "list":
        if args.namespaces or args.all:
            print("commerce: `namespaces list` takes no names", file=sys.stderr)
            return 2
        for name, count in found.items():
            print(f"{name}\t{count} of {len(schemas)} service schemas")
        if not found:
            print("no namespaces besides the default one")
        return 0
    if bool(args.namespaces) == args.all:
        print("commerce: name the namespaces to remove, or --all", file=sys.stderr)
        return 2
    chosen = list(found) if args.all else args.namespaces
    unknown = [name for name in chosen if name not in found]
    if unknown:
        print(f"commerce: no such namespace: {', '.join(unknown)}", file=sys.stderr)
        return 2
    for index, name in enumerate(chosen, start=1):
        target = RuntimeSettings(
            amqp_url=settings.amqp_url, database_url=settings.database_url, namespace=name
        )
        await remove_namespace(target, keep=found)
        print(f"[{index}/{len(chosen)}] removed {name}", flush=True)
    return 0


# -- argument parsing ---------------------------------------------------------------------------


def _parser() -> tuple[argparse.ArgumentParser, list[ModuleType]]:
    parser = argparse.ArgumentParser(prog="commerce", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    names = sorted(SERVICES)

    run = sub.add_parser("run", help="run the whole system (every service in its own process)")
    run.add_argument("services", nargs="*", metavar="SERVICE", help=f"any of {names}")
    run.add_argument("--host", default="0.0.0.0")

    serve = sub.add_parser("serve", help="run one service (any number of replicas may run)")
    serve.add_argument("service", choices=names)
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int)

    migrate = sub.add_parser("migrate", help="create the database and apply migrations")
    migrate.add_argument("services", nargs="*", metavar="SERVICE")

    topo = sub.add_parser("topology", help="declare or show the RabbitMQ topology")
    topo.add_argument("action", choices=["declare", "show"])

    spaces = sub.add_parser(
        "namespaces", help="list or remove COMMERCE_NAMESPACE systems (left by killed test runs)"
    )
    spaces.add_argument("action", choices=["list", "remove"])
    spaces.add_argument("namespaces", nargs="*", metavar="NAMESPACE")
    spaces.add_argument("--all", action="store_true", help="remove every namespace listed")

    dead = sub.add_parser("dead-letters", help="list or replay a service's dead letters")
    dead.add_argument("action", choices=["list", "replay"])
    dead.add_argument("service", choices=names)
    dead.add_argument("--queue")
    dead.add_argument("--id", type=int, action="append", help="replay only these (repeatable)")
    dead.add_argument("--all", action="store_true", help="list replayed ones too")
    dead.add_argument("--limit", type=int, default=100)

    plugins = []
    for entry in SERVICES.values():
        if entry.present and importlib.util.find_spec(f"{entry.package}.cli") is not None:
            module = importlib.import_module(f"{entry.package}.cli")
            module.register(sub)
            plugins.append(module)
    return parser, plugins


def main(argv: Sequence[str] | None = None) -> int:
    parser, _ = _parser()
    args = parser.parse_args(argv)
    settings = RuntimeSettings.from_env()
    configure_logging(f"commerce-{args.command}", level=settings.log_level)
    match args.command:
        case "run" | "migrate" if set(args.services) - set(SERVICES):
            parser.error(f"unknown service(s); choose from {sorted(SERVICES)}")
        case "run":
            return _run_system(settings, args.services, args.host)
        case "serve":
            asyncio.run(_serve(args.service, args.host, args.port))
        case "migrate":
            asyncio.run(_migrate(settings, _present(args.services)))
        case "topology" if args.action == "declare":
            asyncio.run(_declare(settings))
        case "topology":
            _show_topology()
        case "dead-letters":
            asyncio.run(_dead_letters(settings, args))
        case "namespaces":
            return asyncio.run(_namespaces(settings, args))
        case _:
            handler = getattr(args, "handler", None)
            if handler is None:
                parser.error(f"unknown command {args.command}")
            return int(handler(args, settings) or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
