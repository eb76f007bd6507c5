"""The bridge's connection to pm-agentd: made when first needed (starting the daemon as `pm`
does), made again after the daemon went away, and carrying the change events that feed
resource subscriptions and the long-polling `events` tool.

A call whose request never left (the connection was already known to be gone) is sent again
on a new connection. A call that was in flight when the connection dropped is sent again only
if it is safe to repeat (a read); a write gets a clear error instead, because the daemon may
have committed it before it went away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from client.aio import AsyncClient
from client.errors import ClientError, ProtocolError, RemoteError, Unreachable

log = logging.getLogger("pm.mcp")

STARTING_WAIT_S = 60.0  # how long a call waits while the daemon starts or migrates
RECONNECT_MAX_DELAY_S = 2.0  # the event feed's backoff ceiling while the daemon is away
CLIENT_NAME = "pm mcp"
RESEND_MAX = 3  # new connections tried for a call that could not even be sent

EventListener = Callable[[dict[str, Any]], None]


class ConnectionLost(ClientError):
    """The daemon went away while a write was in flight: it may or may not have been applied."""

    kind = "connection_lost"


class DaemonLink:
    def __init__(self, socket_path: str, *, spawn: bool = True) -> None:
        self.socket_path = socket_path
        self.spawn = spawn
        self._client: AsyncClient | None = None
        self._connecting = asyncio.Lock()
        self._listeners: list[EventListener] = []
        self._feed: asyncio.Task[None] | None = None  # the events connection, once wanted
        self._subscribed = asyncio.Event()
        self._last_seq: int | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._discovered: dict[str, Any] | None = None
        self._closed = False

    # --- calls --------------------------------------------------------------------------
    async def call(self, method: str, params: dict[str, Any] | None = None, *, safe: bool) -> Any:
        """`method` on the daemon; `safe`: repeating it cannot change anything (a read)."""
        waited = 0.0
        delay = 0.05
        resent = False
        unsent = 0
        while True:
            client = await self._connected(spawn=self.spawn)
            try:
                _, future = client.start_call(method, params)
            except ClientError as e:  # never sent: the connection was already gone
                self._forget(client)
                unsent += 1
                if unsent > RESEND_MAX:
                    raise
                log.info("connection to pm-agentd lost (%s); reconnecting", e)
                continue
            try:
                return await future
            except RemoteError as e:
                if e.kind not in ("starting", "shutting_down") or waited >= STARTING_WAIT_S:
                    raise
                # Starting: answers come once it is ready. Stopping: the next one will start.
                await asyncio.sleep(delay)
                waited += delay
                delay = min(delay * 2, 1.0)
            except (ProtocolError, Unreachable, ConnectionError) as e:
                self._forget(client)
                if not safe or resent:
                    raise ConnectionLost(
                        f"pm-agentd went away while {method} was in flight ({e}); it may or may "
                        "not have been applied: look before doing it again"
                    ) from None
                resent = True

    async def discover(self) -> dict[str, Any]:
        """The daemon's `rpc.discover` document (fetched again after a reconnect: the daemon
        may have been upgraded in between)."""
        if self._discovered is None:
            document: dict[str, Any] = await self.call("rpc.discover", safe=True)
            self._discovered = document
        return self._discovered

    # --- events -------------------------------------------------------------------------
    def on_event(self, listener: EventListener) -> None:
        """Call `listener(event)` for every change event from now on (and after reconnects,
        every event missed while away that the daemon's log still holds)."""
        self._listeners.append(listener)

    async def feed_events(self) -> None:
        """Make sure events flow, on a connection of their own; returns once subscribed."""
        if self._feed is None:
            await self._connected(spawn=self.spawn)  # the daemon is there (started if need be)
            self._feed = asyncio.get_running_loop().create_task(self._run_feed())
        try:
            await asyncio.wait_for(self._subscribed.wait(), STARTING_WAIT_S)
        except TimeoutError:
            raise Unreachable(
                f"pm-agentd did not take an event subscription within {STARTING_WAIT_S:g} s"
            ) from None

    async def next_event(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for any change event; False if none came."""
        await self.feed_events()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    # --- lifecycle ----------------------------------------------------------------------
    async def close(self) -> None:
        self._closed = True
        if self._feed is not None:
            self._feed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._feed
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _connected(self, *, spawn: bool) -> AsyncClient:
        client = self._client
        if client is not None:
            return client
        async with self._connecting:
            if self._client is None:
                self._client = await self._connect(spawn)
                self._discovered = None
            return self._client

    async def _connect(self, spawn: bool) -> AsyncClient:
        try:
            return await AsyncClient.connect(self.socket_path, name=CLIENT_NAME)
        except Unreachable:
            if not spawn:
                raise
        from client import spawn as spawner

        # Blocking (an flock, then polling until ready): off the event loop.
        await asyncio.to_thread(spawner.start, self.socket_path)
        return await AsyncClient.connect(self.socket_path, name=CLIENT_NAME)

    def _forget(self, client: AsyncClient) -> None:
        if self._client is client:
            self._client = None
            asyncio.get_running_loop().create_task(client.close())

    async def _run_feed(self) -> None:
        """Subscribe, deliver, and when the daemon goes away, come back when it does — never
        starting it from here: a daemon stopped on purpose stays stopped until someone calls."""
        delay = 0.05
        while not self._closed:
            try:
                client = await AsyncClient.connect(self.socket_path, name=CLIENT_NAME)
            except (ClientError, OSError) as e:
                log.debug("events: pm-agentd is away (%s)", e)
            else:
                try:
                    await self._subscribe(client)
                    delay = 0.05
                    await self._deliver(client)
                except (ClientError, OSError) as e:
                    log.info("events: the subscription ended (%s)", e)
                finally:
                    self._subscribed.clear()
                    await client.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_DELAY_S)

    async def _subscribe(self, client: AsyncClient) -> None:
        params: dict[str, Any] = {"topics": ["*"]}
        if self._last_seq is not None:
            params["since"] = self._last_seq  # what happened while we were away comes first
        reply = await client.call("events.subscribe", params)
        if self._last_seq is None:
            self._last_seq = int(reply.get("last_seq", 0))
        if reply.get("missed"):
            log.warning("events were pruned from the daemon's log while it was unreachable")
        self._subscribed.set()

    async def _deliver(self, client: AsyncClient) -> None:
        async for message in client.notifications():
            if message.get("method") != "events.event":
                continue
            event = (message.get("params") or {}).get("event") or {}
            seq = event.get("seq")
            if isinstance(seq, int):
                if self._last_seq is not None and seq <= self._last_seq:
                    continue  # replayed, and already seen
                self._last_seq = seq
            for listener in list(self._listeners):
                try:
                    listener(event)
                except Exception:  # one listener's bug must not stop the feed
                    log.exception("an event listener failed")
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_result(None)
