"""Mail templates: each renders a subject, a plain-text body and an HTML body. Pure: no I/O.

Templates are small functions over plain strings rather than a template engine: every value
that reaches the HTML body goes through `html.escape`, in one place (`_Body.html`).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from notification_service.domain.mail import Contact, Template

SHOP = "BookWorm Commerce"

#: The values a template reads (a mail's stored params).
Values = Mapping[str, str | None]


@dataclass(frozen=True, slots=True)
class RenderedMail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What the order events told us about an order, for nicer mail (number, currency)."""

    order_number: str | None = None
    currency: str | None = None


@dataclass(slots=True)
class _Body:
    """Paragraphs and `label: value` facts, written out once as text and once as HTML."""

    greeting: str
    paragraphs: list[str] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)
    link: tuple[str, str] | None = None

    def text(self) -> str:
        blocks = [self.greeting, *self.paragraphs]
        lines = [f"{label}: {value}" for label, value in self.facts]
        if self.link is not None:
            lines.append(f"{self.link[0]}: {self.link[1]}")
        if lines:
            blocks.append("\n".join(lines))
        blocks.append(f"-- {SHOP}")
        return "\n\n".join(blocks) + "\n"

    def html(self, title: str) -> str:
        e = html.escape
        parts = [
            "<!DOCTYPE html>",
            f'<html><head><meta charset="utf-8"><title>{e(title)}</title></head><body>',
            f"<p>{e(self.greeting)}</p>",
        ]
        parts += [f"<p>{e(p)}</p>" for p in self.paragraphs]
        if self.facts:
            rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in self.facts)
            parts.append(f"<table>{rows}</table>")
        if self.link is not None:
            label, url = self.link
            parts.append(f'<p><a href="{e(url, quote=True)}">{e(label)}</a></p>')
        parts.append(f"<p>-- {e(SHOP)}</p></body></html>")
        return "\n".join(parts) + "\n"


def money(amount: str | None, currency: str | None) -> str | None:
    if amount is None:
        return None
    try:
        value = Decimal(amount).quantize(Decimal("0.01"))
    except InvalidOperation:
        return amount
    return f"{value} {currency}" if currency else str(value)


def _greeting(contact: Contact) -> str:
    return f"Hello {contact.full_name}," if contact.full_name else "Hello,"


def _order(facts: OrderFacts) -> str:
    """`order ORD-2025-0001`, or just `order` before the order events told us its number."""
    return f"order {facts.order_number}" if facts.order_number else "order"


def _fact(body: _Body, label: str, value: str | None) -> None:
    if value:
        body.facts.append((label, value))


Renderer = Callable[[Values, Contact, OrderFacts], tuple[str, _Body]]


def _order_created(p: Values, c: Contact, o: OrderFacts) -> tuple[str, _Body]:
    body = _Body(_greeting(c), [f"Thank you for shopping with us: your {_order(o)} is created."])
    _fact(body, "Order number", o.order_number)
    _fact(body, "Items", p.get("items_count"))
    _fact(body, "Total", money(p.get("total"), p.get("currency") or o.currency))
    return f"Your {_order(o)} is created", body


def _order_received(p: Values, c: Contact, o: OrderFacts) -> tuple[str, _Body]:
    body = _Body(
        _greeting(c),
        [f"We received your {_order(o)} and are reserving your items. We will write again "
         "once it is confirmed."],
    )  # fmt: skip
    _fact(body, "Order number", o.order_number)
    _fact(body, "Total", money(p.get("total"), o.currency))
    return f"We received your {_order(o)}", body


def _order_confirmed(p: Values, c: Contact, o: OrderFacts) -> tuple[str, _Body]:
    body = _Body(_greeting(c), [f"Payment received: your {_order(o)} is confirmed."])
    _fact(body, "Order number", p.get("order_number") or o.order_number)
    _fact(body, "Items", p.get("items_count"))
    _fact(body, "Confirmed at", p.get("confirmed_at"))
    return f"Your {_order(o)} is confirmed", body


def _order_shipped(p: Values, c: Contact, o: OrderFacts) -> tuple[str, _Body]:
    body = _Body(_greeting(c), [f"Good news: your {_order(o)} is on its way."])
    _fact(body, "Carrier", p.get("carrier"))
    _fact(body, "Tracking number", p.get("tracking_number"))
    _fact(body, "Estimated delivery", p.get("estimated_delivery"))
    return f"Your {_order(o)} has shipped", body


def _order_delivered(p: Values, c: Contact, o: OrderFacts) -> tuple[str, _Body]:
    body = _Body(_greeting(c), [f"Your {_order(o)} was delivered. Enjoy!"])
    _fact(body, "Delivered at", p.get("delivered_at"))
    return f"Your {_order(o)} was delivered", body


def _order_completed(p: Values, c: Contact, o: OrderFacts) -> tuple[str, _Body]:
    body = _Body(_greeting(c), [f"Your {_order(o)} is complete. Thank you!"])
    _fact(body, "Total", money(p.get("total"), o.currency))
    return f"Your {_order(o)} is complete", body


def _order_cancelled(p: Values, c: Contact, o: OrderFacts) -> tuple[str, _Body]:
    body = _Body(
        _greeting(c),
        [f"Your {_order(o)} was cancelled. Any payment will be refunded."],
    )
    _fact(body, "Total", money(p.get("total"), o.currency))
    return f"Your {_order(o)} was cancelled", body


def _return_approved(p: Values, c: Contact, o: OrderFacts) -> tuple[str, _Body]:
    rma = p.get("rma_number") or "your return"
    body = _Body(
        _greeting(c),
        [f"Your return {rma} for your {_order(o)} is approved. Please print the label and send "
         "the items back; we refund once they arrive."],
    )  # fmt: skip
    _fact(body, "RMA number", p.get("rma_number"))
    _fact(body, "Refund", money(p.get("refund_amount"), o.currency))
    label = p.get("return_shipping_label_url")
    if label:
        body.link = ("Return shipping label", label)
    return f"Your return {rma} is approved", body


TEMPLATES: dict[Template, Renderer] = {
    Template.ORDER_CREATED: _order_created,
    Template.ORDER_RECEIVED: _order_received,
    Template.ORDER_CONFIRMED: _order_confirmed,
    Template.ORDER_SHIPPED: _order_shipped,
    Template.ORDER_DELIVERED: _order_delivered,
    Template.ORDER_COMPLETED: _order_completed,
    Template.ORDER_CANCELLED: _order_cancelled,
    Template.RETURN_APPROVED: _return_approved,
}


def render(template: Template, params: Values, contact: Contact, order: OrderFacts) -> RenderedMail:
    subject, body = TEMPLATES[template](params, contact, order)
    return RenderedMail(subject=subject, text=body.text(), html=body.html(subject))
