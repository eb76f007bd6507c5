"""Threads that each own one SQLite connection, fed by one queue, answering asyncio futures.

SQLite calls block, so they never run on the event loop. `run_in_executor` costs ~45 µs per
call here; this hand-off costs ~15 µs because a thread drains every job waiting and hands all
their results back to the loop in one `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_STOP = object()
_DRAIN_MAX = 32  # jobs one thread takes before handing results back


class WorkersStopped(Exception):
    """The workers stopped before this job ran."""


class ConnectionWorkers:
    """`count` threads, each with a connection made by `opener`, all serving one queue."""

    def __init__(
        self,
        name: str,
        count: int,
        opener: Callable[[], sqlite3.Connection],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._name = name
        self._count = count
        self._opener = opener
        self._loop = loop
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._stopped = False
        self._gate = threading.Lock()  # a job is queued either before the stops or not at all

    def start(self) -> None:
        """Start the threads; raises what the opener raised if a connection cannot be made."""
        errors: list[BaseException] = []
        ready = threading.Barrier(self._count + 1)
        for i in range(self._count):
            thread = threading.Thread(
                target=self._serve, args=(ready, errors), name=f"{self._name}-{i}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        ready.wait()
        if errors:
            self.stop()
            raise errors[0]

    def run(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run `fn(connection, *args)` on a worker thread."""
        future: asyncio.Future[T] = self._loop.create_future()
        with self._gate:
            if not self._stopped:
                self._jobs.put((future, fn, args))
                return future
        future.set_exception(WorkersStopped(f"{self._name} stopped"))
        return future

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the threads once the jobs queued before have run; a job queued later fails
        with WorkersStopped rather than wait for ever."""
        with self._gate:
            self._stopped = True
            for _ in self._threads:
                self._jobs.put(_STOP)
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        left = []  # only if a thread outlived the timeout: fail its jobs, do not strand them
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not _STOP:
                left.append((job[0], False, WorkersStopped(f"{self._name} stopped")))
        if left:
            self._hand_back(left)

    def _serve(self, ready: threading.Barrier, errors: list[BaseException]) -> None:
        conn: sqlite3.Connection | None = None
        try:
            conn = self._opener()
        except BaseException as e:
            errors.append(e)
        ready.wait()
        if conn is None:
            return
        try:
            self._loop_jobs(conn)
        finally:
            conn.close()

    def _loop_jobs(self, conn: sqlite3.Connection) -> None:
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is _STOP:
                return
            done = []
            stop = False
            while True:
                future, fn, args = job
                # A caller that stopped waiting (its client hung up) gets no work done for it.
                # (Reading `done()` from this thread is a benign race: at worst one job runs.)
                if not future.done():
                    try:
                        done.append((future, True, fn(conn, *args)))
                    except BaseException as e:
                        done.append((future, False, e))
                if len(done) >= _DRAIN_MAX:
                    break
                try:
                    job = jobs.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP:
                    stop = True
                    break
            if done:
                self._hand_back(done)
            if stop:
                return

    def _hand_back(self, done: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
        # RuntimeError: the loop is closed, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(_deliver, done)


def _deliver(done: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in done:
        if future.done():  # cancelled by a caller that stopped waiting
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
