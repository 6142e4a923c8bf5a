"""Versioned migrations: applied once, in order, safely from several processes."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from messaging import db
from tests.support import Infra, unique

V1 = db.Migration("app", 1, "things", "CREATE TABLE things (id int PRIMARY KEY);")
V2 = db.Migration("app", 2, "things_name", "ALTER TABLE things ADD COLUMN name text;")


async def drop(infra: Infra, schema: str) -> None:
    conn = await asyncpg.connect(infra.database_url)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


async def test_each_migration_applies_once_and_in_order(infra: Infra) -> None:
    schema = unique("m_")
    try:
        first = await db.prepare_schema(infra.database_url, schema, [V1])
        second = await db.prepare_schema(infra.database_url, schema, [V1, V2])
        third = await db.prepare_schema(infra.database_url, schema, [V1, V2])

        assert [m.name for m in first] == [m.name for m in db.runtime_migrations()] + ["things"]
        assert [m.name for m in second] == ["things_name"]
        assert third == []
        conn = await db.connect(infra.database_url, schema)
        try:
            await conn.execute("INSERT INTO things (id, name) VALUES (1, 'x')")
            for table in ("outbox", "inbox", "dead_letters"):
                assert await conn.fetchval("SELECT to_regclass($1)", table) is not None
        finally:
            await conn.close()
    finally:
        await drop(infra, schema)


async def test_an_edited_migration_is_refused(infra: Infra) -> None:
    schema = unique("m_")
    try:
        await db.prepare_schema(infra.database_url, schema, [V1])
        edited = db.Migration("app", 1, "things", "CREATE TABLE things (id bigint);")
        with pytest.raises(db.MigrationError, match="changed after it was applied"):
            await db.prepare_schema(infra.database_url, schema, [edited])
    finally:
        await drop(infra, schema)


async def test_replicas_starting_together_migrate_once(infra: Infra) -> None:
    schema = unique("m_")
    try:
        results = await asyncio.gather(
            *(db.prepare_schema(infra.database_url, schema, [V1, V2]) for _ in range(4))
        )
        assert sorted(len(r) for r in results) == [0, 0, 0, len(db.runtime_migrations()) + 2]
    finally:
        await drop(infra, schema)


async def test_a_missing_database_is_created(infra: Infra) -> None:
    name = f"commerce_test_{uuid.uuid4().hex[:8]}"
    dsn = infra.database_url.rsplit("/", 1)[0] + "/" + name
    # Services starting together race to create it: every one of them must come up.
    await asyncio.gather(*(db.ensure_database(dsn) for _ in range(4)))
    await db.ensure_database(dsn)  # and a later call is a no-op
    conn = await asyncpg.connect(dsn)
    await conn.close()
    admin = await asyncpg.connect(infra.database_url)
    try:
        await admin.execute(f'DROP DATABASE "{name}"')
    finally:
        await admin.close()


def test_schema_names_are_checked_before_reaching_sql() -> None:
    with pytest.raises(ValueError, match="invalid schema name"):
        db.check_schema_name("orders; DROP TABLE x")
