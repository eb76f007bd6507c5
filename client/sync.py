"""A small synchronous JSON-RPC client over the Unix socket, standard library only.

It uses `_socket` and the C JSON scanner directly so that `pm status` starts in a few
milliseconds (the `socket` and `json` modules cost ~8 ms of imports here). Speaks either
framing; newline-delimited JSON by default.
"""

from __future__ import annotations

import _socket
import os
import sys
from collections import deque

from client import fastjson, frames
from client.errors import (
    PROTOCOL_VERSION,
    IncompatibleDaemon,
    ProtocolError,
    RemoteError,
    Unreachable,
)

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

_SO_PEERCRED = getattr(_socket, "SO_PEERCRED", None)
_SAFE_METHOD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._$/")


def _encode(obj: Any) -> bytes:
    return fastjson.dumps(obj).encode("utf-8")


class Client:
    """`path` is the daemon's socket; by default the one `pm` talks to (client.locations:
    --socket aside, $PM_AGENT_SOCKET, then the config file's `socket`, then the default)."""

    def __init__(
        self, path: str | None = None, *, timeout: float | None = 60.0, framing: str = "ndjson"
    ) -> None:
        if path is None:
            from client import locations

            path = locations.client_socket_path()
        self.path = path
        self.framing = frames.check(framing)
        self._timeout = timeout
        self._sock: Any = None
        self._buffer = b""
        self._next_id = 1
        self._notifications: deque[dict[str, Any]] = deque()
        self.lost: str | None = None  # why notifications() ended
        self.peer_pid: int | None = None  # the daemon's process, as the kernel says (Linux)

    # --- connection -------------------------------------------------------------------
    def connect(self) -> Client:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.settimeout(self._timeout)
        try:
            sock.connect(self.path)
        except (FileNotFoundError, ConnectionRefusedError) as e:
            sock.close()
            raise Unreachable(f"nothing answers on {self.path} ({e.strerror})") from None
        except OSError as e:
            sock.close()
            raise Unreachable(f"cannot connect to {self.path}: {e.strerror}") from None
        if _SO_PEERCRED is not None:
            raw = sock.getsockopt(_socket.SOL_SOCKET, _SO_PEERCRED, 12)
            pid = int.from_bytes(raw[0:4], sys.byteorder, signed=True)  # struct ucred
            uid = int.from_bytes(raw[4:8], sys.byteorder, signed=True)
            if uid != os.getuid():
                sock.close()
                raise Unreachable(
                    f"{self.path} is served by uid {uid}, not by you (uid {os.getuid()}); "
                    "refusing to talk to it"
                )
            self.peer_pid = pid if pid > 0 else None
        self._sock = sock
        return self

    def settimeout(self, seconds: float | None) -> None:
        """How long a read may wait for the daemon (None: for ever, as a subscriber does)."""
        self._timeout = seconds
        if self._sock is not None:
            self._sock.settimeout(seconds)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Client:
        return self if self._sock is not None else self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def handshake(self, name: str = "pm") -> dict[str, Any]:
        """`daemon.hello`: refuse, clearly, a daemon that speaks another protocol."""
        hello = self.hello(name)
        check_protocol(hello.get("protocol_version"), hello.get("daemon_version"))
        return hello

    def hello(self, name: str = "pm") -> dict[str, Any]:
        """`daemon.hello`, unchecked: versions, capabilities, state. A daemon too old to know
        the method at all is an IncompatibleDaemon error."""
        try:
            hello: dict[str, Any] = self.call(
                "daemon.hello", {"client": name, "protocol_version": PROTOCOL_VERSION}
            )
        except RemoteError as e:
            if e.code != -32601:
                raise
            raise IncompatibleDaemon(
                "the daemon on this socket does not know daemon.hello: it is not a pm-agentd "
                "this client can talk to; restart it from this install: pm daemon restart"
            ) from None
        if not isinstance(hello, dict):
            raise ProtocolError(f"daemon.hello answered {hello!r}, not an object")
        return hello

    # --- calls ------------------------------------------------------------------------
    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        on_notification: Callable[[dict[str, Any]], None] | None = None,
    ) -> Any:
        """Send a request and wait for its result. Notifications that arrive meanwhile go to
        `on_notification`, or are kept for `notifications()`."""
        request_id = self._next_id
        self._next_id += 1
        if params is None and set(method) <= _SAFE_METHOD:
            body = b'{"jsonrpc":"2.0","id":%d,"method":"%s"}' % (request_id, method.encode())
        else:
            message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
            if params is not None:
                message["params"] = params
            body = _encode(message)
        self.send_raw(body)
        while True:
            reply = self.receive()
            if "id" not in reply:
                if on_notification is not None:
                    on_notification(reply)
                else:
                    self._notifications.append(reply)
                continue
            if reply.get("id") != request_id:
                continue  # an answer to something else on this connection
            if "error" in reply:
                raise RemoteError.from_error(reply["error"])
            return reply.get("result")

    def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self.send_raw(_encode(message))

    def notifications(self) -> Iterator[dict[str, Any]]:
        """Notifications as they arrive (kept ones first); ends when the daemon closes."""
        while True:
            while self._notifications:
                yield self._notifications.popleft()
            try:
                message = self.receive()
            except ProtocolError as e:
                self.lost = str(e)
                return
            if "id" not in message:
                yield message

    # --- framing ----------------------------------------------------------------------
    def send_raw(self, body: bytes) -> None:
        if self._sock is None:
            self.connect()
        try:
            self._sock.sendall(frames.frame(body, self.framing))
        except OSError as e:
            raise Unreachable(f"the daemon closed the connection ({e.strerror})") from None

    def receive(self) -> dict[str, Any]:
        body = self._read_frame()
        try:
            message = fastjson.loads(body)
        except ValueError as e:
            raise ProtocolError(f"the daemon sent malformed JSON: {e}") from None
        if isinstance(message, list):
            raise ProtocolError("unexpected batch reply")
        if not isinstance(message, dict):
            raise ProtocolError(f"unexpected message: {message!r}")
        return message

    def _read_frame(self) -> bytes:
        if self.framing == "ndjson":
            while b"\n" not in self._buffer:
                self._fill()
            line, _, self._buffer = self._buffer.partition(b"\n")
            return line
        while frames.HEADER_END not in self._buffer:
            self._fill()
        head, _, self._buffer = self._buffer.partition(frames.HEADER_END)
        size = frames.content_length(head)
        while len(self._buffer) < size:
            self._fill()
        body, self._buffer = self._buffer[:size], self._buffer[size:]
        return body

    def _fill(self) -> None:
        try:
            chunk = self._sock.recv(262144)
        except TimeoutError:
            raise ProtocolError("timed out waiting for the daemon") from None
        except OSError as e:
            raise ProtocolError(f"connection lost: {e.strerror}") from None
        if not chunk:
            raise ProtocolError("the daemon closed the connection")
        self._buffer += chunk


def check_protocol(theirs: Any, daemon_version: Any) -> None:
    if theirs != PROTOCOL_VERSION:
        raise IncompatibleDaemon(
            f"pm-agentd {daemon_version} speaks protocol {theirs}, this client speaks "
            f"{PROTOCOL_VERSION}; restart the daemon so both come from the same install: "
            "pm daemon restart"
        )
