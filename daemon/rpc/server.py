"""The Unix-socket server: one asyncio Protocol per connection, limits, and a graceful close.

Each connection picks its framing from its first byte, checks its peer's uid, and feeds
framed messages to the transport-free Dispatcher. A client cannot stall others: a connection
with too many requests in flight or too much unread output stops being read; one whose
unread output passes the hard limit is closed; idle ones are closed after `idle_timeout`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import typing
from typing import Any

import structlog

from daemon.errors import (
    Busy,
    Forbidden,
    InternalError,
    ParseError,
    RpcError,
    ShuttingDown,
    TooLarge,
)
from daemon.rpc import framing, wire
from daemon.rpc.dispatcher import Dispatcher, Session
from daemon.rpc.peercred import peer_uid

log = structlog.get_logger("pm.server")


class Limits:
    def __init__(
        self,
        *,
        max_message_bytes: int,
        max_output_buffer_bytes: int,
        max_connections: int,
        max_inflight: int,
        idle_timeout_s: float,
    ) -> None:
        self.max_message_bytes = max_message_bytes
        self.max_output_buffer_bytes = max_output_buffer_bytes
        self.max_connections = max_connections
        self.max_inflight = max_inflight
        self.idle_timeout_s = idle_timeout_s


class Connection(asyncio.Protocol, Session):
    def __init__(self, server: Server) -> None:
        Session.__init__(self)
        self._server = server
        self._limits = server.limits
        self._transport: asyncio.Transport | None = None
        self._framing: framing.Framing | None = None
        self._pending = b""  # blank bytes before the first message decides the framing
        self._tasks: set[asyncio.Task[None]] = set()
        self._reading_paused = False
        self._writing_paused = False
        self.last_active = time.monotonic()

    # --- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = typing.cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._transport = transport
        uid = peer_uid(transport.get_extra_info("socket"))
        if uid is not None and uid != os.getuid():
            log.warning("refused peer of another user", peer_uid=uid)
            self._refuse(Forbidden(f"connection refused: uid {uid} is not this daemon's owner"))
            return
        if not self._server.admit(self):
            self._refuse(
                ShuttingDown("the daemon is shutting down")
                if self._server.closing
                else Busy(
                    f"too many connections (limit {self._limits.max_connections}); retry shortly"
                )
            )
            return
        transport.set_write_buffer_limits(high=256 * 1024)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.last_active = time.monotonic()
        if self._framing is None:
            data = self._pending + data
            self._framing = framing.detect(data, self._limits.max_message_bytes)
            if self._framing is None:
                self._pending = data
                if len(data) > 1024:
                    self._fatal(ParseError("only blank bytes received"))
                return
            self._pending = b""
        try:
            frames = self._framing.feed(data)
        except framing.FrameTooLarge as e:
            self._fatal(TooLarge(str(e), limit=e.limit))
            return
        except framing.FramingError as e:
            self._fatal(ParseError(f"Parse error: {e}"))
            return
        for frame in frames:
            self._start(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for task in self._tasks:
            if task not in self.cancel_reasons:
                task.cancel()
        self.run_close_callbacks()
        self._server.discard(self)

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._update_reading()

    # --- Session ----------------------------------------------------------------------
    def notify(self, method: str, params: Any) -> None:
        self._send(wire.notification(method, params))

    # --- internals --------------------------------------------------------------------
    def _start(self, frame: bytes) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(frame))
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        if len(self._tasks) >= self._limits.max_inflight:
            self._update_reading()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self.cancel_reasons:
            self.cancel_reasons.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("connection task failed", exc_info=task.exception())
        if self._reading_paused:
            self._update_reading()

    async def _serve(self, frame: bytes) -> None:
        try:
            reply, after = await self._server.dispatcher.handle(frame, self)
        except Exception:
            # The dispatcher answers every failure itself; this is the last line of defence so
            # a bug never leaves a client waiting in silence.
            log.exception("dispatch failed")
            reply, after = wire.error_response(None, InternalError("internal error")), []
        if reply is not None:
            self._send(reply)
        self.last_active = time.monotonic()
        for callback in after:
            callback()

    def _send(self, body: bytes) -> None:
        transport = self._transport
        if self.closed or transport is None or transport.is_closing():
            return
        assert self._framing is not None
        transport.write(self._framing.frame(body))
        if transport.get_write_buffer_size() > self._limits.max_output_buffer_bytes:
            log.warning(
                "closing a connection that does not read its replies",
                buffered=transport.get_write_buffer_size(),
            )
            self.closed = True
            transport.abort()

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None or self.closed:
            return
        should_pause = self._writing_paused or len(self._tasks) >= self._limits.max_inflight
        if should_pause and not self._reading_paused:
            transport.pause_reading()
            self._reading_paused = True
        elif not should_pause and self._reading_paused:
            transport.resume_reading()
            self._reading_paused = False

    def _refuse(self, error: RpcError) -> None:
        """Say why in NDJSON (the framing is not known yet), then close."""
        assert self._transport is not None
        self.closed = True
        self._transport.write(wire.error_response(None, error) + b"\n")
        self._transport.close()

    def _fatal(self, error: RpcError) -> None:
        """The stream cannot continue: answer once in the connection's framing, then close."""
        transport = self._transport
        if transport is None or self.closed:
            return
        body = wire.error_response(None, error)
        transport.write(self._framing.frame(body) if self._framing else body + b"\n")
        self.closed = True
        transport.close()

    @property
    def busy(self) -> bool:
        return bool(self._tasks) or self.subscriptions > 0

    def idle_for(self, now: float) -> float:
        return now - self.last_active

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    async def stop(self, deadline: float) -> None:
        """Let in-flight requests finish until `deadline`, then stop them with shutting_down."""
        loop = asyncio.get_running_loop()
        pending = set(self._tasks)
        if pending:
            await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()))
        for request_id in list(self.inflight):
            self.cancel(request_id, "shutdown")
        leftover = set(self._tasks)
        if leftover:
            await asyncio.wait(leftover, timeout=1.0)
        self.close()


