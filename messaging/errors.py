"""Exceptions the runtime and the services share."""


class BrokerUnavailable(ConnectionError):
    """RabbitMQ cannot be reached right now; the work should wait, not fail."""


class PublishRejected(Exception):
    """The broker refused a message (nack), or nobody could route it (returned with mandatory)."""


class PermanentError(Exception):
    """A message that can never be handled, however often it is retried: dead-letter it now."""
