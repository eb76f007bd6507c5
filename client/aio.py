"""An asyncio JSON-RPC client for the daemon, in either framing, with msgspec.

Requests are pipelined on one connection: each gets a future, a reader task routes replies
by id, `$/progress` to the callback of its token, and other notifications to a queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec

from client import frames
from client.errors import PROTOCOL_VERSION, ProtocolError, RemoteError, Unreachable
from client.sync import check_protocol

ProgressCallback = Callable[[dict[str, Any]], None]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


class AsyncClient:
    """`path` is the daemon's socket; by default the one `pm` talks to (client.locations)."""

    def __init__(self, path: str | None = None, *, framing: str = "ndjson") -> None:
        if path is None:
            from client import locations

            path = locations.client_socket_path()
        self.path = path
        self.framing = frames.check(framing)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ids = itertools.count(1)
        self._tokens = itertools.count(1)
        self._pending: dict[Any, asyncio.Future[Any]] = {}
        self._progress: dict[Any, ProgressCallback] = {}
        self._notifications: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._lost: str | None = None  # why the connection ended, once it has
        self.hello: dict[str, Any] | None = None

    @classmethod
    async def connect(
        cls,
        path: str | None = None,
        *,
        framing: str = "ndjson",
        handshake: bool = True,
        name: str = "aio",
    ) -> AsyncClient:
        client = cls(path, framing=framing)
        try:
            client._reader, client._writer = await asyncio.open_unix_connection(
                client.path, limit=64 * 1024 * 1024
            )
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise Unreachable(f"nothing answers on {client.path} ({e.strerror})") from None
        client._task = asyncio.get_running_loop().create_task(client._read_loop())
        if handshake:
            client.hello = await client.call(
                "daemon.hello",
                {
                    "client": name,
                    "client_version": _version(),
                    "protocol_version": PROTOCOL_VERSION,
                },
            )
            check_protocol(client.hello.get("protocol_version"), client.hello.get("daemon_version"))
        return client

    async def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        progress: ProgressCallback | None = None,
    ) -> Any:
        request_id, future = self.start_call(method, params, progress=progress)
        try:
            return await future
        finally:
            self._pending.pop(request_id, None)

    def start_call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        progress: ProgressCallback | None = None,
    ) -> tuple[int, asyncio.Future[Any]]:
        """Send a request now; returns its id (for `cancel`) and the future of its result."""
        if self._lost is not None:  # nobody would ever answer: say so now
            raise ProtocolError(self._lost)
        request_id = next(self._ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if progress is not None:
            token = f"p{next(self._tokens)}"
            self._progress[token] = progress
            params = {**(params or {}), "workDoneToken": token}
        if params is not None:
            message["params"] = params
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            self._send(_encoder.encode(message))
        except BaseException:
            self._pending.pop(request_id, None)
            raise
        return request_id, future

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self._send(_encoder.encode(message))

    async def cancel(self, request_id: int) -> None:
        await self.notify("$/cancelRequest", {"id": request_id})

    async def notifications(self) -> AsyncIterator[dict[str, Any]]:
        """Notifications other than `$/progress`, until the connection closes."""
        while True:
            message = await self._notifications.get()
            if message is None:
                return
            yield message

    async def next_notification(self, timeout: float = 10.0) -> dict[str, Any]:
        message = await asyncio.wait_for(self._notifications.get(), timeout)
        if message is None:
            raise ProtocolError("the connection closed")
        return message

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, BrokenPipeError):
                await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- internals --------------------------------------------------------------------
    def _send(self, body: bytes) -> None:
        if self._writer is None or self._writer.is_closing():
            raise Unreachable("the connection is closed")
        self._writer.write(frames.frame(body, self.framing))

    async def _read_frame(self) -> bytes:
        assert self._reader is not None
        if self.framing == "ndjson":
            return (await self._reader.readuntil(b"\n"))[:-1]
        head = await self._reader.readuntil(frames.HEADER_END)
        return await self._reader.readexactly(
            frames.content_length(head[: -len(frames.HEADER_END)])
        )

    async def _read_loop(self) -> None:
        error: BaseException = ProtocolError("the daemon closed the connection")
        try:
            while True:
                self._route(_decoder.decode(await self._read_frame()))
        except (asyncio.IncompleteReadError, ConnectionError) as e:
            error = ProtocolError(f"the daemon closed the connection ({e.__class__.__name__})")
        except msgspec.DecodeError as e:
            error = ProtocolError(f"malformed message from the daemon: {e}")
        finally:
            self._lost = str(error)
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(error)
            self._notifications.put_nowait(None)

    def _route(self, message: Any) -> None:
        if isinstance(message, list):
            for item in message:
                self._route(item)
            return
        if "id" in message and ("result" in message or "error" in message):
            future = self._pending.get(message["id"])
            if future is None or future.done():
                return
            if "error" in message:
                future.set_exception(RemoteError.from_error(message["error"]))
            else:
                future.set_result(message.get("result"))
            return
        if message.get("method") == "$/progress":
            params = message.get("params") or {}
            callback = self._progress.get(params.get("token"))
            if callback is not None:
                callback(params.get("value") or {})
                if (params.get("value") or {}).get("kind") == "end":
                    self._progress.pop(params.get("token"), None)
            return
        self._notifications.put_nowait(message)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("pm-agent")
    except Exception:
        return "unknown"
