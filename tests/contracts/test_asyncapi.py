"""The committed AsyncAPI document: current with contracts/, complete, and valid under the
official AsyncAPI parser (@asyncapi/cli)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from contracts.asyncapi import build, queue_channel_id, render
from contracts.bookworm import BOOKWORM_MESSAGES
from contracts.topology import TOPOLOGY

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "docs" / "asyncapi.json"


def test_the_committed_document_is_current() -> None:
    assert DOCUMENT.read_text() == render(), (
        "docs/asyncapi.json is out of date: run `python -m contracts.asyncapi`"
    )


def test_every_queue_and_saga_message_is_in_the_document() -> None:
    document = build()
    assert document["asyncapi"].startswith("3.")
    for queue in TOPOLOGY.all_queues():
        assert queue_channel_id(queue.name) in document["channels"], queue.name
    messages = json.dumps(document["components"]["messages"])
    for name in BOOKWORM_MESSAGES:
        assert name in messages, name


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm installs @asyncapi/cli")
def test_the_official_asyncapi_parser_accepts_the_document() -> None:
    result = subprocess.run(
        [str(ROOT / "scripts" / "asyncapi_validate.sh"), str(DOCUMENT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid" in result.stdout + result.stderr
