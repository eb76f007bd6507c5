"""The process's stdin and stdout as the SDK's `stdio_server` takes them, read and written
on the event loop.

The SDK's own streams hand every line to a worker thread (a read, a write, a flush): three
thread hand-offs per call, each 50 to 100 µs on a busy machine — most of what the bridge adds to
a call. Here the pipes are the loop's (asyncio's `connect_read_pipe`/`connect_write_pipe`).
What the SDK also does is kept: while serving, fd 0 reads the null device and fd 1 writes to
stderr, so nothing else in the process (a stray print, a child) can touch the protocol.

A stdin or stdout the loop cannot watch (a regular file) leaves the SDK's own streams in use.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

LINE_MAX = 64 * 1024 * 1024  # one JSON-RPC message per line; the SDK bounds nothing smaller


class _Lines:
    """`async for line in stdin`, text lines with their newline."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        line = await self._reader.readline()
        if not line:
            raise StopAsyncIteration
        return line.decode("utf-8", "replace")


class _Out:
    """`await stdout.write(text)`, `await stdout.flush()`."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def write(self, text: str) -> None:
        self._writer.write(text.encode("utf-8"))

    async def flush(self) -> None:
        await self._writer.drain()


@contextlib.asynccontextmanager
async def loop_stdio() -> AsyncIterator[tuple[Any, Any] | None]:
    """(stdin, stdout) for `stdio_server`, or None when the loop cannot watch them."""
    loop = asyncio.get_running_loop()
    wire_in, wire_out = os.dup(0), os.dup(1)
    reader = asyncio.StreamReader(limit=LINE_MAX)
    source = os.fdopen(wire_in, "rb", buffering=0)
    sink = os.fdopen(wire_out, "wb", buffering=0)
    try:
        read_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), source
        )
        write_transport, protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, sink
        )
    except (ValueError, OSError):  # a regular file: the SDK's threads can read it
        source.close()
        sink.close()
        yield None
        return
    writer = asyncio.StreamWriter(write_transport, protocol, None, loop)
    saved = _divert()
    try:
        yield _Lines(reader), _Out(writer)
    finally:
        _restore(saved)
        read_transport.close()
        write_transport.close()


def _divert() -> tuple[int, int]:
    """fd 0 from the null device, fd 1 to stderr; returns the originals to restore."""
    saved = (os.dup(0), os.dup(1))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    return saved


def _restore(saved: tuple[int, int]) -> None:
    for fd, original in zip((0, 1), saved, strict=True):
        with contextlib.suppress(OSError):
            os.dup2(original, fd)
        os.close(original)
