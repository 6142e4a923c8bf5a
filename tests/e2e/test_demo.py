"""`make demo` (scripts/demo.py) against the four services as processes: it must walk its
checkout to the end, print the trail of the messages that flowed and the mail that was sent."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from tests.e2e.conftest import System

DEMO = Path(__file__).parents[2] / "scripts" / "demo.py"


async def test_the_demo_shows_a_whole_checkout_and_its_mail(system: System) -> None:
    env = {
        **system.env,
        "ORDER_URL": system.urls["order"],
        "INVENTORY_URL": system.urls["inventory"],
        "NOTIFICATION_URL": system.urls["notification"],
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(DEMO),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=150)
    text = output.decode()
    assert process.returncode == 0, text

    trail, _, mail = text.partition("mail for the order:")
    assert mail, text
    for routed in (
        "order.created",
        "order.placed",
        "inventory.reservation.created",
        "payment.succeeded",
        "order.confirmed",
        "order.shipped",
        "inventory.stock.deducted",
        "order.delivered",
        "CompleteOrderCommand",
    ):
        assert routed in trail, routed
    # The namespace prefix is not shown: exchanges appear under their contract names.
    assert system.env["COMMERCE_NAMESPACE"] not in trail
    sent = re.findall(r"\[sent\] to ada@example\.com: (.+)", mail)
    assert len(sent) >= 2, mail
    assert re.search(r"order \S+: \d+ messages seen", mail), mail