class Server:
    def __init__(self, dispatcher: Dispatcher, limits: Limits) -> None:
        self.dispatcher = dispatcher
        self.limits = limits
        self.connections: set[Connection] = set()
        self.closing = False
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task[None] | None = None

    def admit(self, conn: Connection) -> bool:
        if self.closing or len(self.connections) >= self.limits.max_connections:
            return False
        self.connections.add(conn)
        return True

    def discard(self, conn: Connection) -> None:
        self.connections.discard(conn)

    async def serve(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(lambda: Connection(self), sock=sock)
        if self.limits.idle_timeout_s > 0:
            self._sweeper = loop.create_task(self._sweep_idle(), name="pm-idle-sweeper")

    async def _sweep_idle(self) -> None:
        timeout = self.limits.idle_timeout_s
        while True:
            await asyncio.sleep(min(30.0, max(0.05, timeout / 4)))
            now = time.monotonic()
            for conn in list(self.connections):
                if not conn.busy and conn.idle_for(now) > timeout:
                    log.info("closing an idle connection", idle_s=round(conn.idle_for(now)))
                    conn.close()

    def stop_accepting(self) -> None:
        self.closing = True
        if self._server is not None:
            self._server.close()

    async def close(self, grace_s: float) -> None:
        """Stop accepting; give in-flight requests `grace_s`; answer the rest shutting_down."""
        self.stop_accepting()
        if self._sweeper is not None:
            self._sweeper.cancel()
        deadline = asyncio.get_running_loop().time() + grace_s
        await asyncio.gather(*(conn.stop(deadline) for conn in list(self.connections)))
        if self._server is not None:
            await self._server.wait_closed()
