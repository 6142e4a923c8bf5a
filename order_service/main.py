"""Entry point used by `commerce serve order` / `commerce run`."""

from __future__ import annotations

from collections.abc import Mapping

from litestar import Litestar

from messaging.db import Migration, load_migrations

SCHEMA = "orders"


def migrations() -> list[Migration]:
    return load_migrations("orders", "order_service")


def create_app(environ: Mapping[str, str] | None = None) -> Litestar:
    from messaging.logs import configure_logging
    from order_service.bootstrap import build
    from order_service.config import Settings

    settings = Settings.from_env(environ)
    configure_logging("order_service", level=settings.runtime.log_level)
    return build(settings)
