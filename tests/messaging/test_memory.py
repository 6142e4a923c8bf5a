"""Handing freed heap memory back to the system (`messaging.memory`), in this very process."""

from __future__ import annotations

import platform

import pytest

from messaging.memory import heap_trimmer, resident_kb, trim_job
from messaging.runtime import ServiceRuntime
from messaging.settings import RuntimeSettings

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")


@glibc
async def test_trimming_gives_back_freed_memory_that_malloc_keeps() -> None:
    trim = heap_trimmer()
    assert trim is not None
    # 40 MB in blocks big enough to come from malloc, not from Python's own small-object arenas;
    # keeping every 50th pins the heap, so malloc cannot shrink it from the top by itself.
    blocks = [bytes(1000) for _ in range(40_000)]
    kept = blocks[::50]
    del blocks
    before = resident_kb()
    assert before is not None

    freed = await trim_job(trim)()

    after = resident_kb()
    assert after is not None
    # Most of the 39 MB that was freed, by the job's own count and by ours.
    assert freed > 20_000, freed
    assert before - after > 20_000, (before, after)
    assert len(kept) == 800  # and what is kept is still there
    assert all(block == bytes(1000) for block in kept)


def test_the_runtime_trims_periodically_unless_told_not_to() -> None:
    def jobs(settings: RuntimeSettings) -> list[str]:
        runtime = ServiceRuntime(service="notes", schema="notes", settings=settings)
        return [name for name, _, _ in runtime._periodic]

    expected = ["malloc-trim"] if heap_trimmer() is not None else []
    assert jobs(RuntimeSettings.from_env({})) == expected
    assert jobs(RuntimeSettings.from_env({"MALLOC_TRIM_INTERVAL_SECONDS": "0"})) == []


@pytest.mark.parametrize("raw", ["soon", "-1", "nan"])
def test_a_bad_trim_interval_is_refused_naming_the_variable(raw: str) -> None:
    with pytest.raises(ValueError, match="MALLOC_TRIM_INTERVAL_SECONDS"):
        RuntimeSettings.from_env({"MALLOC_TRIM_INTERVAL_SECONDS": raw})
