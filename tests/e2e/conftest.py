"""End-to-end: every service as a process of its own (as in production), one namespace for the
session, a real SMTP sink for the mail."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from messaging.cli import SERVICES
from messaging.settings import RuntimeSettings
from tests.support import Infra, eventually, remove_namespace, unique


def _die_with_the_tests() -> None:
    """In the child, before exec: on Linux, SIGTERM when the test process dies (even by
    SIGKILL), so no service outlives an interrupted run and keeps consuming its queues."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class MailSink:
    """An aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(message_from_bytes(envelope.original_content or envelope.content))
        return "250 OK"


@pytest.fixture(scope="session")
def mail() -> Iterator[tuple[MailSink, int]]:
    sink = MailSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, port
    controller.stop()


@dataclass
class System:
    urls: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def start(self, name: str) -> None:
        port = self.urls[name].rsplit(":", 1)[1]
        self.processes[name] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "messaging.cli",
                "serve",
                name,
                "--host",
                "127.0.0.1",
                "--port",
                port,
            ],
            env=self.env,
            preexec_fn=_die_with_the_tests,
        )

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes[name]
        process.send_signal(sig)
        process.wait(timeout=30)

    async def wait_ready(self, *names: str, timeout: float = 90) -> None:
        async with httpx.AsyncClient() as client:
            for name in names or tuple(self.urls):

                async def ready(url: str = self.urls[name], name: str = name) -> int:
                    code = self.processes[name].poll()
                    if code is not None:
                        pytest.fail(f"{name} exited with {code} before it was ready")
                    try:
                        return (await client.get(f"{url}/ready")).status_code
                    except httpx.HTTPError:
                        return 0

                await eventually(
                    ready, lambda status: status == 200, timeout=timeout, interval=0.25
                )


@pytest.fixture(scope="session")
async def e2e_settings(infra: Infra) -> AsyncIterator[RuntimeSettings]:
    """A namespace of the end-to-end system's own: its service processes must not compete with
    the in-process services of the other tests for the session namespace's queues."""
    settings = RuntimeSettings(
        amqp_url=infra.amqp_url, database_url=infra.database_url, namespace=unique("e")
    )
    yield settings
    await remove_namespace(settings)


@pytest.fixture(scope="session")
async def system(
    service_env: dict[str, str], e2e_settings: RuntimeSettings, mail: tuple[MailSink, int]
) -> AsyncIterator[System]:
    missing = [name for name, entry in SERVICES.items() if not entry.present]
    if missing:
        pytest.skip(f"services not in this build yet: {', '.join(missing)}")
    _, smtp_port = mail
    env = {
        **os.environ,
        **service_env,
        "COMMERCE_NAMESPACE": e2e_settings.namespace,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "LOG_LEVEL": "WARNING",
    }
    urls = {name: f"http://127.0.0.1:{free_port()}" for name in SERVICES}
    running = System(urls=urls, env=env)
    for name in SERVICES:
        running.start(name)
    try:
        await running.wait_ready()
        yield running
    finally:
        for process in running.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in running.processes.values():
            try:
                await asyncio.to_thread(process.wait, 20)
            except subprocess.TimeoutExpired:
                process.kill()
