"""structlog, configured once per process: JSON lines when not on a terminal."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

_configured = False
_PASSWORD_IN_URL = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]*):[^@/\s]*@", re.I)


def redact(text: str) -> str:
    """Hide the password of any URL in `text` (`amqp://user:secret@host` → `amqp://user:***@host`)."""
    return _PASSWORD_IN_URL.sub(r"\g<scheme>:***@", text)


def _redact_strings(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    for key, value in event_dict.items():
        if isinstance(value, str) and "://" in value:
            event_dict[key] = redact(value)
    return event_dict


def configure_logging(service: str, *, level: str = "INFO", json: bool | None = None) -> None:
    """Set up structlog and route the standard library's loggers (aio-pika, uvicorn) through it.

    Safe to call more than once: only the first call of a process has an effect.
    """
    global _configured
    if _configured:
        return
    _configured = True
    render_json = (not sys.stderr.isatty()) if json is None else json

    def add_service(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_service,
        _redact_strings,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if render_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        # Below the level, stop before the processors do any work (a line per handled message
        # at INFO would otherwise be built in full and then dropped).
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if render_json else _identity,
            _name_fields if render_json else _identity,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aio-pika and aiormq log every reconnect attempt at length; our supervisor logs one line.
    for noisy in ("aiormq", "aio_pika"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def _name_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """In the output, `msg` is the text and `event` the name of the message being handled."""
    event_dict["msg"] = event_dict.pop("event", "")
    if "message_event" in event_dict:
        event_dict["event"] = event_dict.pop("message_event")
    return event_dict


def _identity(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    return event_dict


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
