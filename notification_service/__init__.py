"""notification_service: mail for order events and saga commands, and the analytics read model.

Consumes `notification_order_consumer` and the `notification-*-order` queues, keeps a small
contact projection and its own mail outbox in the `notification` schema, and sends mail over
SMTP from that outbox (`jobs.send_due_mail`). `analytics/` is the read model of SPEC §9.
"""
