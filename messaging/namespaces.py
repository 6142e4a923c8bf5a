"""Namespaces (`COMMERCE_NAMESPACE`): whole systems side by side on one broker and database.

The tests and benchmarks run each session in a namespace of its own and remove it afterwards;
a run that was killed leaves its namespace behind — its quorum queues, exchanges and schemas.
This finds namespaces by their schemas (every service of a namespace `ns` creates `<schema>_ns`)
and removes them: every exchange and queue the topology names under the namespace's prefix, and
every schema suffixed `_<ns>`. The default namespace (the SPEC's own names) is never removed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import aio_pika
import asyncpg

from messaging.settings import RuntimeSettings


async def find_namespaces(settings: RuntimeSettings, schemas: Iterable[str]) -> dict[str, int]:
    """Namespace → how many of the given service schemas it has in the database."""
    bases = "|".join(re.escape(s) for s in schemas)
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch(
            "SELECT substring(nspname FROM $1) AS namespace, count(*) AS schemas"
            " FROM pg_namespace WHERE nspname ~ $1 GROUP BY 1 ORDER BY 1",
            f"^(?:{bases})_([a-z0-9_]{{1,24}})$",
        )
    finally:
        await conn.close()
    return {row["namespace"]: row["schemas"] for row in rows}


async def remove_namespace(settings: RuntimeSettings, *, keep: Iterable[str] = ()) -> None:
    """Delete a namespace's exchanges, queues (with what they hold) and schemas.

    `keep`: other namespaces whose schemas end like this one's (`orders_my_ns` ends in `_ns`
    too): theirs are left alone."""
    if not settings.namespace:
        raise ValueError("the default namespace is the running system's: it is never removed")
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        for queue in settings.topology.all_queues():
            await channel.queue_delete(queue.name)
        for exchange in settings.topology.exchanges:
            await channel.exchange_delete(exchange.name)
    finally:
        await connection.close()
    conn = await asyncpg.connect(settings.database_url)
    try:
        schemas = await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", f"%\\_{settings.namespace}"
        )
        others = tuple(f"_{other}" for other in keep if other != settings.namespace)
        for row in schemas:
            if not row["nspname"].endswith(others):
                await conn.execute(f'DROP SCHEMA "{row["nspname"]}" CASCADE')
    finally:
        await conn.close()
