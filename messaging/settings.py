"""Runtime settings from the environment (SPEC §1), read in entrypoints and passed down."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from contracts.topology import TOPOLOGY, Topology

DEFAULT_AMQP_URL = "amqp://guest:guest@localhost:5672/"
DEFAULT_DATABASE_URL = "postgresql://postgres@localhost:5432/commerce"


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeSettings:
    amqp_url: str = DEFAULT_AMQP_URL
    database_url: str = DEFAULT_DATABASE_URL
    log_level: str = "INFO"
    #: `COMMERCE_NAMESPACE`: empty for the SPEC's names. Otherwise every exchange and queue is
    #: prefixed `<namespace>.` and every schema suffixed `_<namespace>`: a whole separate system
    #: on the same broker and database (used by the tests to isolate each run).
    namespace: str = ""
    #: `MALLOC_TRIM_INTERVAL_SECONDS`: how often freed heap memory is handed back to the system
    #: (`messaging.memory`); 0 never.
    malloc_trim_interval: float = 30.0

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9_]{0,24}", self.namespace):
            raise ValueError("COMMERCE_NAMESPACE: up to 24 of a-z, 0-9 and _")
        if not self.malloc_trim_interval >= 0:
            raise ValueError("MALLOC_TRIM_INTERVAL_SECONDS: a number of seconds, 0 or more")

    @property
    def topology_prefix(self) -> str:
        return f"{self.namespace}." if self.namespace else ""

    @property
    def topology(self) -> Topology:
        return TOPOLOGY.with_prefix(self.topology_prefix)

    def schema(self, base: str) -> str:
        """The Postgres schema of a service in this namespace (`orders`, `orders_<ns>`)."""
        return f"{base}_{self.namespace}" if self.namespace else base

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RuntimeSettings:
        env = os.environ if environ is None else environ
        return cls(
            amqp_url=env.get("AMQP_URL", DEFAULT_AMQP_URL),
            database_url=env.get("DATABASE_URL", DEFAULT_DATABASE_URL),
            log_level=env.get("LOG_LEVEL", "INFO"),
            namespace=env.get("COMMERCE_NAMESPACE", ""),
            malloc_trim_interval=_seconds(env, "MALLOC_TRIM_INTERVAL_SECONDS", 30.0),
        )


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}: a number of seconds, got {raw!r}") from None
