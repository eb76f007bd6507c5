"""Abusive clients (never reading, hogging connections, sending a byte now and then), each run
in its own process, and a good client's round trips timed beside them."""

from __future__ import annotations

import collections
import contextlib
import json
import multiprocessing
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from bench.fuzz_wire import Watchdog
from bench.load import end_children

# --- abusers --------------------------------------------------------------------------------

_FORK = multiprocessing.get_context("fork")


@dataclass
class Abuse:
    """What one abuser process saw: one entry per connection it lost, and how."""

    cut_after: list[float] = field(default_factory=list)  # seconds from connect to closed
    sent_before_cut: list[int] = field(default_factory=list)  # bytes
    messages: collections.Counter[str] = field(default_factory=collections.Counter)
    admitted: int = 0
    refused: int = 0
    failure: str = ""


def _first_error(data: bytes) -> str:
    for line in data.splitlines():
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            error = json.loads(line)["error"]
            return f"{error['code']} {error['data']['kind']}: {error['message']}"
    return "closed without a word"


def non_reader(path: str, request: bytes, until: float) -> Abuse:
    """Send `request` again and again, never read; when cut off, start over."""
    out = Abuse()
    while time.monotonic() < until:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        sock.settimeout(0.2)
        opened, sent = time.monotonic(), 0
        try:
            while time.monotonic() < until:
                try:
                    sent += sock.send(request)
                except TimeoutError:
                    continue
        except (BrokenPipeError, ConnectionResetError):
            out.cut_after.append(time.monotonic() - opened)
            out.sent_before_cut.append(sent)
            out.messages["cut off (EPIPE/ECONNRESET)"] += 1
        finally:
            sock.close()
    return out


def open_many(path: str, count: int) -> list[tuple[socket.socket, float]]:
    """`count` non-blocking connections, each with when it was opened."""
    socks = []
    for _ in range(count):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        sock.setblocking(False)
        socks.append((sock, time.monotonic()))
    return socks


def connection_hog(path: str, count: int, until: float) -> Abuse:
    """Open `count` connections at once and hold them; note how each is refused or closed."""
    out = Abuse()
    socks = open_many(path, count)
    seen: dict[int, bytes] = {}
    closed: set[int] = set()
    refused_at: set[int] = set()
    while time.monotonic() < until and len(closed) < count:
        for i, (sock, opened) in enumerate(socks):
            if i in closed:
                continue
            try:
                chunk = sock.recv(4096)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                chunk = b""
            seen[i] = seen.get(i, b"") + chunk
            if not chunk:
                closed.add(i)
                message = _first_error(seen[i])
                out.messages[message] += 1
                if "too many connections" in message:
                    refused_at.add(i)
                else:
                    out.cut_after.append(time.monotonic() - opened)
        time.sleep(0.01)
    out.refused = len(refused_at)
    out.admitted = count - out.refused
    for sock, _ in socks:
        sock.close()
    return out


def _poll(sock: socket.socket) -> bytes | None:
    """What a non-blocking socket has for us: None if nothing yet, b"" once closed."""
    try:
        return sock.recv(4096)
    except BlockingIOError:
        return None
    except ConnectionResetError:
        return b""


def slow_sender(path: str, count: int, interval: float, body: bytes, until: float) -> Abuse:
    """`count` connections, each sending `body` one byte every `interval` seconds, round and
    round; note when and how each is closed (looking every 20 ms)."""
    out = Abuse(admitted=count)
    socks = open_many(path, count)
    alive = set(range(count))
    received: dict[int, bytes] = collections.defaultdict(bytes)
    position, next_byte = 0, time.monotonic()

    def closed(i: int) -> None:
        alive.discard(i)
        out.cut_after.append(time.monotonic() - socks[i][1])
        out.messages[_first_error(received[i])] += 1

    while time.monotonic() < until and alive:
        send = time.monotonic() >= next_byte
        if send:
            byte = body[position % len(body) : position % len(body) + 1]
            position, next_byte = position + 1, next_byte + interval
        for i in sorted(alive):
            sock = socks[i][0]
            chunk = _poll(sock)
            if chunk is not None:
                received[i] += chunk
                if not chunk:
                    closed(i)
                    continue
            if send:
                try:
                    sock.send(byte)
                except (BrokenPipeError, ConnectionResetError):
                    closed(i)
        time.sleep(min(interval, 0.02))
    for sock, _ in socks:
        sock.close()
    return out


def _child(target: Callable[..., Abuse], args: tuple[Any, ...], pipe: Connection) -> None:
    try:
        result = target(*args)
    except BaseException as e:
        result = Abuse(failure=f"{type(e).__name__}: {e}")
    pipe.send(result)
    pipe.close()


@contextlib.contextmanager
def abusers(jobs: list[tuple[Callable[..., Abuse], tuple[Any, ...]]]) -> Iterator[list[Abuse]]:
    """Run each (target, args) in its own process; the list fills in when the block ends."""
    started: list[tuple[Any, Connection]] = []
    results: list[Abuse] = []
    try:
        for target, args in jobs:
            parent, child = _FORK.Pipe()
            process = _FORK.Process(target=_child, args=(target, args, child), daemon=True)
            process.start()
            child.close()
            started.append((process, parent))
        yield results
        for _, pipe in started:
            if not pipe.poll(120):
                raise TimeoutError("an abuser did not finish")
            result: Abuse = pipe.recv()
            if result.failure:
                raise RuntimeError(f"an abuser failed: {result.failure}")
            results.append(result)
    finally:
        end_children(started)


def round_trips_for(watchdog: Watchdog, seconds: float, pause: float = 0.0) -> list[float]:
    """kv.get round trips, back to back (or `pause` apart), for `seconds`."""
    rtts: list[float] = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        rtts.append(watchdog.check())
        if pause:
            time.sleep(pause)
    return rtts


def merge(results: list[Abuse]) -> Abuse:
    total = Abuse()
    for r in results:
        total.cut_after += r.cut_after
        total.sent_before_cut += r.sent_before_cut
        total.messages.update(r.messages)
        total.admitted += r.admitted
        total.refused += r.refused
    return total
