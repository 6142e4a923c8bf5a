"""Settings of the notification service, built once from an environ mapping and passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from messaging.settings import RuntimeSettings
from messaging.web import ApiKeys

#: `SMTP_HOST` unset or set to this word: the service runs its own SMTP sink (`smtp_sink.py`).
EMBEDDED = "embedded"
DEFAULT_SMTP_PORT = 1025
DEFAULT_SINK_DIR = "var/mail"
DEFAULT_MAIL_FROM = "BookWorm Commerce <orders@commerce.local>"


@dataclass(frozen=True, slots=True, kw_only=True)
class SmtpSettings:
    """Where mail goes. With `embedded`, the service starts an SMTP sink on 127.0.0.1:`port`
    that stores every message as an `.eml` file in `sink_dir`, and sends to it."""

    host: str = "localhost"
    port: int = DEFAULT_SMTP_PORT
    embedded: bool = True
    sink_dir: Path = Path(DEFAULT_SINK_DIR)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    start_tls: bool = False
    #: Seconds to wait for the server, per SMTP command.
    timeout: float = 10.0
    sender: str = DEFAULT_MAIL_FROM

    @property
    def longest_send(self) -> float:
        """The longest one mail can take: MAIL, RCPT, DATA, the content and an RSET, each
        waiting up to `timeout` for the server."""
        return 5 * self.timeout

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SmtpSettings:
        host = env.get("SMTP_HOST", "").strip()
        embedded = host in ("", EMBEDDED)
        return cls(
            host="127.0.0.1" if embedded else host,
            port=int(env.get("SMTP_PORT", DEFAULT_SMTP_PORT)),
            embedded=embedded,
            sink_dir=Path(env.get("SMTP_SINK_DIR", DEFAULT_SINK_DIR)),
            username=env.get("SMTP_USERNAME") or None,
            password=env.get("SMTP_PASSWORD") or None,
            start_tls=env.get("SMTP_STARTTLS", "false").lower() in ("1", "true", "yes"),
            timeout=float(env.get("SMTP_TIMEOUT_SECONDS", "10")),
            sender=env.get("MAIL_FROM", DEFAULT_MAIL_FROM),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class MailPolicy:
    """How the mail outbox is worked off."""

    #: How often the sender looks for due mail (it sends everything due on each run).
    send_interval: float = 1.0
    #: Mails claimed at a time, and sent in one SMTP session.
    batch_size: int = 50
    #: A claimed mail is not due for anyone else during this many seconds (several replicas);
    #: after a crash, what was claimed and not sent is due again once the lease ends. The
    #: sender starts no mail it could not finish within its lease.
    lease: float = 120.0
    #: Backoff after a failed attempt: initial * 2^(attempts-1), capped at `retry_max`.
    retry_initial: float = 1.0
    retry_max: float = 300.0
    #: A mail the SMTP server refuses outright (5xx to the mail itself) is given up after this
    #: many refusals; an unreachable or refusing server (connection, greeting, authentication)
    #: is waited out without limit, and a mail that cannot be sent at all fails at once.
    max_rejections: int = 10
    #: How often waiting mails are matched against contacts that arrived meanwhile.
    resolve_interval: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MailPolicy:
        return cls(
            send_interval=float(env.get("MAIL_SEND_INTERVAL_SECONDS", "1")),
            batch_size=int(env.get("MAIL_SEND_BATCH", "50")),
            lease=float(env.get("MAIL_LEASE_SECONDS", "120")),
            retry_initial=float(env.get("MAIL_RETRY_INITIAL_SECONDS", "1")),
            retry_max=float(env.get("MAIL_RETRY_MAX_SECONDS", "300")),
            max_rejections=int(env.get("MAIL_MAX_REJECTIONS", "10")),
            resolve_interval=float(env.get("MAIL_RESOLVE_INTERVAL_SECONDS", "30")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    runtime: RuntimeSettings
    api_keys: ApiKeys
    smtp: SmtpSettings
    mail: MailPolicy

    def __post_init__(self) -> None:
        if self.mail.lease < 2 * self.smtp.longest_send:
            raise ValueError(
                f"MAIL_LEASE_SECONDS ({self.mail.lease:g}) must be at least"
                f" {2 * self.smtp.longest_send:g}: ten times SMTP_TIMEOUT_SECONDS, so that a"
                " claimed batch can be sent within its lease"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            runtime=RuntimeSettings.from_env(env),
            api_keys=ApiKeys.from_env(env),
            smtp=SmtpSettings.from_env(env),
            mail=MailPolicy.from_env(env),
        )
