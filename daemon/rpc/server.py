"""The Unix-socket server: one asyncio Protocol per connection, limits, and a graceful close.

Each connection picks its framing from its first byte, checks its peer's uid, and feeds
framed messages to the transport-free Dispatcher. A client cannot stall others: a connection
with too many requests in flight (or `max_message_bytes` of them), or too much unread output,
stops being read and starts nothing more of what it already sent (nor any read of what it
started: daemon.rpc.fairness); one whose unread output passes the hard limit, or whose replies
have gone unread for `message_timeout_s`, is closed; idle ones are closed after `idle_timeout`;
a message that has begun must be complete within `message_timeout_s` (a client sending a byte
now and then cannot hold a connection slot for ever), and a connection being closed whose
peer does not take its last bytes within that time is aborted.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import os
import socket
import time
import typing
from typing import Any

import structlog

from daemon.rpc import framing, wire
from daemon.rpc.dispatcher import Dispatcher, Session, current_request
from daemon.rpc.errors import (
    Busy,
    Forbidden,
    InternalError,
    ParseError,
    RpcError,
    ShuttingDown,
    TooLarge,
)
from daemon.rpc.peercred import peer_uid
from daemon.rpc.resumed import Resumed

log = structlog.get_logger("pm.server")

MESSAGE_TIMEOUT_S = 30.0  # a message must arrive within this, from its first byte to its last
STOP_QUIET_S = 0.05  # at shutdown, a connection closes once it has been this quiet …
STOP_LINGER_MAX_S = 1.0  # … or after this, whatever its client keeps sending


class Limits:
    def __init__(
        self,
        *,
        max_message_bytes: int,
        max_output_buffer_bytes: int,
        max_connections: int,
        max_inflight: int,
        idle_timeout_s: float,
        message_timeout_s: float = MESSAGE_TIMEOUT_S,
    ) -> None:
        self.max_message_bytes = max_message_bytes
        self.max_output_buffer_bytes = max_output_buffer_bytes
        self.max_connections = max_connections
        self.max_inflight = max_inflight
        self.idle_timeout_s = idle_timeout_s
        # A message may not take longer to arrive than a whole idle period either.
        self.message_timeout_s = (
            min(message_timeout_s, idle_timeout_s) if idle_timeout_s > 0 else message_timeout_s
        )


class Connection(asyncio.Protocol, Session):
    def __init__(self, server: Server) -> None:
        Session.__init__(self)
        self._server = server
        # made by the loop's protocol factory; asking asyncio for it costs a system call
        self._loop = asyncio.get_running_loop()
        self._limits = server.limits
        self._transport: asyncio.Transport | None = None
        self._framing: framing.Framing | None = None
        self._pending = b""  # blank bytes before the first message decides the framing
        self._tasks: dict[asyncio.Task[None], int] = {}  # in flight, with each message's size
        self._inflight_bytes = 0
        self._backlog: collections.deque[bytes] = collections.deque()  # read, not yet started
        self._reading_paused = False
        self._writing_paused = False
        self._eof = False  # the peer half-closed: it sends nothing more, and may still read
        self.last_active = time.monotonic()  # a complete message arrived or a reply was sent
        self._message_started: float | None = None  # when the incomplete buffered message began
        self._closing_since: float | None = None
        self._writing_paused_since = 0.0

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
        now = time.monotonic()
        if self._framing is None:
            data = self._pending + data
            self._framing = framing.detect(data, self._limits.max_message_bytes)
            if self._framing is None:
                self._pending = data
                if self._message_started is None:
                    self._message_started = now
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
        # Only whole messages count as activity: stray bytes do not keep a connection alive.
        if frames:
            self.last_active = now
        if not self._framing.partial():
            self._message_started = None
        elif frames or self._message_started is None:
            self._message_started = now
        if frames:
            self._backlog.extend(frames)
            self._pump()

    def eof_received(self) -> bool:
        """The client half-closed (shutdown(SHUT_WR), Node's `socket.end()`): it is done.
        What it sent last is answered, even a last line without its newline; the connection
        closes once every reply is written (subscriptions end with it: a client that ends its
        side waits for ours)."""
        if self._eof or self.closed:
            return not self.closed
        self._eof = True
        self._message_started = None
        if self._framing is not None:
            try:
                frames = self._framing.finish()
            except framing.FramingError as e:
                self._fatal(ParseError(f"Parse error: {e}"))
                return True
            if frames:
                self.last_active = time.monotonic()
                self._backlog.extend(frames)
                self._pump()
        self._close_if_done()
        return True  # keep writing: the replies are still to come

    def _close_if_done(self) -> None:
        if self._eof and not (self._tasks or self._backlog):
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._backlog.clear()
        for task in self._tasks:
            if task not in self.cancel_reasons:
                task.cancel()
        self.run_close_callbacks()
        self._server.discard(self)

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._writing_paused_since = time.monotonic()
        self.read_share.pause()
        self._update_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self.read_share.resume()
        self._pump()

    # --- Session ----------------------------------------------------------------------
    def notify(self, method: str, params: Any) -> None:
        self._send(wire.notification(method, params))

    # --- internals --------------------------------------------------------------------
    def _room(self) -> bool:
        """Whether one more message may start: the client takes its replies, and what is in
        flight is under both caps (one message always may, however big)."""
        if self._writing_paused:
            return False
        return not self._tasks or (
            len(self._tasks) < self._limits.max_inflight
            and self._inflight_bytes < self._limits.max_message_bytes
        )

    def _pump(self) -> None:
        """Start what was read while there is room; stop reading while there is not. A single
        read may hold thousands of small messages: they wait here, as bytes, not as tasks."""
        while self._backlog and not self.closed and self._room():
            self._start(self._backlog.popleft())
        self._update_reading()

    def _start(self, frame: bytes) -> None:
        """Serve one message: its first step runs now, and most requests end in it (a read
        answered on the loop's thread); one that has to wait goes on in a task. A task for
        every message cost ~5 µs of a ~35 µs kv.get (bench/RESULTS.md, "The hand-off tax")."""
        context = contextvars.copy_context()
        serving = self._serve(frame)
        try:
            waiting_on = context.run(serving.send, None)
        except StopIteration:
            return  # answered
        task = self._loop.create_task(Resumed(serving, waiting_on), context=context)
        running = context.get(current_request)
        if running is not None and running.task is None:
            running.task = task
        self._tasks[task] = len(frame)
        self._inflight_bytes += len(frame)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight_bytes -= self._tasks.pop(task, 0)
        if self.cancel_reasons:
            self.cancel_reasons.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("connection task failed", exc_info=task.exception())
        if self._backlog or self._reading_paused:
            self._pump()
        self._close_if_done()

    async def _serve(self, frame: bytes) -> None:
        try:
            reply, after = await self._server.dispatcher.handle(frame, self, eager=True)
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
        if transport is None or self.closed or self._eof:  # after EOF there is nothing to read
            return
        should_pause = bool(self._backlog) or not self._room()
        if should_pause and not self._reading_paused:
            transport.pause_reading()
            self._reading_paused = True
        elif not should_pause and self._reading_paused:
            transport.resume_reading()
            self._reading_paused = False
            if self._message_started is not None:
                # The time we did not read does not count against the client.
                self._message_started = time.monotonic()

    def _refuse(self, error: RpcError) -> None:
        """Say why in NDJSON (the framing is not known yet), then close."""
        assert self._transport is not None
        self.closed = True
        self._server.refused.add(self)  # swept until closed: its peer may never read
        self._transport.write(wire.error_response(None, error) + b"\n")
        self._close_transport()

    def _fatal(self, error: RpcError) -> None:
        """The stream cannot continue: answer once in the connection's framing, then close."""
        transport = self._transport
        if transport is None or self.closed:
            return
        body = wire.error_response(None, error)
        transport.write(self._framing.frame(body) if self._framing else body + b"\n")
        self.closed = True
        self._close_transport()

    @property
    def busy(self) -> bool:
        return bool(self._tasks) or self.subscriptions > 0

    def idle_for(self, now: float) -> float:
        return now - self.last_active

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._close_transport()

    def abort(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.abort()

    def _close_transport(self) -> None:
        assert self._transport is not None
        if self._closing_since is None:
            self._closing_since = time.monotonic()
        self._transport.close()  # flushes what is buffered first

    def sweep(self, now: float) -> None:
        """Called now and then: enforce the message deadline, the idle timeout, and the end
        of a close the peer does not complete by reading."""
        transport = self._transport
        if transport is None:
            return
        deadline = self._limits.message_timeout_s
        if transport.is_closing():
            if self._closing_since is not None and now - self._closing_since > deadline:
                log.warning(
                    "aborting a closed connection whose peer does not read",
                    buffered=transport.get_write_buffer_size(),
                )
                transport.abort()
            return
        if self._writing_paused and now - self._writing_paused_since > deadline:
            # Its replies have waited unread that long: it holds requests it will never read.
            log.warning(
                "closing a connection that does not read its replies",
                buffered=transport.get_write_buffer_size(),
                after_s=deadline,
            )
            self.abort()
            return
        started = self._message_started
        if started is not None and not self._reading_paused and now - started > deadline:
            log.warning("closing a connection whose message did not complete", after_s=deadline)
            self._fatal(
                ParseError(f"Parse error: message not complete after {deadline:g} s; closing")
            )
            return
        idle = self._limits.idle_timeout_s
        if idle > 0 and not self.busy and self.idle_for(now) > idle:
            log.info("closing an idle connection", idle_s=round(self.idle_for(now)))
            self.close()

    async def stop(self, deadline: float) -> None:
        """Let in-flight requests finish until `deadline`, then stop them with shutting_down."""
        loop = asyncio.get_running_loop()
        # What was read but not started gets its answer too (shutting_down), never silence.
        while self._backlog and not self.closed:
            self._start(self._backlog.popleft())
        pending = set(self._tasks)
        if pending:
            await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()))
        for request_id in list(self.inflight):
            self.cancel(request_id, "shutdown")
        leftover = set(self._tasks)
        if leftover:
            await asyncio.wait(leftover, timeout=1.0)
        self._answer_unsettled()
        await self._drain_quietly(loop.time() + STOP_LINGER_MAX_S)
        self.close()

    def _answer_unsettled(self) -> None:
        """A request still running after its cancellation is a write the writer already holds,
        waiting for the database (another program holding it locked): it ends as it ends, but
        its client hears shutting_down now, told that the outcome is unknown — never silence."""
        for request_id, running in list(self.inflight.items()):
            if running.task is not None and not running.task.done():
                self._send(
                    wire.error_response(
                        request_id,
                        ShuttingDown(
                            "the daemon is shutting down; this request was still waiting for "
                            "the database (another program may hold it locked), so whether it "
                            "took effect is not known: check before you retry",
                            outcome="unknown",
                        ),
                    )
                )

    async def _drain_quietly(self, until: float) -> None:
        """A client that just got its answer may have sent its next request already: keep
        reading until the connection has been quiet for STOP_QUIET_S, so such a request is
        answered (shutting_down), never dropped by a socket closing under it."""
        loop = asyncio.get_running_loop()
        while not self.closed and loop.time() < until:
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=max(0.0, until - loop.time()))
                continue
            quiet = time.monotonic() - self.last_active
            if quiet >= STOP_QUIET_S:
                return
            await asyncio.sleep(STOP_QUIET_S - quiet)


