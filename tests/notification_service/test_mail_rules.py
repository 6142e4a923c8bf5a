"""Unit tests of the mail rules and templates: no broker, no database."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest

from contracts.bookworm import new_bookworm
from contracts.order_events import new_order_event
from notification_service.domain.mail import (
    Contact,
    Failure,
    MailStatus,
    NotMailable,
    Template,
    after_failure,
    contact_of,
    plan_command,
    plan_order_event,
)
from notification_service.domain.templates import TEMPLATES, OrderFacts, render
from tests.notification_service.builders import (
    cancel_order,
    checked_out,
    confirmed,
    created,
    delivered,
    place_order,
    return_approved,
    shipped,
)

ORDER = uuid.uuid4()


@pytest.mark.parametrize(
    ("name", "data", "template"),
    [
        ("order.created", created(ORDER), Template.ORDER_CREATED),
        ("order.confirmed", confirmed(ORDER), Template.ORDER_CONFIRMED),
        ("order.shipped", shipped(ORDER), Template.ORDER_SHIPPED),
        ("order.delivered", delivered(ORDER), Template.ORDER_DELIVERED),
    ],
)
def test_each_order_event_asks_for_its_mail_about_its_order(
    name: str, data: object, template: Template
) -> None:
    event = new_order_event(name, "org_1", data)  # type: ignore[arg-type]
    request = plan_order_event(event)
    assert (request.template, request.order_id, request.contact) == (template, ORDER, None)
    assert request.dedup_key() == f"order:{ORDER}:{template}"


def test_a_mail_is_one_per_order_and_template_whatever_message_asks_for_it() -> None:
    """The saga re-sends PlaceOrderCommand with a new message id on every timeout."""
    first = place_order(ORDER, "a@example.com", "A")
    again = place_order(ORDER, "a@example.com", "A")
    assert first.id != again.id
    assert plan_command(first).dedup_key() == plan_command(again).dedup_key()
    assert plan_command(first).dedup_key() == f"order:{ORDER}:order_received"
    assert plan_command(cancel_order(ORDER, "a@example.com", "A")).dedup_key() == (
        f"order:{ORDER}:order_cancelled"
    )
    assert plan_command(place_order(uuid.uuid4(), "a@example.com", "A")).dedup_key() != (
        plan_command(first).dedup_key()
    )


def test_return_approved_names_the_return_not_the_order() -> None:
    request = plan_order_event(new_order_event("return.approved", "org_1", return_approved("r1")))
    assert (request.order_id, request.return_id) == (None, "r1")
    assert request.params["rma_number"] == "RMA-2025-0007"
    assert request.dedup_key() == "return:r1:return_approved"


def test_an_order_id_that_is_not_a_uuid_cannot_be_mailed() -> None:
    with pytest.raises(NotMailable):
        plan_order_event(new_order_event("order.delivered", "org_1", delivered("order_456")))


def test_saga_commands_carry_their_recipient() -> None:
    request = plan_command(place_order(ORDER, " ada@example.com ", "Ada"))
    assert request.template is Template.ORDER_RECEIVED
    assert request.contact == Contact("ada@example.com", "Ada")
    assert plan_command(cancel_order(ORDER, "b@example.com", None)).template is (
        Template.ORDER_CANCELLED
    )
    assert contact_of(place_order(ORDER, None, "Ada")) is None
    assert contact_of(place_order(ORDER, "  ", "Ada")) is None
    assert contact_of(place_order(ORDER, "c@example.com", " ")) == Contact("c@example.com")


def test_the_checkout_event_carries_the_contact_too() -> None:
    checkout = checked_out(ORDER, " e@example.com", "Edith")
    assert contact_of(checkout) == Contact("e@example.com", "Edith")


@pytest.mark.parametrize("template", list(Template))
def test_every_template_renders_text_and_escaped_html(template: Template) -> None:
    assert template in TEMPLATES
    hostile = "<script>alert(1)</script>"
    params = {
        "total": "12.5",
        "currency": "EUR",
        "carrier": hostile,
        "rma_number": hostile,
        "return_shipping_label_url": "https://x.example/?a=1&b=2",
    }
    mail = render(template, params, Contact("x@example.com", hostile), OrderFacts("ORD-1", "EUR"))
    assert mail.subject
    assert f"Hello {hostile}," in mail.text
    assert "<script>" not in mail.html
    assert "&lt;script&gt;" in mail.html
    assert mail.html.startswith("<!DOCTYPE html>")


def test_money_and_order_number_appear_when_known() -> None:
    params = {"total": "12.5"}
    known = render(Template.ORDER_COMPLETED, params, Contact("x@e.com"), OrderFacts("ORD-9", "USD"))
    assert known.subject == "Your order ORD-9 is complete"
    assert "Total: 12.50 USD" in known.text
    unknown = render(Template.ORDER_COMPLETED, params, Contact("x@e.com"), OrderFacts())
    assert unknown.subject == "Your order is complete"
    assert unknown.text.startswith("Hello,\n\n")
    assert "Total: 12.50\n" in unknown.text


def _after(failure: Failure, attempts: int, rejections: int = 0) -> tuple[MailStatus, int]:
    retry = after_failure(
        failure,
        attempts=attempts,
        rejections=rejections,
        initial=1,
        maximum=30,
        max_rejections=3,
    )
    return retry.status, retry.rejections


def test_failures_back_off_exponentially_up_to_the_cap() -> None:
    for failure in (Failure.TEMPORARY, Failure.REJECTED):
        delays = [
            after_failure(
                failure, attempts=n, rejections=0, initial=1, maximum=30, max_rejections=100
            ).delay
            for n in range(1, 8)
        ]
        assert delays == [timedelta(seconds=s) for s in (1, 2, 4, 8, 16, 30, 30)]


def test_an_outage_is_waited_out_forever_and_counts_no_rejection() -> None:
    assert _after(Failure.TEMPORARY, attempts=1000) == (MailStatus.PENDING, 0)
    assert _after(Failure.TEMPORARY, attempts=1000, rejections=2) == (MailStatus.PENDING, 2)


def test_a_mail_the_server_refuses_is_given_up_after_max_rejections_of_its_own() -> None:
    assert _after(Failure.REJECTED, attempts=1) == (MailStatus.PENDING, 1)
    assert _after(Failure.REJECTED, attempts=2, rejections=1) == (MailStatus.PENDING, 2)
    assert _after(Failure.REJECTED, attempts=3, rejections=2) == (MailStatus.FAILED, 3)


def test_a_long_outage_does_not_spend_the_rejection_budget() -> None:
    """Attempts during an outage are attempts, not refusals: the first 5xx afterwards is the
    mail's first rejection, however many attempts came before."""
    assert _after(Failure.REJECTED, attempts=500, rejections=0) == (MailStatus.PENDING, 1)


def test_a_mail_that_cannot_be_sent_at_all_fails_at_once() -> None:
    retry = after_failure(
        Failure.UNSENDABLE, attempts=1, rejections=0, initial=1, maximum=30, max_rejections=3
    )
    assert (retry.status, retry.delay, retry.rejections) == (MailStatus.FAILED, timedelta(0), 0)


def test_new_bookworm_commands_decode_into_requests_with_exact_totals() -> None:
    from contracts.bookworm import CompleteOrderCommand

    command = new_bookworm(
        CompleteOrderCommand,
        order_id=ORDER,
        email="d@example.com",
        full_name=None,
        total_money=Decimal("99.90"),
    )
    assert plan_command(command).params == {"total": "99.90"}
