"""Settings of the order service, from an environ mapping (read in the entrypoint)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from messaging.settings import RuntimeSettings
from messaging.web import ApiKeys


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    runtime: RuntimeSettings
    api_keys: ApiKeys
    port: int = 8000
    #: Where clients reach this service; `pdf_url` of invoices is built on it.
    public_url: str = "http://localhost:8000"
    #: SPEC §4: carts idle longer than this are announced as abandoned (once).
    cart_abandon_after_seconds: float = 86400.0
    cart_sweep_interval_seconds: float = 60.0
    cart_sweep_batch: int = 500
    #: Payment attempts per order (SPEC §4: `retries_remaining` counts down to 0).
    payment_max_attempts: int = 3
    #: Days added to the dispatch date for `order.shipped.estimated_delivery`.
    estimated_delivery_days: int = 3
    pool_size: int = 10

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        port = int(env.get("ORDER_PORT", "8000"))
        settings = cls(
            runtime=RuntimeSettings.from_env(env),
            api_keys=ApiKeys.from_env(env),
            port=port,
            public_url=env.get("ORDER_PUBLIC_URL", f"http://localhost:{port}").rstrip("/"),
            cart_abandon_after_seconds=float(env.get("CART_ABANDON_AFTER_SECONDS", "86400")),
            cart_sweep_interval_seconds=float(env.get("CART_SWEEP_INTERVAL_SECONDS", "60")),
            cart_sweep_batch=int(env.get("CART_SWEEP_BATCH", "500")),
            payment_max_attempts=int(env.get("PAYMENT_MAX_ATTEMPTS", "3")),
            estimated_delivery_days=int(env.get("ESTIMATED_DELIVERY_DAYS", "3")),
            pool_size=int(env.get("ORDER_POOL_SIZE", "10")),
        )
        if settings.payment_max_attempts < 1:
            raise ValueError("PAYMENT_MAX_ATTEMPTS must be at least 1")
        if settings.cart_abandon_after_seconds <= 0 or settings.cart_sweep_interval_seconds <= 0:
            raise ValueError(
                "CART_ABANDON_AFTER_SECONDS and CART_SWEEP_INTERVAL_SECONDS must be > 0"
            )
        return settings
