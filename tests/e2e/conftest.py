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
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from messaging.cli import SERVICES
from messaging.namespaces import remove_namespace
from messaging.settings import RuntimeSettings
from tests.support import ADMIN_KEY, Infra, auth, eventually, unique


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


class Shop:
    """HTTP calls of a test against the running system."""

    def __init__(self, system: System, http: httpx.AsyncClient) -> None:
        self.urls = system.urls
        self.http = http

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        body: Any = None,
        key: str | None = None,
        *,
        retry_for: float = 0,
    ) -> Any:
        """One request. With `retry_for`, a lost connection or a 5xx is tried again for that
        long under the same Idempotency-Key — what a careful client does during an outage, and
        safe: a request that did commit answers its first response again."""
        headers = {**(auth(key) if key else {}), "Idempotency-Key": str(uuid.uuid4())}
        deadline = time.monotonic() + retry_for
        while True:
            try:
                response = await self.http.request(
                    method, self.urls[service] + path, json=body, headers=headers
                )
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
            else:
                if response.status_code < 500 or time.monotonic() > deadline:
                    break
            await asyncio.sleep(0.5)
        assert response.status_code < 400, f"{method} {path}: {response.text}"
        return response.json()

    async def stock_of(self, sku: str) -> dict[str, int]:
        stock = await self.call("inventory", "GET", f"/stock/{sku}")
        (bin_,) = stock["bins"]
        return {"onHand": bin_["onHand"], "reserved": bin_["reserved"]}

    async def order_status(self, order_id: str) -> str:
        status: str = (await self.call("order", "GET", f"/orders/{order_id}"))["status"]
        return status

    async def saga(self, order_id: str) -> dict[str, Any]:
        response = await self.http.get(
            f"{self.urls['finance']}/sagas/{order_id}", headers=auth(ADMIN_KEY)
        )
        saga: dict[str, Any] = response.json() if response.status_code == 200 else {}
        return saga

    async def summary(self) -> dict[str, Any]:
        today = datetime.now(UTC).date()
        span = f"from={today - timedelta(days=1)}&to={today + timedelta(days=1)}"
        result: dict[str, Any] = await self.call(
            "notification", "GET", f"/analytics/summary?{span}"
        )
        totals: dict[str, Any] = result["totals"]
        return totals

    async def stocked_checkout(
        self, quantity: int, unit_price: str
    ) -> tuple[str, str, dict[str, Any], str]:
        """A bin with 10 of a new SKU, then a cart of `quantity` checked out: (sku, bin, order,
        customer e-mail)."""
        sku, bin_name, email = unique("sku-"), unique("wh-"), f"{unique('c')}@example.com"
        await self.call("inventory", "POST", "/bins", {"name": bin_name, "type": "Primary"})
        await self.call(
            "inventory",
            "POST",
            f"/bins/{bin_name}/items",
            {"skuId": sku, "atpQty": 10, "lowStockThreshold": 2},
        )
        cart = await self.call("order", "POST", "/carts", {"customer_id": unique("cust-")})
        await self.call(
            "order",
            "POST",
            f"/carts/{cart['cart_id']}/items",
            {"variant_id": sku, "quantity": quantity, "unit_price": float(unit_price)},
        )
        order = await self.call(
            "order",
            "POST",
            f"/carts/{cart['cart_id']}/checkout",
            {"email": email, "full_name": "Ada Lovelace", "preferred_warehouse_id": bin_name},
        )
        return sku, bin_name, order, email

    async def pay(self, order_id: str) -> None:
        payment = await self.call(
            "order",
            "POST",
            f"/orders/{order_id}/payments",
            {"payment_method": "card", "card_last4": "4242"},
        )
        await self.call("order", "POST", f"/payments/{payment['payment_id']}/succeed", {})


@pytest.fixture
async def shop(system: System) -> AsyncIterator[Shop]:
    async with httpx.AsyncClient(headers=auth(), timeout=30) as http:
        yield Shop(system, http)


def mails_to(sink: MailSink, email: str) -> list[str]:
    return [str(m["Subject"]) for m in sink.messages if m["To"] == email]


async def now(value: Any) -> Any:
    """`value` as an awaitable, for `eventually` over plain data."""
    return value
