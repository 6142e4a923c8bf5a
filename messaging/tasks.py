"""Stopping background tasks for sure.

A cancellation can be lost on Python 3.11: `asyncio.wait_for` (which asyncpg uses for its
timeouts, `pool.acquire(timeout=…)` among them) returns the result instead of raising when the
cancellation arrives just as the awaited call completes. A task that lost its cancellation goes
back to waiting for work, and a `stop()` that awaits it waits forever. So stopping cancels, waits
a little, and cancels again what is still running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, cast

from messaging.logs import get_logger

log = get_logger(__name__)

#: How long to wait after a cancellation before asking again.
RECANCEL_AFTER = 0.5


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel `tasks` and return once every one has finished (re-cancelling those that lost
    their cancellation). Errors they ended with are logged, not raised."""
    pending = {task for task in tasks if not task.done()}
    finished = set(tasks) - pending
    for task in pending:
        task.cancel()
    while pending:
        done, pending = await asyncio.wait(pending, timeout=RECANCEL_AFTER)
        finished |= done
        for task in pending:
            log.info(
                "task still running after its cancellation; cancelling again", task=task.get_name()
            )
            task.cancel()
    for task in finished:
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "task ended with an error", task=task.get_name(), error=repr(task.exception())
            )


def suspended_at(task: asyncio.Task[Any]) -> str:
    """The innermost coroutine frame a task is suspended in: `file:line function`."""
    where, awaited = "?", cast(Any, task.get_coro())
    while (
        frame := getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
    ) is not None:
        where = f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}"
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return where
