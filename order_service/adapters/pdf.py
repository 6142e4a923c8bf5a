"""Invoice PDFs with reportlab: header, seller, billing and shipping addresses, order lines,
totals."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from decimal import Decimal

import asyncpg
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from order_service.domain.rules import money

Record = asyncpg.Record


def _amount(value: Decimal, currency: str) -> str:
    return f"{money(value):,.2f} {currency}"


def render_invoice(
    invoice: Record, order: Record, items: Sequence[Record], *, seller: str
) -> bytes:
    buffer = io.BytesIO()
    styles = getSampleStyleSheet()
    currency = invoice["currency"]
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        title=f"Invoice {invoice['invoice_number']}",
        author=seller,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
    )
    issued = invoice["issued_at"].strftime("%Y-%m-%d")
    story = [
        Paragraph(f"Invoice {invoice['invoice_number']}", styles["Title"]),
        Paragraph(f"Issued {issued} · Order {order['order_number']}", styles["Normal"]),
        Spacer(1, 6 * mm),
    ]
    bill_to = ["<b>Bill to</b>"]
    bill_to += _address_lines(order["billing_address"]) or [_text(order["full_name"])]
    bill_to += [_text(order["email"]), f"Customer {_text(order['customer_id'])}"]
    if invoice["recipient_email"]:
        bill_to.append(f"Sent to {_text(invoice['recipient_email'])}")
    seller_block = (
        f"<b>From</b><br/>{_text(seller)}<br/>Organization {_text(order['organization_id'])}"
    )
    blocks = [seller_block, "<br/>".join(bill_to)]
    ship_to = _address_lines(order["shipping_address"])
    if ship_to:
        blocks.append("<br/>".join(["<b>Ship to</b>", *ship_to]))
    width = 170 * mm / len(blocks)
    addresses = Table(
        [[Paragraph(block, styles["Normal"]) for block in blocks]],
        colWidths=[width] * len(blocks),
    )
    story += [addresses, Spacer(1, 8 * mm)]
    rows: list[list[str]] = [["Item", "Qty", "Unit price", "Amount"]]
    subtotal = Decimal(0)
    for item in items:
        amount = item["unit_price"] * item["quantity"]
        subtotal += amount
        rows.append(
            [
                item["variant_id"],
                str(item["quantity"]),
                _amount(item["unit_price"], currency),
                _amount(amount, currency),
            ]
        )
    rows.append(["", "", "Subtotal", _amount(subtotal, currency)])
    rows.append(["", "", "Total", _amount(invoice["total_amount"], currency)])
    lines = Table(rows, colWidths=[80 * mm, 20 * mm, 35 * mm, 35 * mm], repeatRows=1)
    lines.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
                ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
                ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
                ("LINEABOVE", (2, -2), (-1, -2), 0.5, colors.black),
                ("FONTNAME", (2, -1), (-1, -1), "Helvetica-Bold"),
            ]
        )
    )
    story += [lines, Spacer(1, 8 * mm)]
    story.append(Paragraph(f"Paid in full · payment {invoice['payment_id']}", styles["Normal"]))
    doc.build(story)
    return buffer.getvalue()


def _address_lines(address: Mapping[str, str | None] | None) -> list[str]:
    """A postal address as printed: name, street lines, postcode and city, region, country."""
    if not address:
        return []
    town = " ".join(p for p in (address.get("postal_code"), address.get("city")) if p)
    parts = (
        address.get("name"),
        address.get("line1"),
        address.get("line2"),
        town,
        address.get("region"),
        address.get("country"),
    )
    return [_text(part) for part in parts if part]


def _text(value: object) -> str:
    """Paragraphs read a little markup: escape what the customer typed."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
