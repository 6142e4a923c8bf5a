"""Sending mail over SMTP (aiosmtplib): one session per batch, one mail at a time, one outcome
per mail.

How an attempt can end (the domain's `Failure`):

- the server is unreachable, loses the session or refuses the session itself — connection,
  greeting (e.g. 554), EHLO, STARTTLS, authentication (e.g. 535), our sender, a 421, a
  timeout: TEMPORARY, and the session is *down*: every mail not sent yet gets that same outcome
  without another word to the server. None of this is the mail's fault; it is waited out.
- the server refuses this mail: 5xx to its recipient or its content is REJECTED (counted
  towards giving it up); a 4xx is TEMPORARY. The session goes on with the next mail.
- the mail cannot be sent at all: it cannot be built (an address the email package refuses,
  such as `ü@example.com` or `a..b@example.com`), the client refuses it, or anything else goes
  wrong with this one mail: UNSENDABLE. The session goes on (after an RSET).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, parseaddr

import aiosmtplib

from notification_service.adapters.repository import DueMail
from notification_service.config import SmtpSettings
from notification_service.domain.mail import Failure

#: The server closes the session (RFC 5321 4.2.3); any command may be answered so.
_CLOSING = 421


@dataclass(frozen=True, slots=True)
class Outcome:
    """`error` None: accepted by the server. Otherwise `failure` says what kind of failure."""

    error: str | None = None
    failure: Failure | None = None

    @property
    def sent(self) -> bool:
        return self.error is None


SENT = Outcome()


def _domain_of(sender: str) -> str:
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2] or "localhost"


def _headers(mail: DueMail, sender: str) -> list[tuple[str, str]]:
    digest = hashlib.sha256(mail.dedup_key.encode()).hexdigest()[:32]
    headers = [
        ("Date", formatdate(localtime=False, usegmt=True)),
        ("Message-ID", f"<{digest}@{_domain_of(sender)}>"),
        ("X-Commerce-Mail-Id", str(mail.id)),
    ]
    if mail.order_id is not None:
        headers.append(("X-Commerce-Order-Id", str(mail.order_id)))
    return headers


def build_message(mail: DueMail, sender: str) -> EmailMessage:
    """A multipart/alternative mail (text, then HTML). Its Message-ID is derived from the mail's
    key, so a mail sent again after a crash carries the same id and receivers can drop it.

    Raises (email.errors.*, ValueError) for a recipient the email package cannot write."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = Address(addr_spec=mail.recipient)
    message["Subject"] = mail.subject
    for name, value in _headers(mail, sender):
        message[name] = value
    message.set_content(mail.text_body)
    message.add_alternative(mail.html_body, subtype="html")
    return message


def build_ascii_message(mail: DueMail, sender: str) -> bytes | None:
    """`build_message` as the bytes to send, for the usual mail: both addresses ASCII (None
    otherwise: such a mail needs the server's SMTPUTF8, which `send_message` negotiates).

    Written with the standard library's compat32 MIME classes, with non-ASCII names and subject
    encoded (RFC 2047), in a third of the time the email policy of `build_message` takes to
    build and flatten a mail. Raises as `build_message` does for a recipient the email package
    refuses."""
    name, address = parseaddr(sender)
    if not (mail.recipient.isascii() and address.isascii()):
        return None
    recipient = Address(addr_spec=mail.recipient).addr_spec
    message = MIMEMultipart("alternative")
    message["From"] = formataddr((name, address), charset="utf-8")
    message["To"] = recipient
    charset = "us-ascii" if mail.subject.isascii() else "utf-8"
    message["Subject"] = Header(mail.subject, charset).encode()
    for header, value in _headers(mail, sender):
        message[header] = value
    message.attach(MIMEText(mail.text_body, "plain", "utf-8"))
    message.attach(MIMEText(mail.html_body, "html", "utf-8"))
    return message.as_bytes()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _answer(code: int) -> Failure:
    return Failure.REJECTED if code >= 500 else Failure.TEMPORARY


class SmtpSession:
    """One SMTP session; `send` one mail after the other. Once the session is down (or was
    never up), `send` answers every mail with the outcome that brought it down."""

    def __init__(
        self, client: aiosmtplib.SMTP | None, sender: str, down: Outcome | None = None
    ) -> None:
        if client is None and down is None:
            raise ValueError("a session without a client is down")
        self._client = client
        self._sender = sender
        self._down = down

    @property
    def down(self) -> Outcome | None:
        """The outcome of every further mail, once the server is out of reach; else None."""
        return self._down

    async def send(self, mail: DueMail) -> Outcome:
        if self._down is not None:
            return self._down
        assert self._client is not None
        try:
            raw = build_ascii_message(mail, self._sender)
            message = build_message(mail, self._sender) if raw is None else None
        except Exception as exc:
            return Outcome(f"cannot build the mail: {_describe(exc)}", Failure.UNSENDABLE)
        try:
            if message is not None:
                await self._client.send_message(message)
            else:
                assert raw is not None
                await self._client.sendmail(parseaddr(self._sender)[1], [mail.recipient], raw)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            return Outcome(_describe(exc), _answer(min(codes, default=500)))
        except (aiosmtplib.SMTPSenderRefused, aiosmtplib.SMTPHeloError) as exc:
            return self._lose(exc)  # the server refuses us, not this mail
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == _CLOSING:
                return self._lose(exc)
            return Outcome(_describe(exc), _answer(exc.code))
        except aiosmtplib.SMTPNotSupported as exc:
            return Outcome(_describe(exc), Failure.REJECTED)  # e.g. needs SMTPUTF8
        except (aiosmtplib.SMTPException, OSError) as exc:
            return self._lose(exc)  # disconnected, timed out
        except Exception as exc:
            await self._reset()
            return Outcome(f"cannot send the mail: {_describe(exc)}", Failure.UNSENDABLE)
        return SENT

    def _lose(self, exc: BaseException) -> Outcome:
        self._down = Outcome(_describe(exc), Failure.TEMPORARY)
        return self._down

    async def _reset(self) -> None:
        """After an error of unknown kind, make sure the server is ready for the next mail."""
        assert self._client is not None
        try:
            await self._client.rset()
        except (aiosmtplib.SMTPException, OSError) as exc:
            self._lose(exc)


class SmtpMailer:
    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings

    @property
    def longest_send(self) -> float:
        """Seconds one mail may take at most, once the session is up."""
        return self._settings.longest_send

    def _client(self) -> aiosmtplib.SMTP:
        s = self._settings
        return aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            username=s.username,
            password=s.password,
            timeout=s.timeout,
            start_tls=s.start_tls,
            use_tls=False,
        )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[SmtpSession]:
        """A session to send a batch in. A server that cannot be reached or refuses the
        session (greeting, EHLO, STARTTLS, authentication) raises nothing: the session is
        `down` with that outcome."""
        client = self._client()
        down: Outcome | None = None
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            down = Outcome(_describe(exc), Failure.TEMPORARY)
            client.close()
        try:
            yield SmtpSession(client if down is None else None, self._settings.sender, down)
        finally:
            if down is None and client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()
