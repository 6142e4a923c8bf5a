"""An embedded SMTP sink (aiosmtpd) that stores every message it receives as an `.eml` file.

SPEC §1: with no SMTP server configured, mail is never silently dropped. When `SMTP_HOST` is
unset or set to `embedded`, the notification service starts this sink on 127.0.0.1:`SMTP_PORT`
(default 1025) and sends its mail there; files land in `SMTP_SINK_DIR` (default `var/mail`),
one per message, named `<UTC time>-<random>.eml`, readable by any mail client. If the port is
already taken (a MailHog, or another replica's sink), the service logs it and sends to whatever
listens there. With a real `SMTP_HOST`, no sink is started.

Run alone: `python -m notification_service.smtp_sink [DIR] [PORT]`.
"""

from __future__ import annotations

import email
import email.policy
import logging
import socket
import sys
import threading
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class EmlWriter:
    """aiosmtpd handler: each message as it was received, plus the envelope as headers."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8")
        envelope_headers = (
            f"X-MailFrom: {envelope.mail_from}\r\nX-RcptTo: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        self.store(envelope_headers + content)
        return "250 Message accepted for delivery"

    def store(self, raw: bytes) -> Path:
        """Write atomically (a temporary name, then rename) so readers never see half a file."""
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}.eml"
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.directory / f".{name}.part"
        partial.write_bytes(raw)
        return partial.rename(self.directory / name)


def _ensure_free(host: str, port: int) -> None:
    """Raise OSError (address in use) when something listens on host:port already."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


class SmtpSink:
    """The sink on `host:port`, serving in a thread of its own (aiosmtpd's Controller)."""

    def __init__(self, directory: Path | str, *, host: str = "127.0.0.1", port: int = 1025):
        self.directory = Path(directory)
        self.host = host
        self.port = port
        self._controller: Controller | None = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        """Listen; raises OSError when the port is taken."""
        if self._controller is not None:
            return
        # aiosmtpd's Controller only notices a taken port after its whole ready timeout.
        _ensure_free(self.host, self.port)
        # aiosmtpd logs every SMTP command at INFO; a sink has nothing to say about them.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        controller = Controller(
            EmlWriter(self.directory), hostname=self.host, port=self.port, ready_timeout=10
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("*.eml"))

    def messages(self) -> list[EmailMessage]:
        """Every stored message, oldest first, parsed."""
        parsed = []
        for path in self.files():
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            parsed.append(message)
        return parsed


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0]) if args else Path("var/mail")
    port = int(args[1]) if len(args) > 1 else 1025
    sink = SmtpSink(directory, port=port)
    sink.start()
    print(f"SMTP sink on 127.0.0.1:{port}, storing mail in {directory.resolve()} (Ctrl-C stops)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sink.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
