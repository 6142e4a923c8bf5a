"""Sending mail over SMTP (aiosmtplib): one session per batch, one outcome per mail."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

import aiosmtplib

from notification_service.adapters.repository import DueMail
from notification_service.config import SmtpSettings


@dataclass(frozen=True, slots=True)
class Outcome:
    """`error` None: accepted by the server. `rejected`: the server refused this mail (5xx),
    as opposed to being unreachable or failing temporarily."""

    error: str | None = None
    rejected: bool = False

    @property
    def sent(self) -> bool:
        return self.error is None


def _domain_of(sender: str) -> str:
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2] or "localhost"


def build_message(mail: DueMail, sender: str) -> EmailMessage:
    """A multipart/alternative mail (text, then HTML). Its Message-ID is derived from the mail's
    key, so a mail sent again after a crash carries the same id and receivers can drop it."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = Address(addr_spec=mail.recipient)
    message["Subject"] = mail.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    digest = hashlib.sha256(mail.dedup_key.encode()).hexdigest()[:32]
    message["Message-ID"] = f"<{digest}@{_domain_of(sender)}>"
    message["X-Commerce-Mail-Id"] = str(mail.id)
    if mail.order_id is not None:
        message["X-Commerce-Order-Id"] = str(mail.order_id)
    message.set_content(mail.text_body)
    message.add_alternative(mail.html_body, subtype="html")
    return message


def _rejected(exc: Exception) -> bool:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return all(r.code >= 500 for r in exc.recipients)
    return isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code >= 500


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


class SmtpMailer:
    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings

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

    async def send(self, mails: list[DueMail]) -> list[Outcome]:
        """Send `mails` in one SMTP session. A lost or unreachable server fails the mails not
        sent yet (to be retried); a refused mail fails alone."""
        if not mails:
            return []
        client = self._client()
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            return [Outcome(_describe(exc), rejected=_rejected(exc))] * len(mails)
        outcomes: list[Outcome] = []
        try:
            for mail in mails:
                try:
                    await client.send_message(build_message(mail, self._settings.sender))
                except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError):
                    raise
                except aiosmtplib.SMTPException as exc:
                    outcomes.append(Outcome(_describe(exc), rejected=_rejected(exc)))
                else:
                    outcomes.append(Outcome())
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
            lost = Outcome(_describe(exc))
            outcomes += [lost] * (len(mails) - len(outcomes))
        finally:
            if client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()
        return outcomes
