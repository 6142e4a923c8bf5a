"""Entry point used by `commerce serve finance` / `commerce run`."""

from __future__ import annotations

from collections.abc import Mapping

from litestar import Litestar

from messaging.db import Migration, load_migrations

SCHEMA = "finance"


def migrations() -> list[Migration]:
    return load_migrations("finance", "finance_service")


def create_app(environ: Mapping[str, str] | None = None) -> Litestar:
    from finance_service.bootstrap import build
    from finance_service.config import Settings
    from messaging.logs import configure_logging

    settings = Settings.from_env(environ)
    configure_logging("finance_service", level=settings.runtime.log_level)
    return build(settings)
