"""The fuzz's wire: framing, a blocking connection, checks on what the daemon sends, and the
watchdog client that times kv.get round trips beside the fuzz."""

from __future__ import annotations

import json
import re
import select
import socket
import time
from typing import Any

FRAMINGS = ("ndjson", "lsp")
WATCH_NS, WATCH_KEY, WATCH_VALUE = "reliability-watch", "alive", {"alive": True}


class FuzzFailure(AssertionError):
    """The daemon broke a promise; the message says which, with the group that did it."""


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


# --- the wire ------------------------------------------------------------------------------


def frame(framing: str, body: bytes) -> bytes:
    return (
        body + b"\n" if framing == "ndjson" else b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


def framing_of(first_bytes: bytes) -> str:
    """What the daemon will take the connection for (framing.detect)."""
    stripped = first_bytes.lstrip(b" \t\r\n")
    return "ndjson" if stripped[:1] in (b"{", b"[") else "lsp"


class Wire:
    """One blocking connection in one framing: bytes out, whole frames in."""

    def __init__(self, path: str, framing: str, timeout: float = 30.0) -> None:
        self.framing = framing
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self._buffer = bytearray()
        self._pos = 0  # where the unread part of _buffer starts

    def send(self, data: bytes) -> bool:
        """False if the daemon has closed the connection. Replies that arrive meanwhile are
        kept for read(): a client that sends without reading would deadlock with the daemon
        (it stops reading a connection whose replies are not taken)."""
        view = memoryview(data)
        timeout = self.sock.gettimeout()
        try:
            while view:
                readable, writable, _ = select.select([self.sock], [self.sock], [], timeout)
                if not readable and not writable:
                    raise TimeoutError("the daemon neither read nor wrote")
                if readable and not self._fill():
                    return False
                if writable:
                    view = view[self.sock.send(view[: 1 << 18]) :]
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    def _fill(self) -> bool:
        try:
            chunk = self.sock.recv(1 << 20)
        except ConnectionResetError:
            return False
        if self._pos > len(self._buffer) // 2:  # drop what was read (amortised O(1))
            del self._buffer[: self._pos]
            self._pos = 0
        self._buffer += chunk
        return bool(chunk)

    def _take(self, end: int, skip: int = 0) -> bytes:
        data = bytes(self._buffer[self._pos : end])
        self._pos = end + skip
        return data

    def read(self) -> bytes | None:
        """The next frame's body; None once the daemon closed the connection."""
        buffer = self._buffer
        if self.framing == "ndjson":
            while (end := buffer.find(b"\n", self._pos)) < 0:
                if not self._fill():
                    return None
            return self._take(end, 1)
        while (end := buffer.find(b"\r\n\r\n", self._pos)) < 0:
            if not self._fill():
                return None
        head = self._take(end, 4)
        match = re.fullmatch(rb"Content-Length: (\d+)", head)
        if match is None:
            raise FuzzFailure(f"the daemon sent a malformed header block {head[:100]!r}")
        size = int(match.group(1))
        while len(buffer) - self._pos < size:
            if not self._fill():
                raise FuzzFailure("the daemon closed the connection in the middle of a frame")
        return self._take(self._pos + size)

    def close(self) -> None:
        self.sock.close()


def check_frame(body: bytes) -> list[dict[str, Any]]:
    """The messages in one frame from the daemon, each checked to be well-formed."""
    try:
        decoded = json.loads(body)
    except ValueError:
        raise FuzzFailure(f"the daemon sent a frame that is not JSON: {body[:200]!r}") from None
    items = decoded if isinstance(decoded, list) else [decoded]
    if not items:
        raise FuzzFailure("the daemon sent an empty batch reply")
    for item in items:
        if not isinstance(item, dict) or item.get("jsonrpc") != "2.0":
            raise FuzzFailure(f"not a JSON-RPC 2.0 message: {body[:200]!r}")
        if "id" not in item and isinstance(item.get("method"), str):
            if isinstance(decoded, list):
                raise FuzzFailure(f"a notification inside a batch reply: {body[:200]!r}")
            continue
        if "id" not in item or ("result" in item) == ("error" in item):
            raise FuzzFailure(f"not a response (id, and result or error): {body[:200]!r}")
        error = item.get("error")
        if error is not None and not (
            isinstance(error.get("code"), int)
            and isinstance(error.get("message"), str)
            and isinstance(error.get("data", {}).get("kind"), str)
        ):
            raise FuzzFailure(f"a malformed error object: {body[:200]!r}")
    return items


class Watchdog:
    """The other client: kv.get round trips on its own connection, timed."""

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout
        self.wire = Wire(path, "ndjson", timeout)
        self.rtts: list[float] = []
        self.lost = 0  # times its value was gone (a db.reset/restore/import replaced the file)
        self._n = 0
        self.put()

    def _call(self, wire: Wire, method: str, params: dict[str, Any]) -> Any:
        self._n += 1
        message = {"jsonrpc": "2.0", "id": self._n, "method": method, "params": params}
        if not wire.send(json.dumps(message).encode() + b"\n"):
            raise FuzzFailure(f"the watchdog's connection was closed (sending {method})")
        try:
            body = wire.read()
        except TimeoutError:
            raise FuzzFailure(
                f"the daemon did not answer {method} within {self.timeout} s"
            ) from None
        if body is None:
            raise FuzzFailure(f"the watchdog's connection was closed (waiting for {method})")
        reply = check_frame(body)[0]
        if reply.get("id") != self._n or "result" not in reply:
            raise FuzzFailure(f"the watchdog's {method} failed: {body[:300]!r}")
        return reply["result"]

    def put(self) -> None:
        params = {"namespace": WATCH_NS, "key": WATCH_KEY, "value": WATCH_VALUE}
        self._call(self.wire, "kv.set", params)

    def check(self, fresh: bool = False) -> float:
        """One kv.get round trip (on a new connection if `fresh`); its time in seconds."""
        wire = Wire(self.path, "ndjson", self.timeout) if fresh else self.wire
        try:
            started = time.perf_counter()
            result = self._call(wire, "kv.get", {"namespace": WATCH_NS, "key": WATCH_KEY})
            elapsed = time.perf_counter() - started
        finally:
            if fresh:
                wire.close()
        self.rtts.append(elapsed)
        if result.get("value") != WATCH_VALUE:
            self.lost += 1
            self.put()
        return elapsed

    def close(self) -> None:
        self.wire.close()
