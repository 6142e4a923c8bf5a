"""Runtime settings from the environment (SPEC §1), read in entrypoints and passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_AMQP_URL = "amqp://guest:guest@localhost:5672/"
DEFAULT_DATABASE_URL = "postgresql://postgres@localhost:5432/commerce"


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeSettings:
    amqp_url: str = DEFAULT_AMQP_URL
    database_url: str = DEFAULT_DATABASE_URL
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RuntimeSettings:
        env = os.environ if environ is None else environ
        return cls(
            amqp_url=env.get("AMQP_URL", DEFAULT_AMQP_URL),
            database_url=env.get("DATABASE_URL", DEFAULT_DATABASE_URL),
            log_level=env.get("LOG_LEVEL", "INFO"),
        )
