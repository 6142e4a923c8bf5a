"""Fixtures: a real SMTP server (our aiosmtpd sink) on a free port, the service in-process with
the live broker and database, and a publisher for its input."""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY

from messaging import db
from messaging.settings import RuntimeSettings
from notification_service.bootstrap import SCHEMA
from notification_service.main import create_app
from notification_service.smtp_sink import SmtpSink
from tests.notification_service.builders import Bus, bus


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[SmtpSink]:
    """A real SMTP server that keeps what it receives; not started (see `smtp`)."""
    sink = SmtpSink(tmp_path / "mail", port=free_port())
    yield sink
    sink.stop()


@pytest.fixture
def smtp(mailbox: SmtpSink) -> SmtpSink:
    mailbox.start()
    return mailbox


FAST_MAIL = {
    "MAIL_SEND_INTERVAL_SECONDS": "0.1",
    "MAIL_RETRY_INITIAL_SECONDS": "0.1",
    "MAIL_RETRY_MAX_SECONDS": "0.4",
    "MAIL_RESOLVE_INTERVAL_SECONDS": "0.3",
}


@pytest.fixture
def env(service_env: dict[str, str], mailbox: SmtpSink) -> dict[str, str]:
    return {
        **service_env,
        **FAST_MAIL,
        "SMTP_HOST": mailbox.host,
        "SMTP_PORT": str(mailbox.port),
    }


@pytest.fixture
async def client(env: dict[str, str]) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(env)) as client:
        yield client


@pytest.fixture
async def publish(namespaced: RuntimeSettings) -> AsyncIterator[Bus]:
    async with bus(namespaced) as publisher:
        yield publisher


@pytest.fixture
async def database(namespaced: RuntimeSettings) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the service's schema, to look at its tables."""
    conn = await db.connect(namespaced.database_url, namespaced.schema(SCHEMA))
    yield conn
    with contextlib.suppress(Exception):
        await conn.close()


def mails_to(sink: SmtpSink, recipient: str) -> list[EmailMessage]:
    return [m for m in sink.messages() if m["To"] == recipient]


def parts(message: EmailMessage) -> tuple[str, str]:
    """The plain-text and HTML bodies of a multipart/alternative mail."""
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    # SMTP carries CRLF line ends; compare with the \n the templates write.
    return (
        str(text.get_content()).replace("\r\n", "\n"),
        str(html.get_content()).replace("\r\n", "\n"),
    )


async def mail_rows(conn: asyncpg.Connection, order_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM mails WHERE order_id = $1 ORDER BY id", order_id)


async def handled(conn: asyncpg.Connection, message_id: uuid.UUID) -> bool:
    """The service has handled (and committed) the message: its id is in the inbox."""
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM inbox WHERE message_id = $1)", str(message_id)
    )
    return found


def duplicates_dropped(settings: RuntimeSettings, queue: str) -> float:
    """How many copies of already handled messages the consumer of `queue` has dropped in this
    process (the runtime's `commerce_messages_total{outcome="duplicate"}`)."""
    value = REGISTRY.get_sample_value(
        "commerce_messages_total",
        {"queue": settings.topology_prefix + queue, "outcome": "duplicate"},
    )
    return value or 0.0
