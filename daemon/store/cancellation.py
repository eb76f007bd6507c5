"""How a cancelled caller of a write that already went to the writer is answered.

A write handed to a batch commits (or fails) whatever happens to its caller. Internal work
(scans, jobs, shutdown) is cancelled the asyncio way: it waits for that outcome, then the
cancellation goes on. An RPC request instead reports the outcome, because telling a client
"cancelled" about a write that was committed would be a lie; the dispatcher sets this flag
for the task of each request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")

outcome_over_cancel: ContextVar[bool] = ContextVar("outcome_over_cancel", default=False)


async def settle(work: Awaitable[T]) -> T:
    """Run `work` to its end even if the caller is cancelled meanwhile.

    For work that must not stop half-way (the database paused, its file being swapped). A
    cancelled caller then gets the outcome if it is a client's request (see above), or the
    cancellation once the work is done.
    """
    task = asyncio.ensure_future(work)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():  # the work itself was cancelled (the loop is closing)
                raise
            cancelled = True
            continue
        if cancelled and not outcome_over_cancel.get():
            raise asyncio.CancelledError
        return result


async def wait_set(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until `event` is set, at most `timeout` seconds (None: no limit); True if it was.

    Not `asyncio.wait_for(event.wait(), timeout)`: on Python 3.11 a cancellation that arrives
    just as the event is set is dropped (wait_for returns the result instead), and a task
    cancelled at stop went on to sleep its whole interval, keeping the daemon from exiting.
    Nor `asyncio.timeout`, which needs a task: a request's first step runs outside one
    (daemon.rpc.server)."""
    if event.is_set():
        return True
    waiting = asyncio.ensure_future(event.wait())
    try:
        done, _ = await asyncio.wait({waiting}, timeout=timeout)
    finally:
        waiting.cancel()
    return bool(done)
