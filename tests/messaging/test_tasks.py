"""Stopping background tasks even when one loses its cancellation."""

from __future__ import annotations

import asyncio
import contextlib

from messaging.tasks import cancel_and_wait, suspended_at


async def _loses_one_cancellation(started: asyncio.Event) -> None:
    """What a task looks like after asyncio.wait_for (3.11) swallowed its cancellation."""
    started.set()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(30)
    await asyncio.sleep(30)  # back to waiting for work


async def test_a_task_that_loses_its_cancellation_is_cancelled_again() -> None:
    started = asyncio.Event()
    stubborn = asyncio.create_task(_loses_one_cancellation(started))
    polite = asyncio.create_task(asyncio.sleep(30))
    await started.wait()

    async with asyncio.timeout(5):
        await cancel_and_wait([stubborn, polite])

    assert stubborn.cancelled()
    assert polite.cancelled()


async def test_finished_and_failed_tasks_are_fine_to_stop() -> None:
    async def fail() -> None:
        raise RuntimeError("boom")

    failed = asyncio.create_task(fail())
    done = asyncio.create_task(asyncio.sleep(0))
    await asyncio.sleep(0.01)

    await cancel_and_wait([failed, done])

    assert failed.done()
    assert isinstance(failed.exception(), RuntimeError)
    assert done.done()
    assert not done.cancelled()


async def test_suspended_at_names_the_innermost_await() -> None:
    async def inner() -> None:
        await asyncio.Event().wait()

    async def outer() -> None:
        await inner()

    task = asyncio.create_task(outer())
    await asyncio.sleep(0.01)
    try:
        assert suspended_at(task).endswith(" wait")  # asyncio.Event.wait, below inner()
        assert "locks.py" in suspended_at(task)
    finally:
        await cancel_and_wait([task])
