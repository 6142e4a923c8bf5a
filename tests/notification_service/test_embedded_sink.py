"""The embedded SMTP sink: started when no SMTP server is configured; mail lands as .eml."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from notification_service.config import Settings
from notification_service.main import create_app
from notification_service.smtp_sink import SmtpSink
from tests.notification_service.builders import Bus, email, place_order
from tests.notification_service.conftest import FAST_MAIL, free_port, mails_to, parts
from tests.support import eventually


def test_no_smtp_host_or_the_word_embedded_selects_the_embedded_sink() -> None:
    assert Settings.from_env({}).smtp.embedded
    assert Settings.from_env({}).smtp.port == 1025
    embedded = Settings.from_env({"SMTP_HOST": "embedded", "SMTP_PORT": "2525"}).smtp
    assert (embedded.embedded, embedded.host, embedded.port) == (True, "127.0.0.1", 2525)
    real = Settings.from_env({"SMTP_HOST": "mail.example.com", "SMTP_PASSWORD": "s3cret"}).smtp
    assert (real.embedded, real.host) == (False, "mail.example.com")
    assert "s3cret" not in repr(real)


async def test_with_smtp_host_embedded_the_service_stores_mail_as_eml_files(
    service_env: dict[str, str], publish: Bus, tmp_path: Path
) -> None:
    directory = tmp_path / "var-mail"
    env = {
        **service_env,
        **FAST_MAIL,
        "SMTP_HOST": "embedded",
        "SMTP_PORT": str(free_port()),
        "SMTP_SINK_DIR": str(directory),
    }
    customer = email()
    async with AsyncTestClient(app=create_app(env)):
        await publish.command(place_order(uuid.uuid4(), customer, "Eml Reader"))
        reader = SmtpSink(directory)  # not started: only reads the files
        [mail] = await eventually(lambda: _now(mails_to(reader, customer)), lambda m: len(m) == 1)
    # (Other mail of the session's namespace may land here too: only ours is counted.)
    assert any(customer in path.read_text() for path in directory.glob("*.eml"))
    assert mail["X-RcptTo"] == customer
    text, html = parts(mail)
    assert "Hello Eml Reader," in text
    assert "<p>Hello Eml Reader,</p>" in html


async def test_when_the_port_is_taken_the_service_sends_to_what_listens_there(
    service_env: dict[str, str], publish: Bus, smtp: SmtpSink, tmp_path: Path
) -> None:
    env = {**service_env, **FAST_MAIL, "SMTP_PORT": str(smtp.port)}
    env.pop("SMTP_HOST", None)
    env["SMTP_SINK_DIR"] = str(tmp_path / "unused")
    customer = email()
    async with AsyncTestClient(app=create_app(env)):
        await publish.command(place_order(uuid.uuid4(), customer, None))
        await eventually(lambda: _now(mails_to(smtp, customer)), lambda m: len(m) == 1)
    assert not (tmp_path / "unused").exists()


async def _now(value: Any) -> Any:
    return value
