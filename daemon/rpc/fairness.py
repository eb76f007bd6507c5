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
from collections import deque
from contextvars import ContextVar

READ_SLOTS = 4  # two reader threads kept busy by one client, with one result in hand each


class ReadShare:
    """Slots for one connection's reads. `take()` is synchronous when a slot is free (the
    common case costs no coroutine: this is on every read's path); `wait_turn()` waits for
    one, first come first served; `give_back()` after each read."""

    def __init__(self, slots: int = READ_SLOTS) -> None:
        self._slots = slots
        self._used = 0
        self._flowing = True
        self._waiters: deque[asyncio.Future[None]] = deque()

    def take(self) -> bool:
        if self._flowing and self._used < self._slots and not self._waiters:
            self._used += 1
            return True
        return False

    async def wait_turn(self) -> None:
        """Wait until a slot is handed over (it is then taken)."""
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.give_back()  # handed over just as the caller went: pass it on
            elif turn in self._waiters:  # (`_hand_on` drops cancelled turns it meets)
                self._waiters.remove(turn)
            raise

    def give_back(self) -> None:
        self._used -= 1
        if self._waiters:
            self._hand_on()

    def pause(self) -> None:
        """The client stopped taking its replies: start no more of its reads."""
        self._flowing = False

    def resume(self) -> None:
        self._flowing = True
        self._hand_on()

    def _hand_on(self) -> None:
        while self._flowing and self._used < self._slots and self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():
                self._used += 1
                turn.set_result(None)


# Set by the dispatcher for each request's task; None for the daemon's own work.
read_share: ContextVar[ReadShare | None] = ContextVar("read_share", default=None)
