"""The mail as written for the server: the usual (ASCII addresses) path and the general one
carry the same headers and parts, as a reader of the mail sees them."""

from __future__ import annotations

import email
import email.policy
import uuid
from email.errors import InvalidHeaderDefect
from email.message import EmailMessage

import pytest

from notification_service.adapters.repository import DueMail
from notification_service.adapters.smtp import build_ascii_message, build_message

SENDER = "Librería Ñandú <orders@commerce.local>"


def due(recipient: str = "ada@example.com", subject: str = "Tu pedido — recibido") -> DueMail:
    return DueMail(
        id=7,
        dedup_key="order_received:42",
        order_id=uuid.uuid4(),
        recipient=recipient,
        subject=subject,
        text_body="Hola Ada Pérez,\nTotal: 42.50 €\n" + "línea\n" * 200,
        html_body="<p>Hola Ada P&eacute;rez</p><p>Total: 42.50 €</p>",
        attempts=0,
        rejections=0,
    )


def read(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def seen(message: EmailMessage) -> dict[str, object]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    return {
        "from": str(message["From"]),
        "to": str(message["To"]),
        "subject": str(message["Subject"]),
        "message_id": message["Message-ID"],
        "ids": (message["X-Commerce-Mail-Id"], message["X-Commerce-Order-Id"]),
        "type": message.get_content_type(),
        # Line endings are the transport's (CRLF on the wire); a final one may be added.
        "text": text.get_content().replace("\r\n", "\n").rstrip("\n"),
        "html": html.get_content().replace("\r\n", "\n").rstrip("\n"),
    }


@pytest.mark.parametrize("subject", ["Tu pedido — recibido", "We received your order"])
def test_both_ways_write_the_same_mail(subject: str) -> None:
    mail = due(subject=subject)
    raw = build_ascii_message(mail, SENDER)
    assert raw is not None
    assert raw.isascii()  # 7-bit clean: names and subject encoded, parts in base64

    fast = seen(read(raw))
    general = seen(read(build_message(mail, SENDER).as_bytes(policy=email.policy.SMTP)))
    assert fast == general
    assert fast["from"] == SENDER
    assert fast["subject"] == subject
    assert fast["type"] == "multipart/alternative"


def test_a_non_ascii_address_takes_the_general_way() -> None:
    assert build_ascii_message(due(recipient="ada@bücher.example"), SENDER) is None
    assert build_ascii_message(due(), "Shop <pedidos@tienda.españa>") is None


def test_an_address_the_email_package_refuses_is_refused_the_same_way() -> None:
    for build in (build_ascii_message, build_message):
        with pytest.raises(InvalidHeaderDefect):
            build(due(recipient="a..b@example.com"), SENDER)
