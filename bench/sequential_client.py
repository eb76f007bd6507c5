"""A client in a process of its own that sends requests one at a time on one connection and
times each, until told to stop: the reader beside a quality scan (`bench quality`), the
writer beside backups (`bench backup`). Its own process, so the load it makes and the times
it takes are not the parent's; forked, so it starts in milliseconds.
"""

from __future__ import annotations

import socket
import time
import traceback
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection

from bench.common import PipeChild, next_line

MakeRequest = Callable[[int], bytes]  # the n-th request (n from 1, also its id), one line


@dataclass
class Samples:
    starts: array[float]  # time.monotonic() when each request was sent
    latencies: array[float]  # seconds to its reply

    def within(self, begin: float, end: float) -> list[float]:
        """Latencies of the requests sent in [begin, end)."""
        return [lat for s, lat in zip(self.starts, self.latencies, strict=True) if begin <= s < end]


def _until_told(path: str, make: MakeRequest, timeout_s: float, pipe: Connection) -> Samples:
    starts: array[float] = array("d")
    latencies: array[float] = array("d")
    clock = time.monotonic  # CLOCK_MONOTONIC: the parent's windows are on the same clock
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(path)
        pipe.send("ready")
        buffer = b""
        n = 0
        while not pipe.poll():
            n += 1
            started = clock()
            sock.sendall(make(n))
            line, buffer = next_line(sock, buffer)
            elapsed = clock() - started
            if b'"error":' in line:
                raise RuntimeError(f"error reply: {line[:300]!r}")
            starts.append(started)
            latencies.append(elapsed)
    pipe.recv()  # "stop"
    return Samples(starts, latencies)


def _main(path: str, make: MakeRequest, timeout_s: float, pipe: Connection) -> None:
    try:
        result: Samples | str = _until_told(path, make, timeout_s, pipe)
    except BaseException:
        result = traceback.format_exc()
    pipe.send(result)
    pipe.close()


class SequentialClient(PipeChild):
    """The client process; a context manager that always ends it. `timeout_s` bounds one
    request's wait and the wait for the samples at `stop`."""

    def __init__(self, what: str, socket_path: str, make: MakeRequest, timeout_s: float) -> None:
        super().__init__(what, _main, socket_path, make, timeout_s)
        self._timeout_s = timeout_s

    def stop(self, timeout_s: float | None = None) -> Samples:
        result: Samples = super().stop(self._timeout_s if timeout_s is None else timeout_s)
        return result
