"""The floor for a round trip: a bare uvloop server that echoes each line it receives.

`python -m bench.echo SOCKET` serves until SIGTERM; `EchoServer` runs it as a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from typing import cast

from bench import common


class Echo(asyncio.Protocol):
    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        data = self._buffer + data
        end = data.rfind(b"\n") + 1
        self._buffer = data[end:]
        if end and self._transport is not None:
            self._transport.write(data[:end])


async def serve(path: str) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    server = await loop.create_unix_server(Echo, path, backlog=1024)
    async with server:
        await stop


class EchoServer:
    """The echo server as a subprocess on a short socket path; a context manager."""

    def __init__(self) -> None:
        self._dir = common.short_tmp_dir()
        self.socket_path = os.path.join(self._dir, "echo.sock")
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> EchoServer:
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench.echo", self.socket_path],
                env=common.child_env(),
                stdin=subprocess.DEVNULL,
            )
            common.wait_for(self._ready, 30.0, "the echo server")
        except BaseException:
            self.close()
            raise
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"the echo server exited with {self.process.returncode}")
        return common.socket_answers(self.socket_path)

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self._dir, ignore_errors=True)


def main(path: str) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(path))
        return
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(path))


if __name__ == "__main__":
    main(sys.argv[1])
