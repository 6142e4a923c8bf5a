"""Settings of the finance service, from an environ mapping (read in the entrypoint)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from finance_service.domain.saga import SagaPolicy
from messaging.settings import RuntimeSettings
from messaging.web import ApiKeys


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    runtime: RuntimeSettings
    api_keys: ApiKeys
    port: int = 8002
    #: `SAGA_PLACE_ORDER_TIMEOUT_SECONDS`: how long a Placed saga waits before PlaceOrderCommand
    #: is sent again.
    place_order_timeout_seconds: float = 300.0
    #: `SAGA_MAX_ATTEMPTS`: PlaceOrderCommands per run (the first one included) before giving up.
    max_attempts: int = 3
    #: `SAGA_TIMEOUT_POLL_SECONDS`: how often the timeout job looks for due sagas.
    timeout_poll_seconds: float = 1.0
    #: `finance-order-state-machine`: messages handled in parallel.
    workers: int = 4

    def __post_init__(self) -> None:
        self.policy  # noqa: B018 - SagaPolicy checks its knobs: fail at start-up, not later
        if self.timeout_poll_seconds <= 0 or self.workers < 1:
            raise ValueError("SAGA_TIMEOUT_POLL_SECONDS must be > 0, SAGA_CONSUMER_WORKERS >= 1")

    @property
    def policy(self) -> SagaPolicy:
        return SagaPolicy(
            place_order_timeout=timedelta(seconds=self.place_order_timeout_seconds),
            max_attempts=self.max_attempts,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            runtime=RuntimeSettings.from_env(env),
            api_keys=ApiKeys.from_env(env),
            port=int(env.get("FINANCE_PORT", "8002")),
            place_order_timeout_seconds=float(env.get("SAGA_PLACE_ORDER_TIMEOUT_SECONDS", "300")),
            max_attempts=int(env.get("SAGA_MAX_ATTEMPTS", "3")),
            timeout_poll_seconds=float(env.get("SAGA_TIMEOUT_POLL_SECONDS", "1")),
            workers=int(env.get("SAGA_CONSUMER_WORKERS", "4")),
        )
