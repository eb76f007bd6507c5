"""A connection's share of the reader threads.

The readers are shared by every client. A client that pipelines 128 requests for 1 MiB values
and never reads the replies used to fill their queue for its own sake: another client's
kv.get waited behind all of it (p99 ~300 ms against 0.4 ms idle). So a connection has a few
reads queued or running at once, and none start while it is not taking its replies: there
is nowhere for their results to go until it reads (and if it never does, the server cuts it
off at the message deadline).
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from types import TracebackType

READ_SLOTS = 4  # two reader threads kept busy by one client, with one result in hand each


class ReadShare:
    def __init__(self, slots: int = READ_SLOTS) -> None:
        self._slots = asyncio.Semaphore(slots)
        self._flowing = asyncio.Event()
        self._flowing.set()

    def pause(self) -> None:
        """The client stopped taking its replies: start no more of its reads."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def __aenter__(self) -> None:
        await self._slots.acquire()
        try:
            while not self._flowing.is_set():
                await self._flowing.wait()
        except BaseException:
            self._slots.release()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._slots.release()


# Set by the dispatcher for each request's task; None for the daemon's own work.
read_share: ContextVar[ReadShare | None] = ContextVar("read_share", default=None)
