"""Building and serving one service process: a Litestar app around a `ServiceRuntime`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import uvicorn
from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.plugins.prometheus import PrometheusConfig

from messaging.runtime import ServiceRuntime
from messaging.web import EXCEPTION_HANDLERS, ApiKeys, OperationsController, strict_body

MAX_BODY_BYTES = 1_000_000


def create_app(
    *,
    runtime: ServiceRuntime,
    api_keys: ApiKeys,
    title: str,
    route_handlers: Sequence[Any],
    description: str = "",
) -> Litestar:
    """The runtime starts and stops with the app (its lifespan); nothing is opened before."""
    http_metrics = PrometheusConfig(
        app_name=runtime.service,
        prefix="commerce",
        group_path=True,
        exclude=["/metrics", "/health", "/ready"],
    )
    return Litestar(
        route_handlers=[OperationsController, *route_handlers],
        middleware=[http_metrics.middleware],
        on_startup=[runtime.start],
        on_shutdown=[runtime.stop],
        exception_handlers=dict(EXCEPTION_HANDLERS),
        before_request=strict_body,
        openapi_config=OpenAPIConfig(
            title=title, version="1.0.0", description=description, path="/schema"
        ),
        state=State({"runtime": runtime, "api_keys": api_keys}),
        request_max_body_size=MAX_BODY_BYTES,
        # Logging is structlog's, set up once per process (messaging.logs): Litestar must not
        # install its own handlers and level over it.
        logging_config=None,
        debug=False,
    )


async def serve(app: Litestar, *, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM; uvicorn runs the app's shutdown (and so the runtime's)."""
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, lifespan="on"
    )
    await uvicorn.Server(config).serve()
