"""The scanner's pool: every item under a time bound, a stuck thread never holds a slot.

A read that never returns is stood in for by a function that waits on an Event the test holds
(the OS edge: a FIFO or a dead network mount blocks inside a system call the same way, and
Python cannot interrupt either). Everything else is the real pool with real threads.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from daemon.runtime.scan_pool import PoolExhausted, ScanPool
from tests.helpers import wait_for


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at the end of each test, so no stuck thread outlives it."""
    event = threading.Event()
    yield event
    event.set()


def reader(release: threading.Event, hangs: set[str]) -> Callable[[str], str]:
    def read(item: str) -> str:
        if item in hangs:
            release.wait(30)  # a read that does not return until the test lets it
        return item.upper()

    return read


def overran(item: str, bound: float) -> str:
    return f"{item}: over {bound:g} s"


def test_a_stuck_item_is_given_up_and_the_rest_go_on(release: threading.Event) -> None:
    pool = ScanPool(2, max_stuck=4)

    async def scenario() -> None:
        started = time.monotonic()
        out = await pool.map(
            reader(release, {"b"}),
            ["a", "b", "c", "d"],
            time_bound_s=0.3,
            key=lambda item: item,
            on_overrun=overran,
        )
        took = time.monotonic() - started
        assert out == ["A", "b: over 0.3 s", "C", "D"]
        assert 0.3 <= took < 2.0
        # The stuck thread left the pool and a fresh one took its slot.
        assert set(pool.stuck()) == {"b"} and pool.live_workers == 2
        # The pool still reads at full width while that thread stays stuck.
        again = await pool.map(
            reader(release, set()),
            ["e", "f"],
            time_bound_s=0.3,
            key=lambda item: item,
            on_overrun=overran,
        )
        assert again == ["E", "F"]
        release.set()  # the read returns at last: the thread leaves the stuck list
        await asyncio.to_thread(wait_for, lambda: not pool.stuck(), 5, "the thread to return")
        assert pool.live_workers == 2

    asyncio.run(scenario())
    pool.close()


def test_the_bound_counts_from_when_an_item_starts_not_when_it_was_queued() -> None:
    pool = ScanPool(1)

    def slow(item: int) -> int:
        time.sleep(0.15)
        return item

    async def scenario() -> list[list[int]]:
        # Six items of 0.15 s queued on one thread: the last starts 0.75 s after it was
        # queued, but each runs well within its 0.5 s.
        jobs = [
            pool.map(slow, [i], time_bound_s=0.5, key=lambda i: i, on_overrun=lambda i, b: -1)
            for i in range(6)
        ]
        return await asyncio.gather(*jobs)

    assert asyncio.run(scenario()) == [[i] for i in range(6)]
    pool.close()


def test_when_every_thread_is_stuck_a_job_fails_at_once(release: threading.Event) -> None:
    pool = ScanPool(1, max_stuck=1)

    async def scenario() -> None:
        read = reader(release, {"x", "y"})
        first = await pool.map(read, ["x"], time_bound_s=0.1, key=str, on_overrun=overran)
        assert first == ["x: over 0.1 s"] and pool.live_workers == 1  # replaced: 1 stuck allowed
        second = await pool.map(read, ["y"], time_bound_s=0.1, key=str, on_overrun=overran)
        assert second == ["y: over 0.1 s"] and pool.live_workers == 0  # past the cap: not
        with pytest.raises(PoolExhausted, match="stuck"):
            await pool.map(read, ["z"], time_bound_s=0.1, key=str, on_overrun=overran)
        release.set()  # both come back: the pool grows back to its size, not beyond
        await asyncio.to_thread(wait_for, lambda: not pool.stuck(), 5, "the threads to return")
        assert pool.live_workers == 1
        assert await pool.map(read, ["z"], time_bound_s=1, key=str, on_overrun=overran) == ["Z"]

    asyncio.run(scenario())
    pool.close()


def test_errors_reach_the_caller_and_threads_never_hold_the_process(
    release: threading.Event,
) -> None:
    pool = ScanPool(2)

    def broken(item: str) -> str:
        raise ValueError(f"cannot read {item}")

    async def scenario() -> None:
        with pytest.raises(ValueError, match="cannot read a"):
            await pool.map(broken, ["a"], time_bound_s=1, key=str, on_overrun=overran)
        await pool.map(reader(release, {"s"}), ["s"], time_bound_s=0.1, key=str, on_overrun=overran)

    asyncio.run(scenario())
    pool.close()
    workers = [t for t in threading.enumerate() if t.name.startswith("pm-scan")]
    assert workers and all(t.daemon for t in workers)  # the stuck one too: exit never waits


def test_a_cancelled_scan_still_retires_a_thread_that_stays_stuck(
    release: threading.Event,
) -> None:
    pool = ScanPool(1, max_stuck=2)

    async def scenario() -> None:
        task = asyncio.ensure_future(
            pool.map(reader(release, {"s"}), ["s"], time_bound_s=0.2, key=str, on_overrun=overran)
        )
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.3)  # past the bound of the item it is stuck in
        assert set(pool.stuck()) == {"s"} and pool.live_workers == 1

    asyncio.run(scenario())
    pool.close()
