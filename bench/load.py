"""Closed-loop load from several processes, measured over one shared window.

Every worker process sets itself up (connects, opens its database), says it is ready and waits;
the parent then hands all of them the same absolute window on the system-wide monotonic clock:
load starts at once, and what is acknowledged between `start` and `end` counts. A client
never has more than one request outstanding: it sends the next only after the previous one's
reply. Each worker also reports everything it got acknowledged (warm-up and tail included),
so the caller can compare it with what the database holds.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import Connection
from typing import Any, Protocol, cast

# fork is much cheaper than spawn for dozens of workers; the parent is single-threaded.
_CONTEXT = multiprocessing.get_context("fork")


@dataclass(frozen=True)
class Window:
    begin: float  # load starts (warm-up)
    start: float  # counting starts
    end: float  # counting ends; no request is sent after this


@dataclass
class Result:
    acked_in_window: int = 0  # replies without an error that arrived inside the window
    acked_total: int = 0  # every reply without an error, warm-up and tail included
    errors: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, for acks in the window
    per_client: list[int] = field(default_factory=lambda: [0])  # acks in the window, by client
    failure: str | None = None  # the traceback if the worker itself failed

    def record(self, sent: float, now: float, ok: bool, window: Window, client: int = 0) -> None:
        if not ok:
            self.errors += 1
            return
        self.acked_total += 1
        if window.start <= now <= window.end:
            self.acked_in_window += 1
            self.per_client[client] += 1
            self.latencies.append(now - sent)


class Handshake:
    """The worker's side of the start-up barrier."""

    def __init__(self, pipe: Connection) -> None:
        self._pipe = pipe

    def ready(self) -> Window:
        self._pipe.send("ready")
        window: Window = self._pipe.recv()
        return window


Target = Callable[[Any, Handshake], Result]


def _main(target: Target, arg: Any, pipe: Connection) -> None:
    try:
        result = target(arg, Handshake(pipe))
    except BaseException:
        result = Result(failure=traceback.format_exc())
    pipe.send(result)
    pipe.close()


@dataclass
class Totals:
    duration: float
    results: list[Result]

    @property
    def acked_in_window(self) -> int:
        return sum(r.acked_in_window for r in self.results)

    @property
    def acked_total(self) -> int:
        return sum(r.acked_total for r in self.results)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.results)

    @property
    def rate(self) -> float:
        return self.acked_in_window / self.duration

    @property
    def latencies(self) -> list[float]:
        return [x for r in self.results for x in r.latencies]

    @property
    def client_rates(self) -> list[float]:
        """Each client's acknowledged requests per second in the window."""
        return [n / self.duration for r in self.results for n in r.per_client]


class Probe(Protocol):
    """Something the parent measures over exactly the window (e.g. the server's CPU)."""

    def begin(self) -> None: ...
    def end(self) -> None: ...


def run(
    target: Target,
    args: Sequence[Any],
    *,
    warmup: float,
    duration: float,
    setup_timeout: float = 120.0,
    probe: Probe | None = None,
) -> Totals:
    """Run `target(arg, handshake)` in one process per arg over one shared window."""
    processes: list[tuple[Any, Connection]] = []
    try:
        for arg in args:
            parent_end, child_end = _CONTEXT.Pipe()
            process = _CONTEXT.Process(target=_main, args=(target, arg, child_end), daemon=True)
            process.start()
            child_end.close()
            processes.append((process, parent_end))
        deadline = time.monotonic() + setup_timeout
        for _, pipe in processes:
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError("a load worker did not get ready in time")
            message = pipe.recv()
            if isinstance(message, Result):  # it failed before getting ready
                raise RuntimeError(f"a load worker failed:\n{message.failure}")
        begin = time.monotonic() + 0.05
        window = Window(begin=begin, start=begin + warmup, end=begin + warmup + duration)
        for _, pipe in processes:
            pipe.send(window)
        if probe is not None:
            time.sleep(max(0.0, window.start - time.monotonic()))
            probe.begin()
            time.sleep(max(0.0, window.end - time.monotonic()))
            probe.end()
        results: list[Result] = []
        for _, pipe in processes:
            if not pipe.poll(warmup + duration + 60.0):
                raise TimeoutError("a load worker did not finish in time")
            result: Result = pipe.recv()
            if result.failure:
                raise RuntimeError(f"a load worker failed:\n{result.failure}")
            results.append(result)
        return Totals(duration=duration, results=results)
    finally:
        end_children(processes)


# --- NDJSON over a Unix socket, many connections per process, on uvloop ----------------------

MakeRequest = Callable[[int], bytes]  # request number -> one line, newline included


class _Client(asyncio.Protocol):
    """One connection: send a line, wait for one line back, record, send the next."""

    def __init__(self, make: MakeRequest, result: Result, index: int) -> None:
        self._make = make
        self._result = result
        self._index = index
        self._buffer = b""
        self._n = 0
        self._sent = 0.0
        self._transport: asyncio.Transport | None = None
        self.window = Window(0.0, 0.0, 0.0)  # set by the handshake before the first send
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send_next(self) -> None:
        now = time.monotonic()
        if now >= self.window.end:
            if not self.done.done():
                self.done.set_result(None)
            return
        self._n += 1
        self._sent = now
        assert self._transport is not None
        self._transport.write(self._make(self._n))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if b"\n" not in self._buffer:
            return
        line, _, self._buffer = self._buffer.partition(b"\n")
        now = time.monotonic()
        self._result.record(self._sent, now, b'"error":' not in line, self.window, self._index)
        self.send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"the server closed the connection ({exc})"))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def _drive(path: str, makers: list[MakeRequest], handshake: Handshake) -> Result:
    loop = asyncio.get_running_loop()
    result = Result(per_client=[0] * len(makers))
    clients: list[_Client] = []
    try:
        for i, make in enumerate(makers):
            _, client = await loop.create_unix_connection(partial(_Client, make, result, i), path)
            clients.append(client)
        window = handshake.ready()  # blocks the loop; nothing is in flight yet
        for client in clients:
            client.window = window
        delay = window.begin - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        for client in clients:
            client.send_next()
        timeout = window.end - time.monotonic() + 60.0
        await asyncio.wait_for(asyncio.gather(*(c.done for c in clients)), timeout)
    finally:
        for client in clients:
            client.close()
    return result


@dataclass(frozen=True)
class SocketLoad:
    """`connections` NDJSON clients in one process against `path`; `make(worker, conn)` builds
    each connection's request maker."""

    path: str
    worker: int
    connections: int
    make: Callable[[int, int], MakeRequest]


def socket_worker(spec: SocketLoad, handshake: Handshake) -> Result:
    makers = [spec.make(spec.worker, c) for c in range(spec.connections)]
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_drive(spec.path, makers, handshake))
    result: Result = uvloop.run(_drive(spec.path, makers, handshake))
    return result


def socket_load(
    path: str,
    make: Callable[[int, int], MakeRequest],
    *,
    processes: int,
    connections: int,
    warmup: float,
    duration: float,
    probe: Probe | None = None,
) -> Totals:
    """`processes` x `connections` closed-loop NDJSON clients against the socket at `path`."""
    if connections % processes:
        raise ValueError("connections must split evenly over the processes")
    specs = [SocketLoad(path, w, connections // processes, make) for w in range(processes)]
    return run(socket_worker, specs, warmup=warmup, duration=duration, probe=probe)


def end_children(children: Sequence[tuple[Any, Connection]]) -> None:
    """Close each child's pipe and wait for it; one that will not end is killed."""
    for process, pipe in children:
        pipe.close()
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join(10)
