"""Entry point used by `commerce serve notification` / `commerce run` (messaging/cli.py)."""

from __future__ import annotations

from collections.abc import Mapping

from litestar import Litestar

from messaging.db import Migration
from messaging.logs import configure_logging
from notification_service import bootstrap
from notification_service.config import Settings

SCHEMA = bootstrap.SCHEMA


def migrations() -> list[Migration]:
    return bootstrap.migrations()


def create_app(environ: Mapping[str, str] | None = None) -> Litestar:
    settings = Settings.from_env(environ)
    configure_logging(bootstrap.SERVICE, level=settings.runtime.log_level)
    return bootstrap.build(settings)
