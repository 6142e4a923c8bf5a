"""Entry point used by `commerce serve inventory` / `commerce run`."""

from __future__ import annotations

from collections.abc import Mapping

from litestar import Litestar

from messaging.db import Migration, load_migrations

SCHEMA = "inventory"


def migrations() -> list[Migration]:
    return load_migrations("inventory", "inventory_service")


def create_app(environ: Mapping[str, str] | None = None) -> Litestar:
    from inventory_service.bootstrap import build
    from inventory_service.config import Settings
    from messaging.logs import configure_logging

    settings = Settings.from_env(environ)
    configure_logging("inventory_service", level=settings.runtime.log_level)
    return build(settings)
