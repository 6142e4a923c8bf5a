"""Logging: one JSON line per record off a terminal, message context bound, secrets hidden."""

from __future__ import annotations

import json
import subprocess
import sys

from messaging.logs import redact

SCRIPT = """
import structlog
from messaging.logs import configure_logging, get_logger
configure_logging("probe", json=True)
configure_logging("ignored", json=False)  # only the first call counts
log = get_logger("probe")
with structlog.contextvars.bound_contextvars(message_id="m-1", message_event="order.placed",
                                             order_id="o-1"):
    log.info("message handled", url="amqp://guest:s3cret@rabbit:5672/")
"""


def test_log_line_is_json_with_the_message_context_and_no_secret() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )

    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert len(lines) == 1
    line = lines[0]
    assert line["msg"] == "message handled"
    assert (line["event"], line["message_id"], line["order_id"]) == ("order.placed", "m-1", "o-1")
    assert line["service"] == "probe"
    assert line["level"] == "info"
    assert "s3cret" not in done.stderr
    assert line["url"] == "amqp://guest:***@rabbit:5672/"


def test_redact_hides_passwords_only() -> None:
    assert (
        redact("postgresql://app:pw@db/x and amqp://u:p@h/")
        == "postgresql://app:***@db/x and amqp://u:***@h/"
    )
    assert (
        redact("postgresql://postgres@localhost/commerce")
        == "postgresql://postgres@localhost/commerce"
    )


def test_lines_below_the_level_are_dropped_and_the_rest_kept() -> None:
    script = (
        "from messaging.logs import configure_logging, get_logger\n"
        "configure_logging('probe', level='WARNING', json=True)\n"
        "log = get_logger('probe')\n"
        "log.info('handled'); log.warning('slow'); log.error('failed')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )

    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [(line["level"], line["msg"]) for line in lines] == [
        ("warning", "slow"),
        ("error", "failed"),
    ]
