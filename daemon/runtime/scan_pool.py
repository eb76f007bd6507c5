"""The scanner's threads: each project read under a time bound, and no thread held for ever.

Python cannot stop a thread. A read that never returns (a FIFO opened for reading, a network
mount that stopped answering) would hold a worker for good, and a few of them the whole pool:
every later scan would queue behind them, and the interpreter would wait for them at exit.

So here a job is a list of items read one after another on one worker (a chunk: one hand-off
for many small reads), and each item has its own time bound, counted from when that item
started. An item that overruns is given up: the caller gets `on_overrun(item)` for it, the
items after it go to another worker, and the stuck worker leaves the pool — a fresh one takes
its slot (up to `max_stuck` stuck threads; beyond that the pool shrinks instead of growing
without end, and when no worker is left a job fails at once with `PoolExhausted`). A stuck
worker that comes back rejoins the pool if there is room, else it ends. Workers are daemon
threads: a stuck one never keeps the process alive when the daemon exits. What is stuck is
known by key (`stuck()`), so the scanner does not walk into the same trap again meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

from daemon.store.cancellation import wait_set

T = TypeVar("T")
R = TypeVar("R")


class PoolExhausted(RuntimeError):
    """Every worker is stuck in a read that has not returned."""


class _Job(Generic[T, R]):
    """Items read in order on one worker; the fields are guarded by the pool's lock."""

    def __init__(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.fn = fn
        self.items = items
        self.loop = loop
        self.wake = asyncio.Event()  # set (on the loop) when the job ends
        self.results: list[R] = []
        self.index = 0  # the item being read
        self.started: float | None = None  # when that item started (monotonic)
        self.given_up = False  # the caller no longer waits for it
        self.finished = False
        self.error: BaseException | None = None


class _Worker:
    def __init__(self) -> None:
        self.job: _Job[Any, Any] | None = None
        self.stuck = False


class ScanPool:
    def __init__(self, threads: int, *, name: str = "pm-scan", max_stuck: int = 16) -> None:
        self._size = threads
        self._name = name
        self._max_stuck = max_stuck
        self._queue: queue.SimpleQueue[_Job[Any, Any] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._live: set[_Worker] = set()
        self._stuck: dict[_Worker, tuple[Hashable, float]] = {}  # worker → (item's key, since)
        self._closed = False
        self._started = 0
        with self._lock:
            for _ in range(threads):
                self._start_worker()

    # --- what the scanner asks ----------------------------------------------------------------
    def stuck(self) -> dict[Hashable, float]:
        """The key of each item a worker is still stuck in → since when (monotonic)."""
        with self._lock:
            return dict(self._stuck.values())

    @property
    def live_workers(self) -> int:
        with self._lock:
            return len(self._live)

    async def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        *,
        time_bound_s: float,
        key: Callable[[T], Hashable],
        on_overrun: Callable[[T, float], R],
    ) -> list[R]:
        """`fn` of each item, in order, read one after another on one worker; an item still
        running `time_bound_s` after it started yields `on_overrun(item, time_bound_s)`."""
        out: list[R] = []
        rest: Sequence[T] = items
        while rest:
            job: _Job[T, R] = _Job(fn, rest, asyncio.get_running_loop())
            self._submit(job)
            try:
                done, stuck_at = await self._supervise(job, time_bound_s, key)
            except BaseException:
                self._abandon(job, time_bound_s, key)
                raise
            out += done
            if stuck_at is None:
                break
            out.append(on_overrun(rest[stuck_at], time_bound_s))
            rest = rest[stuck_at + 1 :]
        return out

    def close(self) -> None:
        """No new jobs; idle workers end. A stuck worker is not waited for."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            live = len(self._live)
        for _ in range(live):
            self._queue.put(None)

    # --- inside -------------------------------------------------------------------------------
    def _submit(self, job: _Job[T, R]) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the scan pool is closed")
            if not self._live:
                raise PoolExhausted(self._exhausted())
        self._queue.put(job)

    def _exhausted(self) -> str:
        return (
            f"all {len(self._stuck)} scan threads are stuck in reads that have not returned "
            "(a file that blocks, or a disk that stopped answering); restart the daemon"
        )

    async def _supervise(
        self, job: _Job[T, R], bound: float, key: Callable[[T], Hashable]
    ) -> tuple[list[R], int | None]:
        """Wait for the job; (results, None) when it ended, (results so far, index of the item
        it is stuck in) when that item overran — then its worker is retired."""
        while True:
            with self._lock:
                if job.finished:
                    if job.error is not None:
                        raise job.error
                    return job.results, None
                started, index = job.started, job.index
                if started is None and not self._live:
                    job.given_up = True
                    raise PoolExhausted(self._exhausted())
                left = bound if started is None else started + bound - time.monotonic()
                if started is not None and left <= 0:
                    job.given_up = True
                    self._retire(job, key(job.items[index]), started)
                    return list(job.results), index
            job.wake.clear()
            await wait_set(job.wake, left)

    def _abandon(self, job: _Job[T, R], bound: float, key: Callable[[T], Hashable]) -> None:
        """The caller stopped waiting (cancelled): a queued job is skipped, a running one ends
        after its current item — and if that item overruns, its worker is retired then."""
        with self._lock:
            job.given_up = True
            started, index = job.started, job.index
            if started is None or job.finished:
                return

        def check() -> None:
            with self._lock:
                if not job.finished and job.index == index:
                    self._retire(job, key(job.items[index]), started)

        job.loop.call_later(max(0.0, started + bound - time.monotonic()), check)

    def _retire(self, job: _Job[T, R], item_key: Hashable, since: float) -> None:
        """With the lock held: the worker running `job` is stuck; another takes its slot."""
        for worker in self._live:
            if worker.job is job:
                self._live.discard(worker)
                worker.stuck = True
                self._stuck[worker] = (item_key, since)
                if not self._closed and len(self._stuck) <= self._max_stuck:
                    self._start_worker()
                return

    def _start_worker(self) -> None:
        """With the lock held."""
        worker = _Worker()
        self._live.add(worker)
        self._started += 1
        thread = threading.Thread(
            target=self._work, args=(worker,), name=f"{self._name}-{self._started}", daemon=True
        )
        thread.start()

    def _work(self, worker: _Worker) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                if job.given_up:
                    continue
                worker.job = job
            self._run(job)
            with self._lock:
                worker.job = None
                if worker.stuck:  # back from a read that overran: rejoin if there is room
                    del self._stuck[worker]
                    worker.stuck = False
                    if self._closed or len(self._live) >= self._size:
                        return
                    self._live.add(worker)

    def _run(self, job: _Job[Any, Any]) -> None:
        try:
            for i, item in enumerate(job.items):
                with self._lock:
                    if job.given_up:
                        return
                    job.index, job.started = i, time.monotonic()
                result = job.fn(item)
                with self._lock:
                    if job.given_up:
                        return
                    job.results.append(result)
        except BaseException as e:  # handed to the caller, like an executor would
            with self._lock:
                job.error = e
        finally:
            with self._lock:
                job.finished = True
                wanted = not job.given_up
            if wanted:
                with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                    job.loop.call_soon_threadsafe(job.wake.set)
