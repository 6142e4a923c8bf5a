"""Postgres plumbing: the database, one schema per service, pools, versioned migrations."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeAlias, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

from messaging.logs import get_logger, redact

log = get_logger(__name__)

T = TypeVar("T")

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_MIGRATION_FILE = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

Pool = asyncpg.Pool
#: What handlers get: a plain connection or one borrowed from a pool.
Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy


def check_schema_name(schema: str) -> str:
    """Schemas are interpolated into SQL (search_path, CREATE SCHEMA): allow plain names only."""
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(f"invalid schema name {schema!r}: use lower-case letters, digits and _")
    return schema


async def ensure_database(dsn: str) -> None:
    """Create the database named in `dsn` if it does not exist (SPEC §1)."""
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await conn.close()
        return
    parts = urlsplit(dsn)
    name = parts.path.lstrip("/")
    admin = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        log.info("database created", database=name, dsn=redact(dsn))
    except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
        # Another process won the race: Postgres reports a concurrent CREATE DATABASE as a
        # unique violation on pg_database rather than as a duplicate database.
        pass
    finally:
        await admin.close()


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(
            kind,
            encoder=lambda v: msgspec.json.encode(v).decode(),
            decoder=msgspec.json.decode,
            schema="pg_catalog",
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool `reset`: nothing beyond asyncpg's own rollback of an open transaction. The default
    (RESET ALL, UNLISTEN *, advisory unlock, CLOSE ALL) costs a round trip on every release and
    undoes nothing: the services set no session state on pooled connections (search_path comes
    with the connection, advisory locks are transaction-level, LISTEN has its own connection)."""


async def create_pool(dsn: str, schema: str, *, min_size: int = 2, max_size: int = 10) -> Pool:
    """A pool whose connections resolve unqualified names in the service's own schema."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        server_settings={"search_path": check_schema_name(schema), "application_name": schema},
    )
    return pool


async def connect(dsn: str, schema: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(
        dsn, server_settings={"search_path": check_schema_name(schema), "application_name": schema}
    )
    await _init_connection(conn)
    return conn


@dataclass(frozen=True, slots=True)
class Migration:
    component: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(component: str, package: str, folder: str = "migrations") -> list[Migration]:
    """The `NNNN_name.sql` files of `package/folder`, in version order."""
    found: list[Migration] = []
    for entry in resources.files(package).joinpath(folder).iterdir():
        match = _MIGRATION_FILE.fullmatch(entry.name)
        if match:
            found.append(
                Migration(
                    component,
                    int(match["version"]),
                    match["name"],
                    entry.read_text(encoding="utf-8"),
                )
            )
    return sorted(found, key=lambda m: m.version)


def runtime_migrations() -> list[Migration]:
    """The tables the messaging runtime keeps in every service schema (inbox, outbox, …)."""
    return load_migrations("messaging", "messaging")


class MigrationError(RuntimeError):
    pass


async def migrate(
    conn: asyncpg.Connection, schema: str, migrations: Iterable[Migration]
) -> list[Migration]:
    """Apply what is not applied yet, each in its own transaction, under an advisory lock so
    replicas starting together do not race. Refuses to run when an applied file was edited."""
    check_schema_name(schema)
    applied: list[Migration] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"migrate:{schema}")
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(f"""
            CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
                component text NOT NULL, version int NOT NULL, name text NOT NULL,
                checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (component, version))""")
        done = {
            (r["component"], r["version"]): r["checksum"]
            for r in await conn.fetch(
                f"SELECT component, version, checksum FROM {schema}.schema_migrations"
            )
        }
        for migration in migrations:
            key = (migration.component, migration.version)
            if key in done:
                if done[key] != migration.checksum:
                    raise MigrationError(
                        f"{schema}: migration {migration.component} {migration.version:04d}_"
                        f"{migration.name} was changed after it was applied; add a new one"
                    )
                continue
            async with conn.transaction():
                await conn.execute(f"SET LOCAL search_path TO {schema}")
                await conn.execute(migration.sql)
                await conn.execute(
                    f"INSERT INTO {schema}.schema_migrations (component, version, name, checksum)"
                    " VALUES ($1, $2, $3, $4)",
                    migration.component,
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            applied.append(migration)
            log.info(
                "migration applied",
                schema=schema,
                component=migration.component,
                version=migration.version,
                migration=migration.name,
            )
    return applied


async def prepare_schema(dsn: str, schema: str, migrations: Sequence[Migration]) -> list[Migration]:
    """Create the database if needed and bring `schema` up to date: the start-up step and the
    `commerce migrate` command share it."""
    await ensure_database(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn, schema, [*runtime_migrations(), *migrations])
    finally:
        await conn.close()


class DatabaseUnavailable(ConnectionError):
    """No connection to Postgres could be had: wait and try again, the work is not at fault."""


_CONNECTION_ERRORS = (
    DatabaseUnavailable,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.ConnectionDoesNotExistError,
)


def is_connection_error(exc: BaseException) -> bool:
    """Errors that say Postgres is unreachable or restarting, not that the work is wrong.

    A bare OSError is not one of them: a handler's own network call may raise it. Failures to
    get a connection at all are turned into `DatabaseUnavailable` by `acquire`."""
    return isinstance(exc, _CONNECTION_ERRORS)


async def outlast_outage(work: Callable[[], Awaitable[T]], *, waiting: str, **context: object) -> T:
    """Run `work` until it gets through: while it fails because Postgres is unreachable, log
    `waiting` (with `context`) and try again, 0.2 s later at first, at most 5 s apart; any
    other error is raised. For work that must not be given up for an outage, such as recording
    what has already happened elsewhere."""
    delay = 0.2
    while True:
        try:
            return await work()
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            log.warning(waiting, error=repr(exc), **context)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


@contextlib.asynccontextmanager
async def acquire(pool: Pool) -> AsyncIterator[Connection]:
    """`pool.acquire()`, with "cannot connect" reported as `DatabaseUnavailable`."""
    try:
        conn = await pool.acquire(timeout=10)
    except (OSError, TimeoutError, *_CONNECTION_ERRORS) as exc:
        raise DatabaseUnavailable(repr(exc)) from exc
    try:
        yield conn
    finally:
        await pool.release(conn)


def row_dict(record: asyncpg.Record) -> dict[str, Any]:
    return dict(record.items())
