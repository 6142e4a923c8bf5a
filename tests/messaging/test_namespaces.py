"""`commerce namespaces list|remove`: what killed test and benchmark runs leave behind, found
by its schemas and removed with its exchanges and queues — and nothing of anyone else's."""

from __future__ import annotations

import asyncio
import sys
import uuid

import aio_pika
import asyncpg
import pytest

from messaging.namespaces import remove_namespace
from messaging.settings import RuntimeSettings
from messaging.topology import declare
from tests.support import Infra, unique


async def commerce(infra: Infra, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "messaging.cli",
        "namespaces",
        *args,
        env={"AMQP_URL": infra.amqp_url, "DATABASE_URL": infra.database_url, "PATH": ""},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


async def leave_behind(settings: RuntimeSettings) -> None:
    """What a killed run leaves: its topology and schemas (a service's and a test's own)."""
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        await declare(await connection.channel(), settings.topology)
    finally:
        await connection.close()
    conn = await asyncpg.connect(settings.database_url)
    try:
        for base in ("orders", "notes"):
            await conn.execute(f"CREATE SCHEMA {settings.schema(base)}")
    finally:
        await conn.close()


async def queue_exists(settings: RuntimeSettings, name: str) -> bool:
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        try:
            await channel.declare_queue(settings.topology_prefix + name, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return False
        return True
    finally:
        await connection.close()


async def schemas_of(settings: RuntimeSettings) -> set[str]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname IN ($1, $2)",
            settings.schema("orders"),
            settings.schema("notes"),
        )
    finally:
        await conn.close()
    return {row["nspname"] for row in rows}


async def test_a_namespace_left_behind_is_listed_and_removed_alone(infra: Infra) -> None:
    name = unique("n")
    # Another namespace whose schemas end like this one's: `notes_x…_n…` ends in `_n…` too.
    other = f"x{uuid.uuid4().hex[:6]}_{name}"
    gone, kept = (
        RuntimeSettings(amqp_url=infra.amqp_url, database_url=infra.database_url, namespace=ns)
        for ns in (name, other)
    )
    try:
        await leave_behind(gone)
        await leave_behind(kept)

        code, listed = await commerce(infra, "list")
        assert code == 0, listed
        assert f"{name}\t1 of 4 service schemas" in listed.splitlines()
        assert f"{other}\t1 of 4 service schemas" in listed.splitlines()

        code, output = await commerce(infra, "remove", name)
        assert code == 0, output
        assert f"[1/1] removed {name}" in output.splitlines()

        assert not await queue_exists(gone, "inventory_order_consumer")
        assert await schemas_of(gone) == set()
        assert await queue_exists(kept, "inventory_order_consumer")
        assert await schemas_of(kept) == {f"orders_{other}", f"notes_{other}"}
        code, listed = await commerce(infra, "list")
        assert name not in listed.split()
        assert other in listed.split()
    finally:
        await remove_namespace(gone)
        await remove_namespace(kept)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("remove",), "name the namespaces to remove, or --all"),
        (("remove", "nosuchnamespace1"), "no such namespace: nosuchnamespace1"),
        (("list", "extra"), "`namespaces list` takes no names"),
    ],
)
async def test_what_cannot_be_done_is_refused_with_a_reason(
    infra: Infra, args: tuple[str, ...], message: str
) -> None:
    code, output = await commerce(infra, *args)
    assert code == 2
    assert message in output


async def test_the_default_namespace_is_never_removed(infra: Infra) -> None:
    default = RuntimeSettings(amqp_url=infra.amqp_url, database_url=infra.database_url)
    with pytest.raises(ValueError, match="never removed"):
        await remove_namespace(default)