class Server:
    def __init__(self, dispatcher: Dispatcher, limits: Limits) -> None:
        self.dispatcher = dispatcher
        self.limits = limits
        self.connections: set[Connection] = set()
        self.refused: set[Connection] = set()  # told why, closing, not yet closed
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
        self.refused.discard(conn)

    async def serve(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(lambda: Connection(self), sock=sock)
        self._sweeper = loop.create_task(self._sweep(), name="pm-connection-sweeper")

    async def _sweep(self) -> None:
        shortest = self.limits.message_timeout_s
        if self.limits.idle_timeout_s > 0:
            shortest = min(shortest, self.limits.idle_timeout_s)
        while True:
            await asyncio.sleep(min(30.0, max(0.05, shortest / 4)))
            now = time.monotonic()
            for conn in [*self.connections, *self.refused]:
                conn.sweep(now)

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
        if self._server is None:
            return
        # With asyncio on Python 3.12+ this waits for every connection to close (uvloop and
        # 3.11 return at once); one whose peer does not read its last bytes would hold it for
        # ever, and the sweeper that aborts such closes is gone: bounded, then aborted.
        try:
            await asyncio.wait_for(self._server.wait_closed(), STOP_LINGER_MAX_S)
        except TimeoutError:
            left = [*self.connections, *self.refused]
            log.warning("aborting connections whose peers do not read", count=len(left))
            for conn in left:
                conn.abort()
            try:
                await asyncio.wait_for(self._server.wait_closed(), STOP_LINGER_MAX_S)
            except TimeoutError:
                log.error("the socket server did not close; stopping anyway")
