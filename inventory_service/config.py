"""Settings of the inventory service, from an environ mapping (read in the entrypoint)."""

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
    port: int = 8001
    #: How often the sweeper looks for holds past their expiry.
    sweep_interval_seconds: float = 30.0
    #: `inventory_order_consumer`: messages handled per transaction, in flight, in parallel.
    #: (Batches of order.placed only run side by side; see the lock order in adapters/stock.py.)
    order_batch_size: int = 50
    order_prefetch: int = 300
    order_workers: int = 3

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            runtime=RuntimeSettings.from_env(env),
            api_keys=ApiKeys.from_env(env),
            port=int(env.get("INVENTORY_PORT", "8001")),
            sweep_interval_seconds=float(env.get("INVENTORY_SWEEP_INTERVAL_SECONDS", "30")),
            order_batch_size=int(env.get("INVENTORY_ORDER_BATCH_SIZE", "50")),
            order_prefetch=int(env.get("INVENTORY_ORDER_PREFETCH", "300")),
            order_workers=int(env.get("INVENTORY_ORDER_WORKERS", "3")),
        )
